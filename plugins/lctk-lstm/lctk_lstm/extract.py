"""Melodies on the 16th-note grid and their 2-bar 4/4 windows of tokens.

A `Melody` is one monophonic line: its notes in absolute steps and its bars. It is built from a music21
stream (ABC, MusicXML, ...: the first part, the top note of chords) or from MIDI notes (see `lctk_lstm.midi`).
Windows start at every bar line where two complete 4/4 (or 2/2) bars follow each other; pickup bars, other
meters and windows without a note are skipped.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from lctk_lstm.bounds import check_bars, check_length, check_notes
from lctk_lstm.encoding import FIRST_NOTE, SEQ_LEN, STEPS_PER_BAR, STEPS_PER_QUARTER, Note, events_to_tokens

#: Bump when the extraction changes what it produces (invalidates cached windows).
EXTRACT_VERSION = 1
#: Meters whose bars are 16 steps of 16th notes.
FOUR_FOUR = ("4/4", "2/2")


@dataclasses.dataclass
class Melody:
    """A monophonic line: ``notes`` in absolute steps, ``bars`` as (start step, complete 4/4 bar?) pairs,
    ``off_grid`` the steps where a note starts off the 16th-note grid (triplets, ...)."""

    notes: list[Note]
    bars: list[tuple[int, bool]]
    off_grid: set[int] = dataclasses.field(default_factory=set)


def window_starts(melody: Melody) -> list[int]:
    """Start steps of every pair of consecutive complete 4/4 bars."""
    starts = []
    for (s0, ok0), (s1, ok1) in zip(melody.bars, melody.bars[1:]):
        if ok0 and ok1 and s1 == s0 + STEPS_PER_BAR:
            starts.append(s0)
    return starts


def melody_windows(melody: Melody, skip_off_grid: bool = True, limit: int | None = None) -> np.ndarray:
    """``(W, 32)`` uint8 token windows of ``melody`` (only windows with at least one note-on; with
    ``skip_off_grid``, none holding a note that starts off the 16th grid). At most ``limit`` windows."""
    notes = sorted(melody.notes, key=lambda n: n.start)
    rows = []
    for start in window_starts(melody):
        end = start + SEQ_LEN
        if skip_off_grid and any(start <= s < end for s in melody.off_grid):
            continue
        inside = [Note(n.start - start, n.end - start, n.pitch) for n in notes if n.start < end and n.end > start]
        tokens = events_to_tokens(inside)
        if not (tokens >= FIRST_NOTE).any():
            continue
        rows.append(tokens)
        if limit is not None and len(rows) >= limit:
            break
    if not rows:
        return np.zeros((0, SEQ_LEN), dtype=np.uint8)
    return np.stack(rows).astype(np.uint8)


def melody_from_stream(score) -> Melody:
    """The melody of a music21 score or part: its first part, ties merged, its highest voice where it has several.

    A part longer than the caps of `lctk_lstm.bounds` raises `TuneTooBig` before measures are made."""
    from music21 import meter, stream

    part = score
    if isinstance(score, stream.Score) and score.parts:
        part = score.parts[0]
    quarters = float(part.highestTime)
    check_length(quarters * STEPS_PER_QUARTER)
    check_notes(len(part.recurse().notes))
    part = part.stripTies()
    measures = list(part.getElementsByClass(stream.Measure))
    first_meter = part.recurse().getElementsByClass(meter.TimeSignature).first()
    if not measures and first_meter is not None:
        check_bars(quarters / max(float(first_meter.barDuration.quarterLength), 1e-9))
        part = part.makeMeasures()
        measures = list(part.getElementsByClass(stream.Measure))
    check_bars(len(measures))
    bars = []
    ts = None
    for m in measures:
        if m.timeSignature is not None:
            ts = m.timeSignature
        start = float(m.offset) * STEPS_PER_QUARTER
        complete = (ts is not None and ts.ratioString in FOUR_FOUR and float(m.paddingLeft) == 0
                    and abs(float(m.highestTime) - 4.0) < 1e-6 and abs(start - round(start)) < 1e-6)
        bars.append((round(start), complete))
    notes, off_grid = [], set()
    for element in part.flatten().notes:
        length = float(element.duration.quarterLength)
        if length <= 0 or element.duration.isGrace:
            continue
        pitches = [p.midi for p in getattr(element, "pitches", ()) if p is not None]
        if not pitches:
            continue
        on = float(element.offset) * STEPS_PER_QUARTER
        off = on + length * STEPS_PER_QUARTER
        start = round(on)
        if abs(on - start) > 1e-6:
            off_grid.add(start)
        notes.append(Note(start, max(start + 1, round(off)), max(pitches)))
    return Melody(skyline(notes) if _overlapping(notes) else notes, bars, off_grid)


def _overlapping(notes: list[Note]) -> bool:
    ordered = sorted(notes, key=lambda n: n.start)
    return any(b.start < a.end for a, b in zip(ordered, ordered[1:]))



def skyline(notes: list[Note]) -> list[Note]:
    """The highest voice of possibly polyphonic ``notes``: at every step the highest sounding pitch, struck
    anew where that pitch starts or where the top line changes."""
    if not notes:
        return []
    last = max(n.end for n in notes)
    top = np.full(last, -1, dtype=np.int64)
    for n in notes:
        top[n.start:n.end] = np.maximum(top[n.start:n.end], n.pitch)
    struck = np.zeros(last, dtype=bool)
    for n in notes:
        if top[n.start] == n.pitch:
            struck[n.start] = True
    out, current = [], None  # current: (start, pitch)
    for t in range(last + 1):
        pitch = int(top[t]) if t < last else -1
        new = t < last and pitch >= 0 and (current is None or pitch != current[1] or struck[t])
        if current is not None and (new or pitch < 0):
            out.append(Note(current[0], t, current[1]))
            current = None
        if new:
            current = (t, pitch)
    return out
