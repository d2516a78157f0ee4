"""The melody token encoding (MusicVAE's): one token per 16th-note step, 2 bars of 4/4 = 32 steps.

Tokens: ``REST`` (0) silences what sounds (a note-off), ``HOLD`` (1) continues whatever sounds (a note or the
silence), ``2 + pitch - MIN_PITCH`` starts a note of that MIDI pitch (ending the previous one). The pitch range
is the piano's, MIDI 21 (A0) to 108 (C8), so the vocabulary has 90 tokens. Canonical form: a silence is one
``REST`` followed by ``HOLD`` s; a window that starts silent starts with ``REST``; a ``HOLD`` at step 0 reads
as silence.

Events are the same melody as notes: ``Note(start, end, pitch)`` in steps, ``end`` exclusive.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Sequence

import numpy as np

STEPS_PER_QUARTER = 4
STEPS_PER_BAR = 16
BARS = 2
SEQ_LEN = STEPS_PER_BAR * BARS
MIN_PITCH, MAX_PITCH = 21, 108
REST, HOLD = 0, 1
FIRST_NOTE = 2
VOCAB_SIZE = FIRST_NOTE + MAX_PITCH - MIN_PITCH + 1


@dataclasses.dataclass(frozen=True)
class Note:
    """One note: MIDI ``pitch`` sounding from step ``start`` up to (not including) step ``end``."""

    start: int
    end: int
    pitch: int


def note_token(pitch: int) -> int:
    """The note-on token of MIDI ``pitch`` (folded by octaves into the encoded range)."""
    return FIRST_NOTE + fold_pitch(pitch) - MIN_PITCH


def fold_pitch(pitch: int) -> int:
    """``pitch`` moved by whole octaves into [MIN_PITCH, MAX_PITCH]."""
    while pitch < MIN_PITCH:
        pitch += 12
    while pitch > MAX_PITCH:
        pitch -= 12
    return pitch


def tokens_to_events(tokens: Sequence[int] | np.ndarray) -> list[Note]:
    """One window of tokens ``(T,)`` -> its notes, in order."""
    notes: list[Note] = []
    current: tuple[int, int] | None = None  # (start, pitch)
    seq = [int(t) for t in (tokens.tolist() if hasattr(tokens, "tolist") else tokens)]
    for step, tok in enumerate(seq):
        if tok == HOLD:
            continue
        if current is not None:
            notes.append(Note(current[0], step, current[1]))
            current = None
        if tok >= FIRST_NOTE:
            current = (step, tok - FIRST_NOTE + MIN_PITCH)
    if current is not None:
        notes.append(Note(current[0], len(seq), current[1]))
    return notes


def events_to_tokens(notes: Iterable[Note], length: int = SEQ_LEN) -> np.ndarray:
    """Notes (steps relative to the window start) -> ``(length,)`` int64 tokens in canonical form.

    Notes are made monophonic: of notes starting on the same step the highest wins, and a later start ends
    the sounding note. A note that started before step 0 and still sounds there is struck again at step 0.
    """
    winners: dict[int, tuple[bool, int, int]] = {}  # start step -> (starts here, pitch, end)
    for note in notes:
        start, end = max(note.start, 0), min(note.end, length)
        if end <= start:
            continue
        key = (note.start >= 0, note.pitch, end)
        if start not in winners or key[:2] > winners[start][:2]:
            winners[start] = key
    onset = np.full(length, -1, dtype=np.int64)
    sounding = np.full(length, -1, dtype=np.int64)
    starts = sorted(winners)
    for i, start in enumerate(starts):
        _, pitch, end = winners[start]
        stop = min(end, starts[i + 1]) if i + 1 < len(starts) else end
        onset[start] = pitch
        sounding[start:stop] = pitch
    return grid_to_tokens(onset, sounding)


def grid_to_tokens(onset: np.ndarray, sounding: np.ndarray) -> np.ndarray:
    """Per-step ``onset`` pitch (-1: none) and ``sounding`` pitch (-1: silence), ``(T,)`` each -> tokens ``(T,)``."""
    tokens = np.full(len(onset), HOLD, dtype=np.int64)
    for t in range(len(onset)):
        if onset[t] >= 0:
            tokens[t] = note_token(int(onset[t]))
        elif sounding[t] < 0 and (t == 0 or sounding[t - 1] >= 0):
            tokens[t] = REST
    return tokens
