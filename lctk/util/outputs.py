"""Checks of what a command will write (paths, names, how many samples), made before any work, each failing
as one line.

`check_out` takes an ``--out`` the way the writers read it (a path with a suffix is a file, the suffix made the
writer's; one without is a folder), `check_writable` a folder a command writes into, `check_name` a name that
becomes a folder name, `check_cache_folder` the ``LCTK_CACHE`` folder, `check_count` the number of samples
one write holds.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from lctk.util.errors import LctkError

#: Most bytes of a constraint's folder name (the file system allows 255 per name; lctk adds ``.``/``.partial``).
MAX_NAME = 100
#: Most bytes of one path component on common file systems.
MAX_COMPONENT = 255
#: Most samples one `Writer.write_batch` call takes unless the writer sets ``max_count``: every writer lctk
#: ships draws the whole batch as one picture (a PNG grid, a piano roll) and holds it in memory.
MAX_SAMPLES = 10_000


def _existing_ancestor(path: Path) -> Path:
    """``path`` itself or its nearest ancestor that exists."""
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return Path(".")


def _check_components(path: Path, what: str) -> None:
    for part in path.parts:
        if len(part.encode("utf-8", "surrogateescape")) > MAX_COMPONENT:
            raise LctkError(f"{what}: a name of {len(part)} characters ({part[:20]}...) is too long; file systems "
                            f"allow at most {MAX_COMPONENT} bytes per name")
    for parent in reversed(path.parents):
        if parent.exists() and not parent.is_dir():
            raise LctkError(f"{what}: {parent} is a file, not a folder, so {path} cannot be created; choose another "
                            "place")


def check_writable(folder: str | os.PathLike, what: str) -> None:
    """Refuse when ``folder`` (or, if it does not exist yet, where it would be created) cannot be written."""
    folder = Path(folder)
    _check_components(folder, what)
    existing = _existing_ancestor(folder)
    if not existing.is_dir():
        raise LctkError(f"{what}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        try:
            read_only = bool(os.statvfs(existing).f_flag & os.ST_RDONLY)
        except OSError:
            read_only = False
        reason = "on a read-only file system" if read_only else "without write permission"
        raise LctkError(f"{what} is {reason} ({existing}); copy it somewhere writable or make it writable")


def check_out(path: str | os.PathLike, suffix: str, flag: str = "--out") -> Path:
    """Check an output path before any work and return where the writer will write: a file (``path`` with a
    suffix, which becomes ``suffix``) or a folder (``path`` without one, or any path when ``suffix`` is empty)."""
    path = Path(path)
    _check_components(path, f"{flag} {path}")
    is_file = bool(suffix) and bool(path.suffix)
    target = path.with_suffix(suffix) if is_file and path.suffix.lower() != suffix.lower() else path
    if is_file:
        if target.is_dir():
            raise LctkError(f"{flag} {target} is a folder; give a file name ending in {suffix} (or a folder without "
                            "a suffix, to write into it)")
        if os.path.lexists(target) and not target.is_file():
            raise LctkError(f"{flag} {target} exists and is not a regular file; choose another {flag}")
        check_writable(target.parent, f"{flag} {path}")
    else:
        if os.path.lexists(path) and not path.is_dir():
            kind = "a file" if path.is_file() else "not a folder (a device or another special file)"
            instead = f"give a folder, or a file name ending in {suffix}" if suffix else "give a folder"
            raise LctkError(f"{flag} {path} is {kind}, and this writes into a folder; {instead}")
        check_writable(path, f"{flag} {path}")
    return target


def check_name(name: str, flag: str = "--name") -> None:
    """Refuse a name whose folder name (see `lctk.engine.constraint_set.folder_name`) is over `MAX_NAME` bytes."""
    from lctk.engine.constraint_set import folder_name

    size = len(folder_name(name).encode("utf-8"))
    if size > MAX_NAME:
        raise LctkError(f"{flag} is {len(name)} characters long; a constraint name names a folder and may have at "
                        f"most {MAX_NAME}: choose a shorter one")


def default_name(names: list[str], fallback: str) -> str:
    """The targets joined by ``+`` (``fallback`` when none); past `MAX_NAME` bytes, its beginning and a digest
    of the whole, so that every target list gets a folder the file system accepts."""
    from lctk.engine.constraint_set import folder_name

    joined = "+".join(names) or fallback
    folder = folder_name(joined)
    if len(folder.encode("utf-8")) <= MAX_NAME:
        return joined
    digest = hashlib.sha256(joined.encode("utf-8")).hexdigest()[:10]
    head = folder.encode("utf-8")[:MAX_NAME - len(digest) - 1].decode("utf-8", "ignore").rstrip("+-.")
    return f"{head}-{digest}"


def check_cache_folder(path: str | os.PathLike, variable: str = "LCTK_CACHE") -> Path:
    """``path`` (from ``$variable``) if it is, or can become, a folder; a one-line error otherwise."""
    path = Path(path).expanduser()
    problem = None
    if os.path.lexists(path) and not path.is_dir():
        problem = "is not a folder"
    else:
        for parent in path.parents:
            if parent.exists() and not parent.is_dir():
                problem = f"lies under {parent}, which is a file"
                break
    if problem:
        raise LctkError(f"{variable}={path} {problem}; point {variable} at a folder (or unset it to use ~/.cache/lctk)")
    return path


def check_count(count: int, writer) -> None:
    """Refuse to write more samples at once than ``writer.max_count`` (default `MAX_SAMPLES`)."""
    limit = getattr(writer, "max_count", None) or MAX_SAMPLES
    if count > limit:
        raise LctkError(f"-n {count} is more samples than one output holds (at most {limit:,}: they are drawn as one "
                        f"picture, kept in memory); run lctk sample several times with other --seed values")
