"""A cache of preprocessed uint8 image arrays in HDF5, so slow decoding (200,000 JPEGs) happens once.

A cache file is named by the dataset, its preprocessing and a key derived from its source files; a changed
file set gives another key, so a stale cache is never read (and is deleted when its successor is written).
Files are written to a temporary name and renamed into place, so a killed build leaves no half cache.
The cache lives in ``DATA_DIR/lctk-cache/`` when the data folder is writable, else under ``$LCTK_CACHE``
(default ``~/.cache/lctk``).
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Callable, Iterable

import h5py
import numpy as np

from lctk.plugin_api import atomic_path, cache_root

LOCAL_FOLDER = "lctk-cache"
READ_BLOCK = 4096


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


class ArrayCache:
    """Cached arrays of one dataset folder.

    Args:
        data_dir: the dataset's folder. dataset: e.g. ``celeba``. params: the preprocessing, e.g. ``64px-crop128``.
        key: a digest of the source files (names, sizes), hex.
    """

    def __init__(self, data_dir: Path, dataset: str, params: str, key: str):
        self.data_dir = Path(data_dir)
        self.prefix = f"{dataset}-{params}-"
        self.key = key
        where = hashlib.sha256(str(self.data_dir.resolve()).encode()).hexdigest()[:16]
        self.folders = [self.data_dir / LOCAL_FOLDER, cache_root() / dataset / where]

    def _name(self, subset: str | None) -> str:
        return f"{self.prefix}{self.key[:16]}" + (f"-{subset}" if subset else "") + ".h5"

    def find(self, subset: str | None = None) -> Path | None:
        """The path of a valid cache file for ``subset`` (None: all rows), if one exists."""
        for folder in self.folders:
            path = folder / self._name(subset)
            if path.is_file() and self._valid(path):
                return path
        return None

    def _valid(self, path: Path) -> bool:
        try:
            with h5py.File(path, "r") as f:
                return f.attrs.get("key") == self.key and "images" in f
        except (OSError, KeyError):
            return False

    def read(self, path: Path, rows: np.ndarray | None = None) -> np.ndarray:
        """The cached ``(N, C, H, W)`` uint8 array, or only its ``rows`` (sorted indices)."""
        with h5py.File(path, "r") as f:
            images = f["images"]
            if rows is None:
                return images[...]
            return read_rows(images, rows)

    def write(self, shape: tuple[int, ...], fill: Callable[[Callable[[int, np.ndarray], None]], None],
              subset: str | None = None) -> Path:
        """Create the cache file for ``subset`` with an ``(N, C, H, W)`` uint8 ``images`` array of ``shape``,
        calling ``fill(put)``, where ``put(start, block)`` stores consecutive rows; atomic. Returns its path."""
        folder = next((f for f in self.folders if _writable(f)), None)
        if folder is None:
            raise OSError(f"no writable cache folder among {', '.join(map(str, self.folders))}")
        path = folder / self._name(subset)
        with atomic_path(path) as tmp:
            with h5py.File(tmp, "w") as f:
                chunk = (max(1, min(256, shape[0])), *shape[1:])
                images = f.create_dataset("images", shape, dtype="u1", chunks=chunk if shape[0] else None)

                def put(start: int, block: np.ndarray) -> None:
                    images[start:start + len(block)] = block

                fill(put)
                f.attrs["key"] = self.key
        self._prune(folder)
        return path

    def _prune(self, folder: Path) -> None:
        """Delete this dataset's caches in ``folder`` made from another file set (same preprocessing)."""
        keep = self.prefix + self.key[:16]
        for old in folder.glob(f"{self.prefix}*.h5"):
            if not old.name.startswith(keep):
                old.unlink(missing_ok=True)


def read_rows(dataset: h5py.Dataset, rows: np.ndarray) -> np.ndarray:
    """``dataset[rows]`` for sorted ``rows``, read in contiguous blocks (h5py point selection is slow)."""
    out = np.empty((len(rows), *dataset.shape[1:]), dtype=dataset.dtype)
    done = 0
    while done < len(rows):
        start = int(rows[done])
        stop = min(start + READ_BLOCK, dataset.shape[0])
        n = int(np.searchsorted(rows, stop, side="left")) - done  # rows that fall in [start, stop)
        block = dataset[start:stop]
        out[done:done + n] = block[rows[done:done + n] - start]
        done += n
    return out


def digest(parts: Iterable[str]) -> str:
    """A hex digest of a sequence of strings (file names and sizes, settings)."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()
