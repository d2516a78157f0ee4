"""CelebA (aligned and cropped faces, 40 binary attributes) from the user's own copy of the files.

Expected layout in ``--data-dir``::

    img_align_celeba/000001.jpg ...   the 202,599 aligned 178 x 218 JPEGs
    list_attr_celeba.txt              count, 40 attribute names, then "000001.jpg  -1  1 ..." per image
    list_eval_partition.txt           "000001.jpg 0" per image (0 train, 1 valid, 2 test)

Each image is centre-cropped to ``crop`` x ``crop`` (128) and resized to ``size`` x ``size`` (64). Decoding
is slow, so the resulting uint8 array is cached once (see `lctk_conv.cache`); a run with ``max_examples``
decodes and caches only the rows it uses unless a full cache exists.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch

from lctk.plugin_api import DataRequest, InMemoryDataset, LctkError, Progress, attribute_name, subsample
from lctk_conv.cache import ArrayCache, digest
from lctk_conv.celeba_lists import parse_attributes, parse_partition
from lctk_conv.decode import Preprocess, decode_images
from lctk_conv.mnist_like import pixels_to_model
from lctk_conv.options import check_known, int_option

IMAGES, ATTRIBUTES, PARTITION = "img_align_celeba", "list_attr_celeba.txt", "list_eval_partition.txt"
LAYOUT = (f"CelebA must be downloaded by you: put {IMAGES}/*.jpg, {ATTRIBUTES} and {PARTITION} "
          "(from the official release) in --data-dir")
OPTIONS = ("size", "crop", "workers")
#: Bump when preprocessing changes, so old caches are not reused.
CACHE_VERSION = "1"


def _missing(path: Path) -> LctkError:
    return LctkError(f"{path} is missing; {LAYOUT}")


def _image_folder(root: Path) -> Path:
    folder = root / IMAGES
    nested = folder / IMAGES  # the layout some archives unpack to
    if nested.is_dir() and not any(folder.glob("*.jpg")):
        return nested
    if not folder.is_dir():
        raise _missing(folder)
    return folder


def _file_sizes(folder: Path) -> dict[str, int]:
    with os.scandir(folder) as entries:
        return {e.name: e.stat().st_size for e in entries if e.is_file()}


def load_celeba(request: DataRequest) -> InMemoryDataset:
    """CelebA in --data-dir: 202,599 aligned faces as 3 x 64 x 64 (options size, crop), 40 attributes
    (``smiling``, ``eyeglasses``, ...), official partition (valid and test count as test)."""
    if request.data_dir is None:
        raise LctkError(f"dataset celeba needs --data-dir; {LAYOUT}")
    root = Path(request.data_dir)
    if not root.is_dir():
        raise LctkError(f"CelebA folder {root} does not exist; {LAYOUT}")
    options = request.options
    check_known(options, OPTIONS, "celeba")
    size = int_option(options, "size", 64, "celeba")
    crop = int_option(options, "crop", 128, "celeba")
    workers = int_option(options, "workers", None, "celeba")
    for name in (ATTRIBUTES, PARTITION):
        if not (root / name).is_file():
            raise _missing(root / name)
    folder = _image_folder(root)
    raw_names, files, attributes = parse_attributes(root / ATTRIBUTES)
    split = parse_partition(root / PARTITION, files)
    sizes = _file_sizes(folder)
    missing = [f for f in files if f not in sizes]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise LctkError(f"{folder / missing[0]} is missing{more}; {LAYOUT}")

    keep = np.sort(subsample(torch.from_numpy(split), request.max_examples, request.seed).numpy())  # (M,)
    progress = request.progress or Progress()
    key = digest([CACHE_VERSION, str(size), str(crop), *(f"{f}:{sizes[f]}" for f in files)])
    images = _load_pixels(ArrayCache(root, "celeba", f"{size}px-crop{crop}", key), folder, files, keep,
                          Preprocess(channels=3, size=(size, size), crop=crop), progress, workers)
    names = [attribute_name(n) for n in raw_names]
    return InMemoryDataset("celeba", "image", torch.from_numpy(images), torch.from_numpy(attributes[keep]), names,
                           torch.from_numpy(split[keep]), {"input_shape": [3, size, size]}, to_model=pixels_to_model,
                           meta={"raw_attribute_names": raw_names})


def _load_pixels(cache: ArrayCache, folder: Path, files: list[str], keep: np.ndarray, prep: Preprocess,
                 progress: Progress, workers: int | None) -> np.ndarray:
    """``(M, 3, S, S)`` uint8 for rows ``keep`` of ``files``: from the full cache, a cache of exactly these
    rows, or decoded now (and cached)."""
    everything = len(keep) == len(files)
    full = cache.find()
    if full is not None:
        return cache.read(full, None if everything else keep)
    subset = None if everything else f"rows{len(keep)}-" + digest(map(str, keep.tolist()))[:12]
    if subset is not None and (part := cache.find(subset)) is not None:
        return cache.read(part)
    paths = [folder / files[i] for i in keep]
    shape = (len(paths), prep.channels, *prep.size)
    out = np.empty(shape, dtype=np.uint8)  # (M, 3, S, S)

    def fill(put) -> None:
        desc = f"celeba: decode {len(paths):,} images (once; cached)"
        for start, block, failures in decode_images(paths, prep, prep.size, progress=progress, description=desc,
                                                    workers=workers):
            if failures:
                index, reason = failures[0]
                raise LctkError(f"CelebA image {paths[index]} is unreadable ({reason}); replace it from the "
                                "original download")
            out[start:start + len(block)] = block
            put(start, block)

    try:
        cache.write(shape, fill, subset)
    except OSError as e:  # no writable cache folder: decode without caching
        print(f"warning: cannot cache decoded CelebA images ({e}); decoding will repeat next time", file=sys.stderr)
        fill(lambda start, block: None)
    return out
