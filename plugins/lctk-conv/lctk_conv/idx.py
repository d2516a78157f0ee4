"""Reading IDX files (the MNIST format), gzipped or not, with one-line errors for corrupt files.

The size the header declares is checked before any data is read or allocated: an uncompressed file must hold
exactly that many bytes, and a gzipped one may declare at most `MAX_IDX_BYTES`, and past `RATIO_FLOOR` at most
`MAX_RATIO` times its own size (a 14 MB gzip that inflates to 3 GiB is refused from its first bytes). Data are decompressed straight into an array of the declared size and
decompression stops there, so a gzip holding more than its header says is refused without inflating the rest.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from lctk.plugin_api import LctkError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
#: Most data bytes one IDX file may declare (the largest public IDX set, EMNIST ByClass, has 0.64 GB).
MAX_IDX_BYTES = 2 * 2**30
#: Past `RATIO_FLOOR` bytes, most data bytes a gzipped IDX file may declare per byte of its own (MNIST-like
#: images compress 2-10 times; a file of zeros, the stuff of gzip bombs, over 1,000 times).
MAX_RATIO, RATIO_FLOOR = 100, 256 * 2**20


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in IDX file ``path`` (``.gz`` decompressed); LctkError if it is not valid IDX."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            zipped = f.read(2) == b"\x1f\x8b"
        with (gzip.open if zipped else open)(path, "rb") as f:
            return _read(f, path, zipped)
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise LctkError(f"{path} is not a readable IDX file ({e}); re-download it") from None


def _read(f, path: Path, zipped: bool) -> np.ndarray:
    head = f.read(4)
    if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in _DTYPES or head[3] == 0:
        if zipped:  # a damaged gzip stream inflates to garbage first
            raise LctkError(f"{path} is not a readable IDX file (bad magic number once decompressed); re-download it")
        raise LctkError(f"{path} is not an IDX file (bad magic number); re-download it")
    dtype, ndim = np.dtype(_DTYPES[head[2]]), head[3]
    dims = f.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise LctkError(f"{path} is truncated (incomplete header); re-download it")
    shape = tuple(int.from_bytes(dims[4 * i:4 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape, dtype=object)) * dtype.itemsize
    header = 4 + 4 * ndim
    if not zipped:
        held = path.stat().st_size - header
        if held != expected:
            raise LctkError(f"{path} holds {held} data bytes but its header {shape} needs {expected}; "
                            "the file is truncated or corrupt, re-download it")
    elif expected > RATIO_FLOOR and expected > MAX_RATIO * path.stat().st_size:
        raise LctkError(f"{path} declares {shape}, {expected / 2**30:.1f} GiB of data, over {MAX_RATIO} times its own "
                        f"size ({path.stat().st_size / 2**20:.1f} MiB): a gzip bomb or a corrupt file, re-download it")
    elif expected > MAX_IDX_BYTES:
        raise LctkError(f"{path} declares {shape}, {expected / 2**30:.1f} GiB of data, more than an IDX file may hold "
                        f"({MAX_IDX_BYTES / 2**30:.0f} GiB); the file is corrupt or hostile, re-download it")
    data = np.empty(expected, dtype=np.uint8)  # (bytes,) filled below; nothing read beyond it
    view, done = memoryview(data), 0
    while done < expected:
        n = f.readinto(view[done:])
        if not n:
            raise LctkError(f"{path} holds {done} data bytes but its header {shape} needs {expected}; "
                            "the file is truncated or corrupt, re-download it")
        done += n
    if zipped and f.read(1):
        raise LctkError(f"{path} holds more data than its header {shape} declares ({expected} bytes); the file is "
                        "corrupt, re-download it")
    return data.view(dtype).reshape(shape).astype(dtype.newbyteorder("="), copy=False)


def find_idx(folder: Path, stem: str) -> Path | None:
    """``folder/stem`` or ``folder/stem.gz`` (also the ``stem`` with ``.`` for ``-`` before idx), if present."""
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None
