"""The training skeleton the VAE trainer (`lctk.trainer`) and the constraint trainer (`lctk.engine.training`)
share: phases of steps, each drawing its randomness from generators seeded by (seed, purpose, step), so a
resumed run continues bit for bit; a progress bar per phase with an ETA; a checkpoint every
``checkpoint_every`` steps (0: every `CHECKPOINT_SECONDS`), at the end, and when stopped; weights checked
finite before they are saved; Ctrl-C or SIGTERM stops at the next step boundary (a second one at once)."""

from __future__ import annotations

import time
import warnings
from abc import ABC, abstractmethod
from typing import Callable, Iterable

import torch

from lctk.util.errors import LctkError, TrainingDiverged
from lctk.util.interrupt import GracefulStop
from lctk.util.progress import Progress

#: Seconds between checkpoints when no step interval is given.
CHECKPOINT_SECONDS = 60.0


def warn_thread_policy() -> None:
    """Say once, when torch was imported before lctk (so its threads spin at barriers, several times slower on
    shared cores), how to avoid it."""
    import lctk

    if lctk.SPINNING_THREADS and torch.get_num_threads() > 1:
        warnings.warn("torch was imported before lctk, so its threads spin while they wait (training on shared cores "
                      "can be several times slower); import lctk first, or set OMP_WAIT_POLICY=PASSIVE before Python "
                      "starts", RuntimeWarning, stacklevel=3)


def step_generator(seed: int, purpose: int, step: int) -> torch.Generator:
    """A generator determined by (seed, purpose, step): what a step draws does not depend on what came before."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + purpose) * 1_000_003 + step) % 2**62)


def adam(params, **kwargs) -> torch.optim.Adam:
    """Adam with torch's fused kernel where it has one for the parameters' device (on CPU a step of the conv VAE's
    3.3 M weights takes 3 ms instead of 16 ms; the same update up to float rounding), else the default one."""
    params = list(params)
    try:
        return torch.optim.Adam(params, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):  # an older torch, or a device without the fused kernel
        return torch.optim.Adam(params, **kwargs)


def check_finite(named_parameters: Iterable[tuple[str, torch.Tensor]], step: int, kept: str,
                 wrap: Callable[[LctkError], LctkError] = lambda e: e) -> None:
    """Refuse weights that are no longer finite (``kept`` says what happened to the last checkpoint and what to
    do); ``wrap`` adapts the error (e.g. to be said once under torchrun)."""
    for name, p in named_parameters:
        if not torch.isfinite(p).all():
            raise wrap(TrainingDiverged(f"weight {name} became NaN or infinite at step {step}; {kept}"))


class StepLoop(ABC):
    """A trainer made of phases of steps. Subclasses set ``step`` (steps done), ``progress`` and
    ``checkpoint_every``, and implement `phases`, `train_step` and `save`; `after_step` and `stopping` are
    optional hooks (epoch bookkeeping; agreeing with other processes on a stop)."""

    step: int
    progress: Progress
    checkpoint_every: int

    @abstractmethod
    def phases(self) -> list[tuple[str, int]]:
        """``(name, steps)`` of each phase, in order (phases of 0 steps are skipped)."""

    @abstractmethod
    def train_step(self, step: int) -> str:
        """Run step ``step`` (0-based); return the figures to show beside the bar."""

    @abstractmethod
    def save(self) -> None:
        """Write the checkpoint (check the weights are finite first)."""

    def after_step(self, step: int) -> None:
        """Called after ``step`` steps are done, before a checkpoint is considered (e.g. to close an epoch)."""

    def stopping(self, requested: bool) -> bool:
        """Whether to stop now, given whether this process was asked to."""
        return requested

    def run_phases(self, title: str) -> None:
        """Run every phase from ``step`` to the end; raises KeyboardInterrupt after saving when stopped."""
        warn_thread_policy()
        phases = [(name, n) for name, n in self.phases() if n > 0]
        total = sum(n for _, n in phases)
        every = self.checkpoint_every
        last_save = time.monotonic()
        start = 0
        with GracefulStop() as stop:
            for name, n in phases:
                end = start + n
                if self.step < end:
                    label = f"{title}: {name}" if len(phases) > 1 else title
                    with self.progress.task(label, total=n, completed=max(0, self.step - start)) as bar:
                        while self.step < end:
                            info = self.train_step(self.step)
                            self.step += 1
                            bar.advance(1, info=info)
                            self.after_step(self.step)
                            stopping = self.stopping(stop.requested)
                            if stopping or self.step == total or (every and self.step % every == 0) or \
                                    (not every and time.monotonic() - last_save > CHECKPOINT_SECONDS):
                                self.save()
                                last_save = time.monotonic()
                            if stopping:
                                raise KeyboardInterrupt
                start = end
