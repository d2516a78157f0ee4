"""Reading IDX files (the MNIST format), gzipped or not, with one-line errors for corrupt files."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from lctk.plugin_api import LctkError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """The array stored in IDX file ``path`` (``.gz`` decompressed); LctkError if it is not valid IDX."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise LctkError(f"{path} is not a readable IDX file ({e}); re-download it") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES or raw[3] == 0:
        raise LctkError(f"{path} is not an IDX file (bad magic number); re-download it")
    dtype, ndim = np.dtype(_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise LctkError(f"{path} is truncated (incomplete header); re-download it")
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise LctkError(f"{path} holds {len(raw) - header} data bytes but its header {shape} needs {expected}; "
                        "the file is truncated or corrupt, re-download it")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def find_idx(folder: Path, stem: str) -> Path | None:
    """``folder/stem`` or ``folder/stem.gz`` (also the ``stem`` with ``.`` for ``-`` before idx), if present."""
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None
