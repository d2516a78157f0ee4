"""Stopping long work cleanly: Ctrl-C or SIGTERM asks the loop to stop at the next step boundary, where it
saves a consistent checkpoint; a second signal stops at once (the previous checkpoint stays valid)."""

from __future__ import annotations

import signal
import threading


class GracefulStop:
    """Within this context SIGINT/SIGTERM set `requested` instead of raising; a second one raises
    KeyboardInterrupt immediately. Loops check `requested` between steps."""

    def __init__(self):
        self.requested = False
        self._old: dict[int, object] = {}

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> "GracefulStop":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False
