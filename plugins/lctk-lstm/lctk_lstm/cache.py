"""The HDF5 cache of extracted windows, so a melody dataset is parsed once and then loads in well under a second.

Location: ``$LCTK_CACHE/melody`` (default ``~/.cache/lctk/melody``); one file per dataset and key, the key a
hash of everything the windows depend on (extraction version, source files, options). Written atomically; a
damaged file is ignored and rebuilt.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from lctk.plugin_api import atomic_path, cache_root


@dataclasses.dataclass
class Extracted:
    """Unique windows of a source: ``windows (N, 32)`` uint8 tokens, ``tune (N,)`` index into ``tunes`` (the
    tune each window first came from), ``tune_split`` 0 train / 1 test per tune, the ``warnings`` of the
    first parse and ``info`` figures about it."""

    windows: np.ndarray
    tune: np.ndarray
    tunes: list[str]
    tune_split: np.ndarray
    warnings: list[str] = dataclasses.field(default_factory=list)
    info: dict[str, Any] = dataclasses.field(default_factory=dict)


def cache_path(name: str, key: dict[str, Any]) -> Path:
    """The cache file of dataset ``name`` for ``key`` (a JSON-able dict of what the windows depend on)."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:20]
    return cache_root() / "melody" / f"{name}-{digest}.h5"


def save(path: Path, data: Extracted) -> None:
    """Atomically write ``data`` to ``path``."""
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("windows", data=data.windows.astype(np.uint8), compression="gzip")
            f.create_dataset("tune", data=data.tune.astype(np.int32), compression="gzip")
            f.create_dataset("tune_split", data=data.tune_split.astype(np.int8))
            f.create_dataset("tunes", data=np.array(data.tunes, dtype=object), dtype=h5py.string_dtype())
            f.attrs["warnings"] = json.dumps(data.warnings)
            f.attrs["info"] = json.dumps(data.info)


def load(path: Path) -> Extracted | None:
    """The cached windows at ``path``, or None when there are none (or the file is damaged)."""
    if not path.is_file():
        return None
    try:
        with h5py.File(path, "r") as f:
            return Extracted(windows=f["windows"][()], tune=f["tune"][()], tune_split=f["tune_split"][()],
                             tunes=[t.decode() if isinstance(t, bytes) else str(t) for t in f["tunes"][()]],
                             warnings=json.loads(f.attrs["warnings"]), info=json.loads(f.attrs["info"]))
    except (OSError, KeyError, ValueError):
        return None
