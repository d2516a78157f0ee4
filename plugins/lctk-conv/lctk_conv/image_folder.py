"""Any folder of images with one sub-folder per class (``ROOT/CLASS/*.png``), like torchvision's ImageFolder.

Class names are the sub-folder names, canonicalised (``Golden Retriever`` -> ``golden-retriever``); each
class is one attribute. Images may sit in nested folders below their class folder. The train/test split is
decided per file by a stable hash of its path relative to ROOT, so adding images never moves others.
Unreadable files are skipped with one warning.

Options: ``size=N`` (default 64, at most 1024): every image is centre-cropped to a square and resized to
N x N, so the model's input size is declared, never taken from whatever the files are; ``channels=1|3``
(default 1 when every image is greyscale, palette images counting as colour); ``test_fraction`` (0.1);
``workers`` (decoding processes). An image whose header declares more than `MAX_PIXELS` pixels is skipped
like an unreadable one, before it is decoded.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lctk.plugin_api import (DataRequest, InMemoryDataset, LctkError, Progress, attribute_name, describe,
                             one_hot_attributes, subsample)
from lctk_conv.decode import Preprocess, check_pixels, decode_images
from lctk_conv.mnist_like import pixels_to_model
from lctk_conv.options import check_known, fraction_option, int_option

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}
GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}
OPTIONS = ("size", "channels", "test_fraction", "workers")
DEFAULT_SIZE = 64
#: Largest ``size`` option.
MAX_SIZE = 1024


def hash_fraction(relative: str) -> float:
    """A stable number in [0, 1) for a relative path (same on every machine and Python run)."""
    return int.from_bytes(hashlib.sha256(relative.encode("utf-8")).digest()[:8], "big") / 2.0**64


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def list_classes(root: Path) -> tuple[list[str], list[Path], list[int]]:
    """(canonical class names, image files, class index per file), classes sorted by name."""
    folders = sorted((d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")),
                     key=lambda d: attribute_name(d.name))
    names: list[str] = []
    files: list[Path] = []
    labels: list[int] = []
    for folder in folders:
        images = sorted(p for p in folder.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file()
                        and _visible(p, root))
        if not images:
            continue
        name = attribute_name(folder.name)
        if name in names:
            raise LctkError(f"class folders in {root} give the same class name {name!r} twice; rename one")
        names.append(name)
        files += images
        labels += [len(names) - 1] * len(images)
    return names, files, labels


Header = tuple[list[tuple[int, int] | None], list[str | None], dict[int, str]]


def _scan(files: list[Path], progress: Progress) -> Header:
    """(width, height) and mode of each file from its header; failures by index."""
    sizes: list[tuple[int, int] | None] = []
    modes: list[str | None] = []
    failures: dict[int, str] = {}
    with progress.task("image-folder: read headers", total=len(files)) as bar:
        for i, path in enumerate(files):
            try:
                with Image.open(path) as img:
                    check_pixels(img)
                    sizes.append(img.size)
                    modes.append(img.mode)
            except Exception as e:  # noqa: BLE001 - any failure means unreadable
                sizes.append(None)
                modes.append(None)
                failures[i] = describe(e)
            bar.advance(1)
    return sizes, modes, failures


def load_image_folder(request: DataRequest) -> InMemoryDataset:
    """Images in --data-dir/CLASS/ folders (png, jpg, bmp, gif), one attribute per class; options size,
    channels, test_fraction (0.1)."""
    if request.data_dir is None:
        raise LctkError("dataset image-folder needs --data-dir ROOT with one sub-folder of images per class")
    root = Path(request.data_dir)
    if not root.is_dir():
        raise LctkError(f"image folder {root} does not exist; pass --data-dir ROOT with one sub-folder per class")
    options = request.options
    check_known(options, OPTIONS, "image-folder")
    size = int_option(options, "size", DEFAULT_SIZE, "image-folder")
    if size > MAX_SIZE:
        raise LctkError(f"dataset image-folder: --data-option size={size} should be at most {MAX_SIZE}")
    channels_option = int_option(options, "channels", None, "image-folder", choices=(1, 3))
    test_fraction = fraction_option(options, "test_fraction", 0.1, "image-folder")
    workers = int_option(options, "workers", None, "image-folder")

    names, files, labels = list_classes(root)
    if not files:
        raise LctkError(f"{root} has no class sub-folders with images ({', '.join(sorted(EXTENSIONS))}); "
                        "expected ROOT/CLASS/IMAGE")
    split = torch.tensor([hash_fraction(p.relative_to(root).as_posix()) < test_fraction for p in files],
                         dtype=torch.int8)  # (N,)
    keep = subsample(split, request.max_examples, request.seed).sort().values.tolist()
    files = [files[i] for i in keep]
    labels_t = torch.tensor([labels[i] for i in keep], dtype=torch.int64)  # (M,)
    split = split[keep]

    progress = request.progress or Progress()
    _, modes, failures = _scan(files, progress)
    readable = [i for i in range(len(files)) if i not in failures]
    prep_size = (size, size)
    channels = channels_option or (1 if readable and all(modes[i] in GREY_MODES for i in readable) else 3)
    prep = Preprocess(channels=channels, size=prep_size, square=True)

    todo = [files[i] for i in readable]
    images = np.empty((len(todo), channels, *prep_size), dtype=np.uint8)  # (M, C, H, W)
    ok = np.ones(len(todo), dtype=bool)
    for start, block, block_failures in decode_images(todo, prep, prep_size, progress=progress,
                                                      description="image-folder: decode images", workers=workers):
        images[start:start + len(block)] = block
        for index, reason in block_failures:
            ok[index] = False
            failures[readable[index]] = reason
    if failures:
        first = min(failures)
        if not ok.any() or not readable:
            raise LctkError(f"none of the {len(files)} image files in {root} could be read "
                            f"(e.g. {files[first]}: {failures[first]})")
        print(f"warning: image-folder skipped {len(failures)} unreadable image file(s) in {root} "
              f"(e.g. {files[first].relative_to(root)}: {failures[first]})", file=sys.stderr)
    rows = [readable[i] for i in range(len(todo)) if ok[i]]
    examples = torch.from_numpy(images[ok])  # (M', C, H, W)
    return InMemoryDataset("image-folder", "image", examples, one_hot_attributes(labels_t[rows], len(names)), names,
                           split[rows], {"input_shape": [channels, *prep_size]}, to_model=pixels_to_model,
                           meta={"files": [files[i].relative_to(root).as_posix() for i in rows]})
