"""The constraints of a run: one self-describing folder each under ``RUN/constraints/``.

A run folder may come from someone else, so nothing here follows a symbolic link: a constraint folder that is
one is refused (and skipped, with a warning, when another constraint is asked for), and a damaged constraint
folder is skipped with a warning unless it is the one asked for. One process at a time trains a constraint
name: its ``.NAME.partial`` folder is locked (`RunConstraints.lock`) until the result is in place.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import unicodedata
from pathlib import Path
from typing import Sequence

from lctk.engine.method import OPTIMIZE, load_constraint
from lctk.util.errors import LctkError
from lctk.util.io import write_bytes
from lctk.interfaces import Constraint, ConstraintSet
from lctk.plugins import warn
from lctk.run import RunDir

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, one writer is the user's care
    fcntl = None

REALISM = "realism"
#: The file in a locked partial folder naming the process that writes it.
WRITER_PID = "writer.pid"


def serves(c: Constraint, method: str) -> bool:
    """Whether sampling ``--method METHOD`` can use constraint ``c``: its own method, or ``optimize`` over a
    constraint with a log-probability."""
    return c.method == method or (method == OPTIMIZE and c.has_log_prob)


def folder_name(name: str) -> str:
    """A file-system-safe constraint name: ``density>=8`` -> ``density-ge-8``; letters of any script are kept
    (``Zürich`` -> ``zürich``); a name with none (only symbols) becomes ``c-`` and a digest of it, never another
    constraint's name."""
    text = unicodedata.normalize("NFC", name).lower()
    text = text.replace(">=", "-ge-").replace("<=", "-le-").replace(">", "-gt-").replace("<", "-lt-")
    text = re.sub(r"[^\w+.-]+", "-", text).strip("-.")
    text = re.sub(r"-{2,}", "-", text)
    if text:
        return text
    return REALISM if not name.strip() else "c-" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:12]


def remove(path: Path) -> None:
    """Remove a file, a symbolic link (never what it points at) or a folder, if there is one."""
    if path.is_symlink() or (os.path.lexists(path) and not path.is_dir()):
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


