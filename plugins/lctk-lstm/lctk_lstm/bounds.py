"""Bounds on one tune, so that a tiny hostile file cannot make a loader loop or grow without end.

Every tune is checked against the caps below before the work that grows with its length (bars laid out,
measures made, the skyline drawn); a tune past a cap raises `TuneTooBig` and its file is skipped with a
warning naming it. Whatever slips past the caps is stopped by a time budget per tune (`time_budget`,
``--data-option tune_seconds=N``, default `TUNE_SECONDS`, in seconds of processor time, so that a busy machine
does not make good tunes run out of it): the tune is abandoned and skipped the same way.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from typing import Iterator

from lctk_lstm.encoding import STEPS_PER_QUARTER

#: At most this many 16th-note steps per tune (4,096 bars of 4/4: over two hours at 120 bpm).
MAX_STEPS = 2 ** 16
#: At most this many quarter notes per tune (the same length as `MAX_STEPS`).
MAX_QUARTERS = MAX_STEPS // STEPS_PER_QUARTER
#: At most this many bars per tune (room for short meters such as 2/8 over the whole `MAX_STEPS`).
MAX_BARS = 16_384
#: At most this many notes per tune.
MAX_NOTES = 2 ** 16
#: Largest time-signature denominator (MIDI stores it as a power of two: 2^6 = 64).
MAX_DENOMINATOR = 64
#: Default seconds of processor time one tune may take to parse before it is abandoned.
TUNE_SECONDS = 30.0


class TuneTooBig(ValueError):
    """A tune goes past one of the caps of this module."""


class TuneTimeout(BaseException):
    """A tune took longer than its time budget (a BaseException, so parsers' ``except Exception`` cannot
    swallow it)."""


def check_length(steps: float, what: str = "tune") -> None:
    """Refuse a tune of more than `MAX_STEPS` 16th-note steps."""
    if not steps <= MAX_STEPS:  # also refuses NaN
        raise TuneTooBig(f"{what} is {_amount(steps / STEPS_PER_QUARTER)} quarter notes long; lctk reads at "
                         f"most {MAX_QUARTERS} per tune")


def check_bars(bars: float) -> None:
    """Refuse a tune of more than `MAX_BARS` bars."""
    if not bars <= MAX_BARS:
        raise TuneTooBig(f"tune has {_amount(bars)} bars; lctk reads at most {MAX_BARS} per tune")


def check_notes(notes: int) -> None:
    """Refuse a tune of more than `MAX_NOTES` notes."""
    if notes > MAX_NOTES:
        raise TuneTooBig(f"tune has {notes} notes; lctk reads at most {MAX_NOTES} per tune")


def check_denominator(exponent: int) -> int:
    """The denominator ``2 ** exponent`` of a MIDI time signature, refused past `MAX_DENOMINATOR`."""
    if exponent > MAX_DENOMINATOR.bit_length() - 1:
        raise TuneTooBig(f"time signature with denominator 2^{exponent}; the largest lctk reads is {MAX_DENOMINATOR}")
    return 2 ** exponent


def _amount(value: float) -> str:
    return f"{value:.3g}" if value < 1e6 else f"{value:.2e}"


@contextlib.contextmanager
def time_budget(seconds: float | None) -> Iterator[None]:
    """Raise `TuneTimeout` in the body once it has used ``seconds`` of processor time (None or 0: no budget).

    Uses SIGPROF, so it only works in a process's main thread (parser workers and the CLI); elsewhere it does
    nothing and `lctk_lstm.parse` uses worker processes instead. The alarm repeats every second until the body
    ends, in case a parser swallows the first one."""
    if not seconds or not in_main_thread():
        yield
        return
    active = [True]
    started = time.process_time()

    def expire(signum, frame):
        if active[0]:
            raise TuneTimeout(f"took longer than {seconds:g} s (the tune_seconds budget); abandoned")

    previous = signal.signal(signal.SIGPROF, expire)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_PROF, seconds, 1.0)
    try:
        yield
    finally:
        active[0] = False
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)
        if old_delay:  # someone else's timer was running: give it back what is left of its wait
            left = max(0.001, old_delay - (time.process_time() - started))
            signal.setitimer(signal.ITIMER_PROF, left, old_interval)


def in_main_thread() -> bool:
    """Whether `time_budget` can work here."""
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
