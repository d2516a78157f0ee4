"""The constraints of a run: one self-describing folder each under ``RUN/constraints/``."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Sequence

from lctk.engine.constraint import LatentConstraint
from lctk.util.errors import LctkError
from lctk.interfaces import ConstraintSet
from lctk.run import RunDir

REALISM = "realism"


def folder_name(name: str) -> str:
    """A file-system-safe constraint name: ``density>=8`` -> ``density-ge-8``."""
    text = name.lower().replace(">=", "-ge-").replace("<=", "-le-").replace(">", "-gt-").replace("<", "-lt-")
    text = re.sub(r"[^a-z0-9+_.-]+", "-", text).strip("-.")
    return re.sub(r"-{2,}", "-", text) or REALISM


class RunConstraints(ConstraintSet):
    """`ConstraintSet` over ``RUN/constraints``; constraints are loaded on first use and cached."""

    def __init__(self, run: RunDir):
        self.run = run
        self._cache: dict[str, LatentConstraint] = {}

    def folder(self, name: str) -> Path:
        """Where constraint ``name`` lives."""
        return self.run.constraints_dir / folder_name(name)

    def partial_folder(self, name: str) -> Path:
        """Where constraint ``name`` is trained before it is moved into place."""
        return self.run.constraints_dir / f".{folder_name(name)}.partial"

    def names(self) -> list[str]:
        root = self.run.constraints_dir
        if not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir() if not p.name.startswith(".") and (p / "constraint.json").is_file())

    def get(self, name: str) -> LatentConstraint:
        key = folder_name(name)
        if key not in self._cache:
            if not (self.folder(name) / "constraint.json").is_file():
                have = ", ".join(self.names()) or "none yet"
                raise LctkError(f"run {self.run.path} has no constraint {name!r} (it has: {have}); train it with "
                                f"`lctk add-constraint {self.run.path} ...`")
            self._cache[key] = LatentConstraint.load(self.folder(name))
        return self._cache[key]

    def all(self) -> list[LatentConstraint]:
        """Every trained constraint."""
        return [self.get(n) for n in self.names()]

    def covering(self, targets: Sequence[str]) -> LatentConstraint | None:
        """The smallest constraint whose targets include all of ``targets``."""
        fits = [c for c in self.all() if set(targets) <= set(c.targets)]
        return min(fits, key=lambda c: len(c.targets)) if fits else None

    def containing(self, target: str) -> LatentConstraint | None:
        """The smallest constraint that has ``target`` among its targets."""
        return self.covering([target])

    def install(self, partial: Path, name: str) -> Path:
        """Move a finished ``partial`` folder into place as ``name``, replacing an older one last."""
        dest = self.folder(name)
        old = dest.with_name(f".{dest.name}.old")
        if old.exists():
            shutil.rmtree(old)
        if dest.exists():
            dest.rename(old)
        partial.rename(dest)
        if old.exists():
            shutil.rmtree(old)
        self._cache.pop(folder_name(name), None)
        return dest
