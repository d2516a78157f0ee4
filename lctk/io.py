"""Safe file I/O: every write goes to a temporary file in the same folder and is renamed into place, so a kill
or a full disk never leaves a half-written file where a good one was. Weights are safetensors, configs JSON;
nothing here ever unpickles."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from lctk.errors import LctkError

_UMASK = os.umask(0)
os.umask(_UMASK)
_PICKLE_MAGICS = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05", b"PK\x03\x04")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success fsync it and rename it over `path`.

    On any failure the temporary file is removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    os.chmod(tmp, 0o666 & ~_UMASK)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.errno == errno.ENOSPC:
            raise LctkError(f"disk full while writing {path}; the previous file was kept, free space and retry") from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Atomically write `data` to `path`."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def save_json(path: str | os.PathLike, obj) -> None:
    """Atomically write `obj` as indented JSON."""
    write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def load_json(path: str | os.PathLike, what: str = "file") -> dict:
    """Read a JSON object; a missing or corrupt file raises a one-line LctkError naming it."""
    path = Path(path)
    if not path.is_file():
        raise LctkError(f"{what} {path} does not exist")
    try:
        obj = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LctkError(f"{what} {path} is not valid JSON ({e.msg if hasattr(e, 'msg') else e}); restore or recreate it") from None
    if not isinstance(obj, dict):
        raise LctkError(f"{what} {path} should hold a JSON object")
    return obj


def save_tensors(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> None:
    """Atomically write tensors (made contiguous, detached, on CPU) to a safetensors file."""
    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(flat, str(tmp), metadata=dict(metadata) if metadata else None)


def load_tensors(path: str | os.PathLike, what: str = "weights") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file into (tensors, metadata). Pickles and corrupt files are refused, never run."""
    path = Path(path)
    if not path.is_file():
        raise LctkError(f"{what} file {path} does not exist")
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(_PICKLE_MAGICS):
        raise LctkError(f"{what} file {path} is a pickle, which lctk never loads; convert it to safetensors")
    try:
        tensors = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise LctkError(f"{what} file {path} is corrupt or not safetensors ({str(e).splitlines()[0]})") from None
    return tensors, metadata
