"""Fashion-MNIST and any MNIST-format (IDX) image set, with one attribute per class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lctk.plugin_api import DataRequest, InMemoryDataset, LctkError, names_from_option, one_hot_attributes, subsample
from lctk_conv.idx import find_idx, read_idx

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ["tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]
FILES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
         "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}


def pixels_to_model(batch: torch.Tensor) -> torch.Tensor:
    """uint8 ``(B, C, H, W)`` -> float32 in [0, 1]."""
    return batch.float().div_(255.0)


def load_idx_folder(name: str, folder: Path, class_names: list[str] | None, request: DataRequest,
                    missing_hint: str) -> InMemoryDataset:
    """The four standard MNIST-format files in ``folder`` as an image dataset with class attributes."""
    if not folder.is_dir():
        raise LctkError(f"dataset folder {folder} does not exist; {missing_hint}")
    paths = {}
    for key, stem in FILES.items():
        path = find_idx(folder, stem)
        if path is None:
            raise LctkError(f"{folder} lacks {stem}[.gz]; {missing_hint}")
        paths[key] = path
    arrays = {key: read_idx(path) for key, path in paths.items()}
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if images.ndim != 3:
            raise LctkError(f"{paths[f'{part}_images']} should hold N x H x W images, got shape {images.shape}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise LctkError(f"{paths[f'{part}_labels']} should hold {len(images)} labels, got shape {labels.shape}")
    if arrays["train_images"].shape[1:] != arrays["test_images"].shape[1:]:
        raise LctkError(f"train and test images in {folder} differ in size")
    images = torch.from_numpy(np.concatenate([arrays["train_images"], arrays["test_images"]]))
    labels = torch.from_numpy(np.concatenate([arrays["train_labels"], arrays["test_labels"]]).astype("int64"))
    if images.dtype != torch.uint8:
        raise LctkError(f"images in {folder} are {images.dtype}, expected unsigned bytes")
    if len(labels) == 0:
        raise LctkError(f"the IDX files in {folder} hold no images; {missing_hint}")
    num_classes = int(labels.max()) + 1
    if labels.min() < 0:
        raise LctkError(f"labels in {folder} are negative")
    names = class_names or names_from_option(request.options.get("classes"), [str(i) for i in range(num_classes)])
    if num_classes > len(names):
        raise LctkError(f"labels in {folder} go up to {num_classes - 1} but only {len(names)} class names are known; "
                        "name them with --data-option classes=a,b,...")
    split = torch.cat([torch.zeros(len(arrays["train_labels"]), dtype=torch.int8),
                       torch.ones(len(arrays["test_labels"]), dtype=torch.int8)])
    keep = subsample(split, request.max_examples, request.seed)
    images = images[keep].unsqueeze(1).contiguous()  # (N, 1, H, W) uint8
    attributes = one_hot_attributes(labels[keep], len(names))
    return InMemoryDataset(name, "image", images, attributes, names, split[keep],
                           {"input_shape": list(images.shape[1:])}, to_model=pixels_to_model)


def load_fashion_mnist(request: DataRequest) -> InMemoryDataset:
    """Fashion-MNIST: 70,000 28x28 grey images of 10 clothing classes (60,000 train, 10,000 test)."""
    folder = request.data_dir or FASHION_MNIST_DIR
    hint = ("install it with `apt-get install dataset-fashion-mnist` (Debian) or pass --data-dir with the four IDX files")
    dataset = load_idx_folder("fashion-mnist", Path(folder), FASHION_CLASSES, request, hint)
    dataset.safe_augmentations = frozenset({"hflip", "shift"})  # clothes keep their class in a mirror
    return dataset


def load_idx(request: DataRequest) -> InMemoryDataset:
    """Any MNIST-format image set in --data-dir (train/t10k images and labels, gzipped or not)."""
    if request.data_dir is None:
        raise LctkError("dataset idx needs --data-dir with train-images-idx3-ubyte, train-labels-idx1-ubyte, "
                        "t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte")
    return load_idx_folder("idx", Path(request.data_dir), None, request, "pass --data-dir with the four MNIST-format files")
