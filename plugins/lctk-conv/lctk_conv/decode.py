"""Decoding image files to uint8 arrays, in parallel worker processes, with progress.

Workers import only numpy and pillow (this module stays light on purpose) and never raise: an unreadable
file comes back as a failure (index, reason) for the caller to report or skip.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from PIL import Image

#: Images per task sent to a worker.
CHUNK = 64
#: Below this many images, decoding happens in this process (a pool costs more than it saves).
MIN_PARALLEL = 512
#: Most pixels an image's header may declare (e.g. 8,000 x 5,000): larger ones are refused before decoding.
MAX_PIXELS = 40_000_000


@dataclasses.dataclass(frozen=True)
class Preprocess:
    """How one image becomes an array: an optional centre square crop of side ``crop`` (clamped to the
    image), then an optional resize to ``size`` = (height, width), then ``channels`` (1 grey, 3 RGB)."""

    channels: int = 3
    size: tuple[int, int] | None = None
    crop: int | None = None
    #: Crop to the centre square before resizing when the image is not square (for ``size`` without ``crop``).
    square: bool = False

    def apply(self, img: Image.Image) -> np.ndarray:
        """A pillow image -> ``(C, H, W)`` uint8."""
        img = img.convert("L" if self.channels == 1 else "RGB")
        side = None
        if self.crop is not None:
            side = min(self.crop, img.width, img.height)
        elif self.square and img.width != img.height:
            side = min(img.width, img.height)
        if side is not None:
            left, top = (img.width - side) // 2, (img.height - side) // 2
            img = img.crop((left, top, left + side, top + side))
        if self.size is not None and (img.height, img.width) != tuple(self.size):
            img = img.resize((self.size[1], self.size[0]), Image.Resampling.LANCZOS)
        array = np.asarray(img, dtype=np.uint8)
        return array[None] if array.ndim == 2 else np.ascontiguousarray(array.transpose(2, 0, 1))  # (C, H, W)


def check_pixels(img: Image.Image) -> None:
    """Refuse (ValueError) an opened, not yet decoded image whose header declares more than `MAX_PIXELS`."""
    width, height = img.size
    if width * height > MAX_PIXELS:
        raise ValueError(f"{width} x {height} pixels, more than the {MAX_PIXELS:,} lctk decodes")


def load_image(path: str | Path, prep: Preprocess) -> np.ndarray:
    """Read and preprocess one image file -> ``(C, H, W)`` uint8; raises OSError/ValueError if unreadable or
    larger than `MAX_PIXELS` (checked from its header, before decoding)."""
    with Image.open(path) as img:
        check_pixels(img)
        img.load()
        return prep.apply(img)


Block = tuple[int, np.ndarray, list[tuple[int, str]]]


def _decode_chunk(task: tuple[int, Sequence[str], Preprocess, tuple[int, int]]) -> Block:
    """Worker: decode ``paths`` into ``(n, C, H, W)``; failed rows stay zero and are listed with a reason."""
    start, paths, prep, (h, w) = task
    out = np.zeros((len(paths), prep.channels, h, w), dtype=np.uint8)  # (n, C, H, W)
    failures: list[tuple[int, str]] = []
    for i, path in enumerate(paths):
        try:
            array = load_image(path, prep)
            if array.shape[1:] != (h, w):
                raise ValueError(f"is {array.shape[2]}x{array.shape[1]}, unlike the other images ({w}x{h})")
            out[i] = array
        except Exception as e:  # noqa: BLE001 - any decoder failure means "unreadable image"
            from lctk.plugin_api import describe  # workers import lctk only when a file fails
            failures.append((start + i, describe(e)))
    return start, out, failures



def default_workers() -> int:
    """Worker processes to use: the CPUs this process may run on, at most 8."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus))


def _context():
    # forkserver children start clean (no inherited threads or torch state); spawn where it is missing
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def decode_images(paths: Sequence[str | Path], prep: Preprocess, size: tuple[int, int], *, progress=None,
                  description: str = "decode images", workers: int | None = None
                  ) -> Iterator[Block]:
    """Decode ``paths`` in order, yielding blocks ``(start, (n, C, H, W) uint8, failures)``, where a failure is
    ``(index into paths, reason)`` and its row is zero. ``size`` = (H, W) every image must end up with.
    Uses ``workers`` processes (default: `default_workers`) when there are enough images; reports on
    ``progress`` (a `lctk.util.progress.Progress`)."""
    from lctk.plugin_api import Progress

    progress = progress or Progress()
    paths = [str(p) for p in paths]
    tasks = [(s, paths[s:s + CHUNK], prep, tuple(size)) for s in range(0, len(paths), CHUNK)]
    workers = default_workers() if workers is None else max(1, workers)
    with progress.task(description, total=len(paths)) as bar:
        if workers == 1 or len(paths) < MIN_PARALLEL:
            for task in tasks:
                block = _decode_chunk(task)
                bar.advance(len(task[1]))
                yield block
            return
        with _context().Pool(min(workers, len(tasks))) as pool:
            for block in pool.imap(_decode_chunk, tasks):
                bar.advance(len(block[1]))
                yield block
