"""Killing lctk commands at random moments and checking what they leave behind.

Shared by the kill tests (tests/test_kills.py, a few kills) and the soak script (benchmarks/soak.py, many).
Commands run as ``python -m lctk ...`` in fresh processes with one compute thread, so they compute exactly
what an in-process run with ``torch.set_num_threads(1)`` computes and leave the shared cores alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

import h5py
import torch
from PIL import Image

from lctk.util.errors import LctkError
from lctk.util.io import is_temp, load_json, load_tensors
from lctk.latents import LatentStore

THREADS_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def lctk_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for an lctk subprocess: one thread, no colours, this interpreter's packages."""
    env = {**os.environ, **THREADS_ENV, "NO_COLOR": "1", "TERM": "dumb"}
    env.update(extra or {})
    return env


class Launch:
    """One ``python -m lctk ARGS`` process; stderr goes to a temporary file (never a pipe that could fill)."""

    def __init__(self, args: Sequence[str], cwd: Path | None = None, env: dict[str, str] | None = None):
        self.args = [str(a) for a in args]
        self._err = tempfile.TemporaryFile()
        self.started = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "lctk", *self.args], cwd=cwd, env=lctk_env(env),
                                     stdout=subprocess.DEVNULL, stderr=self._err, start_new_session=True)

    def running(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: int) -> bool:
        """Send ``sig`` if the process still runs; True if it was sent."""
        if not self.running():
            return False
        try:
            self.proc.send_signal(sig)
        except ProcessLookupError:
            return False
        return True

    def wait(self, timeout: float = 600) -> int:
        """Wait for the end; the exit code (negative: killed by that signal)."""
        return self.proc.wait(timeout=timeout)

    def stderr(self) -> str:
        self._err.seek(0)
        return self._err.read().decode(errors="replace")

    def close(self) -> None:
        if self.running():
            self.proc.kill()
            self.proc.wait()
        self._err.close()


def run_to_end(args: Sequence[str], timeout: float = 600) -> tuple[int, str]:
    """Run an lctk command to its end: (exit code, stderr)."""
    launch = Launch(args)
    try:
        return launch.wait(timeout), launch.stderr()
    finally:
        launch.close()


def kill_after(args: Sequence[str], delay: float, ready: Callable[[], bool] | None = None, sig: int = signal.SIGKILL,
               timeout: float = 600) -> tuple[bool, int, str]:
    """Start ``lctk ARGS``; once ``ready()`` holds (polled; immediately if None), wait ``delay`` seconds and send
    ``sig``. Returns (whether the signal was sent, exit code, stderr)."""
    launch = Launch(args)
    try:
        deadline = time.monotonic() + timeout
        if ready is not None:
            while launch.running() and not ready():
                if time.monotonic() > deadline:
                    raise TimeoutError(f"lctk {' '.join(launch.args)} never got ready")
                time.sleep(0.01)
        end = time.monotonic() + delay
        while launch.running() and time.monotonic() < end:
            time.sleep(min(0.005, max(0.0, end - time.monotonic())))
        sent = launch.signal(sig)
        code = launch.wait(timeout)
        return sent, code, launch.stderr()
    finally:
        launch.close()


def changed(path: Path) -> Callable[[], bool]:
    """A readiness test: true once ``path`` exists with another modification time (or inode) than now."""
    def stamp():
        try:
            st = path.stat()
            return st.st_mtime_ns, st.st_ino
        except FileNotFoundError:
            return None
    before = stamp()
    return lambda: (s := stamp()) is not None and s != before


# -- checking a run folder ------------------------------------------------------------------------------------


def check_file(path: Path) -> str | None:
    """None if ``path`` is whole and readable by what reads it; else what is wrong with it."""
    name = path.name
    try:
        if name.endswith(".json"):
            load_json(path)
        elif name.endswith(".safetensors"):
            _, metadata = load_tensors(path)
            if name == "checkpoint.safetensors":
                info = json.loads(metadata["lctk"])
                if not isinstance(info.get("meta", {}).get("step"), int):
                    return "checkpoint without a step"
        elif name == "latents.h5":
            LatentStore.open(path).close()
        elif name.endswith(".h5.partial"):
            pass  # an unfinished latent store: encode resumes it or starts over; it is never read as latents
        elif name.endswith(".h5"):
            with h5py.File(path, "r"):
                pass
        elif name.endswith(".png"):
            with Image.open(path) as img:
                img.verify()
        elif path.stat().st_size == 0:
            return "empty file"
    except LctkError as e:
        return str(e)
    except Exception as e:  # noqa: BLE001 - any failure to read is a finding
        return f"{type(e).__name__}: {e}"
    return None


def check_folder(folder: Path) -> tuple[list[str], list[Path]]:
    """(problems as ``relative/path: what``, leftover temporary files) for every file under ``folder``."""
    problems: list[str] = []
    temps: list[Path] = []
    if not folder.exists():
        return problems, temps
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        if is_temp(path):
            temps.append(path)
            continue
        problem = check_file(path)
        if problem:
            problems.append(f"{path.relative_to(folder)}: {problem}")
    return problems, temps


def checkpoint_step(path: Path) -> int | None:
    """The step recorded in a training checkpoint, or None without a readable one."""
    try:
        _, metadata = load_tensors(path)
        return int(json.loads(metadata["lctk"])["meta"]["step"])
    except (LctkError, KeyError, ValueError, TypeError):
        return None


def same_weights(a: Path, b: Path) -> bool:
    """True if two safetensors files hold the same tensor names with bit-identical values."""
    ta, _ = load_tensors(a)
    tb, _ = load_tensors(b)
    return ta.keys() == tb.keys() and all(ta[k].dtype == tb[k].dtype and torch.equal(ta[k], tb[k]) for k in ta)


def digest_tree(folder: Path) -> dict[str, str]:
    """``relative path -> sha256`` of every non-temporary file (to compare before and after)."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and not is_temp(p)}
