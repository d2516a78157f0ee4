"""Opening HDF5 files that someone else may have made (a run folder or a data cache is untrusted input).

HDF5 can make a dataset read or write *another* file: external raw storage, virtual datasets, external links
(and soft links point anywhere inside the file). Its filters can load shared libraries and decompress bombs,
and a header may declare any size. `check_plain` refuses all of that before a single data byte is read or
written: only hard-linked datasets with contiguous or chunked storage inside the file, no filters, the
expected dtype kinds, item sizes and ranks, and declared sizes that the file's real size can hold.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import h5py
from h5py import h5d


class UnsafeStore(ValueError):
    """An HDF5 file whose layout lctk refuses to read or write (the message says why, in a few words)."""


@dataclass(frozen=True)
class Spec:
    """What one dataset must look like: dtype ``kinds`` (numpy kind letters), allowed ``sizes`` (bytes per
    item) and ``ndim``."""

    kinds: str
    sizes: tuple[int, ...]
    ndim: int


def regular_file(path: Path, single: bool = False) -> bool:
    """True when ``path`` is a regular file and not a symlink (with ``single``: nor hard-linked elsewhere)."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and (st.st_nlink == 1 or not single)


def check_plain(f: h5py.File, specs: Mapping[str, Spec], file_size: int | None = None,
                allocated: bool = True) -> dict[str, int]:
    """Refuse (`UnsafeStore`) anything but plain datasets ``specs`` in ``f``; return each one's data bytes.

    Every member of the root group must be a hard link; every dataset of ``specs`` must exist with contiguous
    or chunked storage in this file, no external storage, no virtual layout, no filters, and the spec's dtype
    and rank. With ``file_size``, the declared data bytes of all of them together (when ``allocated``: the
    file is finished, so all its data must be in it) may not exceed the file's size.
    """
    for name in f.keys():  # listing names follows no link
        link = f.get(name, getlink=True)
        if not isinstance(link, h5py.HardLink):
            raise UnsafeStore(f"{name!r} is a {type(link).__name__} (links to other objects or files are refused)")
    sizes: dict[str, int] = {}
    for name, spec in specs.items():
        if name not in f:
            raise UnsafeStore(f"it lacks {name!r}")
        ds = f[name]
        if not isinstance(ds, h5py.Dataset):
            raise UnsafeStore(f"{name!r} is not a dataset")
        dcpl = ds.id.get_create_plist()
        layout = dcpl.get_layout()
        if layout == h5d.VIRTUAL:
            raise UnsafeStore(f"{name!r} is a virtual dataset (data from other files is refused)")
        if dcpl.get_external_count() > 0:
            raise UnsafeStore(f"{name!r} keeps its data in external files (refused)")
        if layout not in (h5d.CONTIGUOUS, h5d.CHUNKED):
            raise UnsafeStore(f"{name!r} has an unexpected storage layout")
        if dcpl.get_nfilters() > 0:
            raise UnsafeStore(f"{name!r} uses HDF5 filters (compression is refused)")
        dtype = ds.dtype
        if dtype.kind not in spec.kinds or dtype.itemsize not in spec.sizes or dtype.fields is not None:
            raise UnsafeStore(f"{name!r} has data type {dtype}")
        if len(ds.shape or ()) != spec.ndim:
            raise UnsafeStore(f"{name!r} has rank {len(ds.shape or ())}, expected {spec.ndim}")
        n = dtype.itemsize
        for d in ds.shape:
            n *= int(d)
        sizes[name] = n
    if file_size is not None and allocated and sum(sizes.values()) > file_size:
        raise UnsafeStore(f"its headers declare {sum(sizes.values())} data bytes but the file has {file_size}")
    return sizes


def new_token() -> str:
    """A random token that a writer records inside the file it creates (and, proven, beside it)."""
    return secrets.token_hex(16)


def _secret() -> bytes | None:
    """This user's key for `proof` (``$LCTK_CACHE/writer.key``, made on first use), or None if unusable."""
    from lctk.datasets import cache_root

    path = cache_root() / "writer.key"
    try:
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "wb") as out:
                    out.write(secrets.token_bytes(32))
        key = path.read_bytes()
    except OSError:
        return None
    return key if len(key) == 32 else None


def proof(token: str, *context: str) -> str | None:
    """An HMAC of ``token`` (and ``context``) under this user's key: a file carrying a token and its proof was
    written by lctk on this account, never shipped in a run folder. None when no key can be kept."""
    key = _secret()
    if key is None:
        return None
    return hmac.new(key, "\0".join((token, *context)).encode(), hashlib.sha256).hexdigest()


def proven(token, claimed, *context: str) -> bool:
    """True when ``claimed`` is `proof` of ``token`` (and ``context``)."""
    if not (isinstance(token, str) and isinstance(claimed, str)):
        return False
    expected = proof(token, *context)
    return expected is not None and hmac.compare_digest(expected, claimed)