class RunConstraints(ConstraintSet):
    """`ConstraintSet` over ``RUN/constraints``; constraints are loaded on first use and cached."""

    def __init__(self, run: RunDir):
        self.run = run
        self._cache: dict[str, Constraint] = {}
        self._lock: int | None = None

    def folder(self, name: str) -> Path:
        """Where constraint ``name`` lives."""
        return self.run.constraints_dir / folder_name(name)

    def partial_folder(self, name: str) -> Path:
        """Where constraint ``name`` is trained before it is moved into place."""
        return self.run.constraints_dir / f".{folder_name(name)}.partial"

    def _root(self) -> Path | None:
        root = self.run.constraints_dir
        if root.is_symlink():
            raise LctkError(f"{root} is a symbolic link; lctk never follows links in a run folder: replace it with "
                            "a folder")
        return root if root.is_dir() else None

    def _entries(self) -> list[Path]:
        """Constraint folders (and links posing as ones), by name."""
        root = self._root()
        if root is None:
            return []
        return sorted((p for p in root.iterdir() if not p.name.startswith(".")
                       and (p.is_symlink() or (p / "constraint.json").is_file())), key=lambda p: p.name)

    def names(self) -> list[str]:
        return [p.name for p in self._entries() if not p.is_symlink()]

    def get(self, name: str) -> Constraint:
        key = folder_name(name)
        if key not in self._cache:
            folder = self.folder(name)
            if folder.is_symlink():
                raise LctkError(f"constraint folder {folder} is a symbolic link; lctk never follows links in a run "
                                f"folder: remove it, or retrain it with `lctk add-constraint {self.run.path} ... "
                                f"--name {name} --force`")
            if not (folder / "constraint.json").is_file():
                have = ", ".join(self.names()) or "none yet"
                raise LctkError(f"run {self.run.path} has no constraint {name!r} (it has: {have}); train it with "
                                f"`lctk add-constraint {self.run.path} ...`")
            self._cache[key] = load_constraint(folder)
        return self._cache[key]

    def _loaded(self) -> tuple[list[Constraint], list[LctkError]]:
        """Every constraint that loads, and the errors of those that do not."""
        good, bad = [], []
        for path in self._entries():
            try:
                c = self.get(path.name)
            except LctkError as e:
                bad.append(e)
            else:  # found by its own name too (a folder named by an older lctk, or renamed)
                self._cache.setdefault(folder_name(c.name), c)
                good.append(c)
        return good, bad

    @staticmethod
    def _skip(bad: Sequence[LctkError]) -> None:
        for e in bad:
            warn(f"skipped a damaged constraint: {e}")

    def all(self, method: str | None = None) -> list[Constraint]:
        """Every trained constraint (of ``method`` only, if given: see `serves`; damaged ones skipped with a
        warning)."""
        good, bad = self._loaded()
        self._skip(bad)
        return [c for c in good if method is None or serves(c, method)]

    def covering(self, targets: Sequence[str], method: str | None = None) -> Constraint | None:
        """The smallest constraint (of ``method``, if given) whose targets include all of ``targets``; when none
        does and some constraint folder is damaged (it may be the one wanted), that damage is the error."""
        good, bad = self._loaded()
        fits = [c for c in good if set(targets) <= set(c.targets) and (method is None or serves(c, method))]
        if not fits and bad:
            raise bad[0]
        self._skip(bad)
        return min(fits, key=lambda c: len(c.targets)) if fits else None

    def containing(self, target: str, method: str | None = None) -> Constraint | None:
        """The smallest constraint (of ``method``, if given) that has ``target`` among its targets."""
        return self.covering([target], method)

    # -- writing -------------------------------------------------------------------------------------------
    def check_free(self, name: str, force: bool) -> None:
        """Refuse to train ``name`` over an existing constraint (unless ``force``) or a link (ditto: the link is
        replaced, never followed)."""
        dest = self.folder(name)
        self._root()
        if dest.is_symlink() and not force:
            raise LctkError(f"constraint folder {dest} is a symbolic link; lctk never follows links in a run folder: "
                            "pass --force to replace it with the trained constraint, or remove it")
        if os.path.lexists(dest) and not force:
            raise LctkError(f"constraint {dest.name!r} already exists in {self.run.path}; pass --force to retrain "
                            "it or --name to keep both")

    def lock(self, name: str) -> Path:
        """Make and lock the partial folder of ``name`` for this process (until `release`); a one-line error
        when another process holds it."""
        self._root()
        self.run.constraints_dir.mkdir(parents=True, exist_ok=True)
        partial = self.partial_folder(name)
        while True:
            if os.path.lexists(partial) and (partial.is_symlink() or not partial.is_dir()):
                partial.unlink()  # a link is removed, never followed
            partial.mkdir(exist_ok=True)
            fd = os.open(partial, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0))
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    os.close(fd)
                    raise LctkError(f"another add-constraint is writing constraint {name!r} (pid {self._writer(partial)}) "
                                    f"in {self.run.path}; wait for it to finish, or stop it and run this again") from None
            try:  # the previous holder may have moved the folder into place meanwhile: lock the one now there
                same = os.path.samestat(os.fstat(fd), os.stat(partial, follow_symlinks=False))
            except OSError:
                same = False
            if same:
                break
            os.close(fd)
        self._lock = fd
        try:  # atomically: a kill never leaves it empty, and a link in its place is replaced, never followed
            write_bytes(partial / WRITER_PID, str(os.getpid()).encode())
        except BaseException:
            self.release()
            raise
        return partial

    @staticmethod
    def _writer(partial: Path) -> str:
        try:
            text = (partial / WRITER_PID).read_text()[:20].strip() if not (partial / WRITER_PID).is_symlink() else ""
        except OSError:
            text = ""
        return text if text.isdigit() else "unknown"

    def release(self) -> None:
        """Unlock what `lock` locked (a no-op when nothing is)."""
        if self._lock is not None:
            os.close(self._lock)  # closing the descriptor drops the lock
            self._lock = None

    def install(self, partial: Path, name: str) -> Path:
        """Move a finished ``partial`` folder into place as ``name``, replacing an older one (or a link) last;
        no ``.NAME.old`` is left behind."""
        dest = self.folder(name)
        old = dest.with_name(f".{dest.name}.old")
        (partial / WRITER_PID).unlink(missing_ok=True)
        remove(old)
        if os.path.lexists(dest):
            dest.rename(old)  # renames a link itself, never what it points at
        try:
            partial.rename(dest)
        except BaseException:
            if os.path.lexists(old) and not os.path.lexists(dest):
                old.rename(dest)
            raise
        remove(old)
        self._cache.pop(folder_name(name), None)
        return dest
