"""Safe file I/O: every write goes to a temporary file in the same folder and is renamed into place, so a kill
or a full disk never leaves a half-written file where a good one was. Weights are safetensors, configs JSON;
nothing here ever unpickles.

A temporary file is named ``.NAME.HOST-PID.RANDOM.tmp``. One left behind by a killed process (SIGKILL cannot
be caught) is never read by anything; the next write of NAME removes it (and `sweep_stale_temps` any in a
folder) once its process is gone.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import socket
import tempfile
from pathlib import Path
from typing import Iterator, Mapping

import torch
from safetensors import safe_open
from safetensors.torch import load as safetensors_load, load_file, save as safetensors_save

from lctk.util.errors import LctkError, describe

_UMASK = os.umask(0)
os.umask(_UMASK)
#: First bytes of a pickle of protocol 2-5 (also the legacy `torch.save` format) and of a `torch.save` zip.
_PICKLE_MAGICS = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05", b"PK\x03\x04")
#: Opcodes a protocol 0 or 1 pickle starts with (MARK, EMPTY_DICT/LIST/TUPLE, GLOBAL, ...): text-like pickles.
_OLD_PICKLE_STARTS = b"(}])cNIFLSVUXTGJKMdlpgq"
_HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:40] or "host"
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9_-]+)-(?P<pid>\d+)\.[^.]+\.tmp$")
#: errno values that mean "no room left" (a full disk, a full quota).
_FULL = {errno.ENOSPC, errno.EDQUOT}
#: How writers that do not raise OSError say so: h5py raises RuntimeError ("... errno = 28, error message = 'No
#: space left on device'"), safetensors SafetensorError ("IoError(Os { code: 28, kind: StorageFull ...").
_FULL_TEXT = re.compile(r"No space left on device|Disk quota exceeded|StorageFull|QuotaExceeded|errno = (28|122)\b"
                        r"|code: (28|122)\b")


def disk_full(e: BaseException) -> bool:
    """True when ``e`` (an OSError, or h5py's RuntimeError, or safetensors' error) means the disk is full."""
    return getattr(e, "errno", None) in _FULL or _FULL_TEXT.search(str(e)) is not None


def is_temp(path: str | os.PathLike) -> bool:
    """True for a temporary file of `atomic_path` (never a result; safe to ignore)."""
    return _TEMP.match(Path(path).name) is not None


def _stale(path: Path) -> bool:
    """A temporary file whose writing process (on this host) no longer exists."""
    m = _TEMP.match(path.name)
    if m is None or m["host"] != _HOST or os.name == "nt":  # os.kill(pid, 0) would end the process on Windows
        return False
    pid = int(m["pid"])
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def sweep_stale_temps(folder: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Delete temporary files left in ``folder`` by killed processes (only those of target ``name`` if
    given); return what was deleted. Temporary files of live processes are left alone."""
    folder = Path(folder)
    pattern = f".{glob_escape(name)}.*.tmp" if name else ".*.tmp"
    removed = []
    try:
        candidates = list(folder.glob(pattern))
    except OSError:
        return removed
    for path in candidates:
        m = _TEMP.match(path.name)
        if m is not None and (name is None or m["name"] == name) and _stale(path):
            try:
                path.unlink()
                removed.append(path)
            except OSError:
                pass
    return removed


def glob_escape(text: str) -> str:
    """``text`` with glob wildcards escaped."""
    return re.sub(r"([*?\[])", r"[\1]", text)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success fsync it and rename it over `path`.

    On any failure the temporary file is removed and `path` is left as it was.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale_temps(path.parent, path.name)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{_HOST}-{os.getpid()}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise _write_error(path, e) from None
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # some writers replace the file mkstemp made (0600)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException as e:  # OSError, but also h5py's RuntimeError and SafetensorError on a full disk
        tmp.unlink(missing_ok=True)
        if disk_full(e) or getattr(e, "errno", None) in (errno.EACCES, errno.EROFS):
            raise _write_error(path, e) from None
        raise


def _write_error(path: Path, e: BaseException) -> Exception:
    """A one-line LctkError for a failed write (full disk, no permission), else ``e`` itself."""
    if disk_full(e):
        return LctkError(f"disk full while writing {path}; the previous file was kept, free space and retry")
    if getattr(e, "errno", None) in (errno.EACCES, errno.EPERM, errno.EROFS):
        return LctkError(f"cannot write {path} ({e.strerror}); choose a folder you can write to")
    return e


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
        data = path.read_bytes()
    except OSError as e:
        raise LctkError(f"{what} {path} cannot be read ({e.strerror})") from None
    return parse_json(data, f"{what} {path}")


