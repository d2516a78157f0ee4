"""Progress bars (rich) for every long loop; quiet on non-zero ranks; off a terminal, a line per 10 % and at
least every `LOG_SECONDS`, with the time left."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Iterator

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

#: Off a terminal, the longest silence between two progress lines.
LOG_SECONDS = 30.0

console = Console(stderr=True, width=None if sys.stderr.isatty() or "COLUMNS" in os.environ else 160)
"""The console lctk reports on (stderr, so that stdout carries only results); 160 columns in logs, so that
tables and one-line messages stay readable there."""


class Task:
    """One running progress task; call `advance` as work completes."""

    def __init__(self, progress: "Progress", task_id, description: str, total: float | None):
        self._p, self._id, self.description, self.total = progress, task_id, description, total
        self.completed = 0.0
        self._next_log = 0.1
        self._start = self._last_log = time.monotonic()
        self._start_completed = 0.0

    def advance(self, n: float = 1, info: str | None = None) -> None:
        """Mark ``n`` more units done; ``info`` replaces the figures shown beside the bar (losses, ...)."""
        self.completed += n
        if self._p.rich is not None:
            self._p.rich.update(self._id, advance=n, **({"info": info} if info is not None else {}))
        elif self._p.enabled and self.total:
            frac = self.completed / self.total
            now = time.monotonic()
            if frac >= self._next_log or self.completed >= self.total or now - self._last_log >= LOG_SECONDS:
                elapsed = now - self._start
                done = self.completed - self._start_completed
                eta = f", eta {elapsed * (self.total - self.completed) / done:.0f}s" if 0 < done and frac < 1 else ""
                console.print(f"{self.description}: {int(self.completed)}/{int(self.total)} "
                              f"({100 * frac:.0f}%, {elapsed:.0f}s{eta}) {info or ''}", highlight=False)
                self._last_log = now
                while self._next_log <= frac:
                    self._next_log += 0.1


class Progress:
    """A progress display. ``enabled=False`` (e.g. on ranks other than 0) shows nothing."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.rich: RichProgress | None = None

    @contextlib.contextmanager
    def task(self, description: str, total: float | None = None, completed: float = 0) -> Iterator[Task]:
        """A context in which ``description`` shows a bar with ``total`` units, starting at ``completed``."""
        own = False
        if self.enabled and console.is_terminal and self.rich is None:
            self.rich = RichProgress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TextColumn("eta"),
                                     TimeRemainingColumn(), console=console)
            self.rich.start()
            own = True
        task_id = self.rich.add_task(description, total=total, completed=completed, info="") if self.rich else None
        task = Task(self, task_id, description, total)
        task.completed = task._start_completed = completed
        task._next_log = (int(10 * completed / total) + 1) / 10 if total else 0.1
        try:
            yield task
        finally:
            if self.rich is not None:
                self.rich.remove_task(task_id) if not own else None
                if own:
                    self.rich.stop()
                    self.rich = None


def silent() -> Progress:
    """A progress that shows nothing."""
    return Progress(enabled=False)