def parse_json(data: bytes, what: str = "JSON") -> dict:
    """A JSON object from ``data``; anything else (bad UTF-8, bad syntax, too deep, not an object) is a
    one-line LctkError naming ``what``."""
    try:
        obj = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise LctkError(f"{what} is not valid JSON (not UTF-8 text); restore or recreate it") from None
    except ValueError as e:  # JSONDecodeError, too many digits
        raise LctkError(f"{what} is not valid JSON ({getattr(e, 'msg', None) or str(e).splitlines()[0]}); "
                        "restore or recreate it") from None
    except RecursionError:
        raise LctkError(f"{what} is not valid JSON (nested too deeply); restore or recreate it") from None
    if not isinstance(obj, dict):
        raise LctkError(f"{what} should hold a JSON object")
    return obj


def save_tensors(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> None:
    """Atomically write tensors (made contiguous, detached, on CPU) to a safetensors file."""
    flat = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(flat, str(tmp), metadata=dict(metadata) if metadata else None)


def save_file(tensors: Mapping[str, torch.Tensor], filename: str, metadata: Mapping[str, str] | None = None) -> None:
    """Write a safetensors file's bytes with a plain write: safetensors' own file writer goes through a temporary
    file of its own, which a kill would leave behind where `sweep_stale_temps` cannot recognise it."""
    Path(filename).write_bytes(safetensors_save(tensors, metadata=metadata))


def tensors_bytes(path: str | os.PathLike, what: str = "weights") -> bytes:
    """The raw bytes of a safetensors file (to send to other processes); a one-line error if unreadable."""
    path = Path(path)
    if not path.is_file():
        raise LctkError(f"{what} file {path} does not exist")
    try:
        return path.read_bytes()
    except OSError as e:
        raise LctkError(f"{what} file {path} cannot be read ({e.strerror})") from None


def load_tensors(path: str | os.PathLike, what: str = "weights") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file into (tensors, metadata). Pickles and corrupt files are refused, never run."""
    path = Path(path)
    if not path.is_file():
        raise LctkError(f"{what} file {path} does not exist")
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except Exception as e:  # noqa: BLE001 - whatever the parser says, the file is unusable
        try:
            with open(path, "rb") as f:
                head = f.read(8)
                f.seek(max(0, path.stat().st_size - 1))
                last = f.read(1)
        except OSError as e2:
            raise LctkError(f"{what} file {path} cannot be read ({e2.strerror})") from None
        _refuse_pickle(head, last, f"{what} file {path}")
        raise LctkError(f"{what} file {path} is corrupt or not safetensors ({describe(e)}); "
                        "restore it or recreate it") from None
    _check_finite(tensors, f"{what} file {path}")
    return tensors, _check_metadata(metadata, f"{what} file {path}")


def parse_tensors(data: bytes, what: str = "weights") -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """`load_tensors` for the bytes of a safetensors file (e.g. received from another process)."""
    try:
        tensors = safetensors_load(bytes(data))
        size = int.from_bytes(data[:8], "little")
        header = json.loads(data[8:8 + size].decode("utf-8"))
        metadata = header.get("__metadata__") or {} if isinstance(header, dict) else {}
    except Exception as e:  # noqa: BLE001 - whatever the parser says, the data is unusable
        _refuse_pickle(data[:8], data[-1:], what)
        raise LctkError(f"{what} is corrupt or not safetensors ({describe(e)})") from None
    _check_finite(tensors, what)
    return tensors, _check_metadata(metadata, what)


def looks_like_pickle(head: bytes, last: bytes) -> bool:
    """Whether a file that is NOT valid safetensors starting with ``head`` (8 bytes) and ending with ``last``
    (1 byte) is a pickle: protocols 2-5 and the legacy `torch.save` format by their magic bytes, protocols 0
    and 1 by a first opcode and the STOP opcode ``.`` at the end, a `torch.save` zip by its signature. Only ask
    after safetensors failed to parse the file: a valid safetensors header length may begin with the same bytes.
    """
    return head.startswith(_PICKLE_MAGICS) or (head[:1] != b"" and head[:1] in _OLD_PICKLE_STARTS and last == b".")


def _refuse_pickle(head: bytes, last: bytes, what: str) -> None:
    if looks_like_pickle(head, last):
        raise LctkError(f"{what} is a pickle (e.g. from torch.save), which lctk never loads since loading can "
                        "run code; convert it to safetensors")


def _check_finite(tensors: Mapping[str, torch.Tensor], what: str) -> None:
    """Refuse NaN or infinite values in floating-point tensors: lctk never saves such weights (training stops
    at the last finite checkpoint), so they mean a damaged or tampered file."""
    for name, value in tensors.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise LctkError(f"{what} holds NaN or infinite values (in {name[:60]!r}); it is damaged, restore it or "
                            "recreate it")


def _check_metadata(metadata, what: str) -> dict[str, str]:
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise LctkError(f"{what} has malformed metadata; restore it or recreate it")
    return metadata
