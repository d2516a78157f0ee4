"""Facts about batches of melody tokens ``(B, T)``, computed exactly: note counts, pitch classes, ranges, keys.

The named attributes of a melody dataset come from here (`ATTRIBUTES`, binary, and `CONTINUOUS`, numbers), so
the evaluator can compute the same attributes for generated melodies. Only note-ons count as notes; a melody
without notes fits no key or range.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterable

import torch
from torch import Tensor

from lctk_lstm.encoding import FIRST_NOTE, MIN_PITCH, REST, STEPS_PER_BAR, VOCAB_SIZE
from lctk_lstm.theory import NAMES, parse_key, scale

#: Note-on count thresholds of the ``dense`` and ``sparse`` attributes (of 32 steps).
DENSE_NOTES, SPARSE_NOTES = 12, 6
#: Spans in semitones from which a melody has a ``wide-range``, up to which a ``narrow-range``.
WIDE_RANGE, NARROW_RANGE = 12, 5
#: Keys that get an ``in-KEY`` attribute.
ATTRIBUTE_KEYS = ("C", "G", "D", "F", "Bb", "Am", "Em", "Dm")


def pitches(tokens: Tensor) -> Tensor:
    """MIDI pitch of each note-on token, -1 elsewhere; ``(B, T)`` int64."""
    return torch.where(tokens >= FIRST_NOTE, tokens - FIRST_NOTE + MIN_PITCH, torch.full_like(tokens, -1))


def note_counts(tokens: Tensor) -> Tensor:
    """``(B,)`` number of note-ons."""
    return (tokens >= FIRST_NOTE).sum(dim=1)


def pitch_class_counts(tokens: Tensor) -> Tensor:
    """``(B, 12)`` note-ons per pitch class (C = 0)."""
    p = pitches(tokens)  # (B, T)
    bins = torch.where(p >= 0, p % 12, torch.full_like(p, 12))  # (B, T), 12 for "no note"
    counts = torch.zeros(len(tokens), 13, dtype=torch.long, device=tokens.device)
    return counts.scatter_add_(1, bins, torch.ones_like(bins))[:, :12]


def intervals(tokens: Tensor) -> tuple[Tensor, Tensor]:
    """Signed interval in semitones from the previous note to each note, ``(B, T)`` int64 (0 elsewhere), and
    ``(B, T)`` bool telling where there is one (a note with a note before it)."""
    p = pitches(tokens)  # (B, T)
    is_note = p >= 0  # (B, T)
    steps = torch.arange(tokens.shape[1], device=tokens.device).expand_as(p)  # (B, T)
    last = torch.where(is_note, steps, torch.full_like(steps, -1)).cummax(dim=1).values  # (B, T) last note step
    before = torch.cat([torch.full_like(last[:, :1], -1), last[:, :-1]], dim=1)  # (B, T) last note before t
    prev = p.gather(1, before.clamp(min=0))  # (B, T)
    has = is_note & (before >= 0)  # (B, T)
    return torch.where(has, p - prev, torch.zeros_like(p)), has


def max_leap(tokens: Tensor) -> Tensor:
    """``(B,)`` largest interval in semitones between consecutive notes (0 with fewer than two notes)."""
    return intervals(tokens)[0].abs().max(dim=1).values


def contour(tokens: Tensor) -> Tensor:
    """``(B,)`` float in [-1, 1]: the mean direction of the moves between consecutive notes (+1 up, -1 down,
    0 repeated), so 1 is a melody that only rises, -1 one that only falls; 0 with fewer than two notes."""
    moves, has = intervals(tokens)  # (B, T) each
    return moves.sign().float().sum(dim=1) / has.sum(dim=1).clamp(min=1).float()


def metrical_depth(steps: int) -> Tensor:
    """``(steps,)`` depth of each 16th-note step in 4/4: 0 bar start, 1 half bar, 2 beat, 3 eighth, 4 16th."""
    t = torch.arange(steps) % STEPS_PER_BAR
    depth = torch.full((steps,), 4)
    for level, every in ((3, 2), (2, 4), (1, 8), (0, 16)):
        depth[t % every == 0] = level
    return depth


def rhythmic_complexity(tokens: Tensor) -> Tensor:
    """``(B,)`` float in [0, 1]: the mean metrical depth of the note onsets divided by 4, so 0 for notes only
    on bar starts and 1 for notes only on off-beat 16ths; 0 without notes."""
    onsets = (tokens >= FIRST_NOTE).float()  # (B, T)
    depth = metrical_depth(tokens.shape[1]).to(tokens.device).float()  # (T,)
    return (onsets * depth).sum(dim=1) / (4 * onsets.sum(dim=1).clamp(min=1))


def pitch_bounds(tokens: Tensor) -> tuple[Tensor, Tensor]:
    """Lowest and highest MIDI pitch, ``(B,)`` each; -1 for melodies without notes."""
    p = pitches(tokens)  # (B, T)
    has = (p >= 0).any(dim=1)  # (B,)
    high = p.max(dim=1).values  # (B,)
    low = torch.where(p >= 0, p, torch.full_like(p, 10_000)).min(dim=1).values  # (B,)
    return torch.where(has, low, torch.full_like(low, -1)), torch.where(has, high, torch.full_like(high, -1))


@dataclasses.dataclass
class Summary:
    """What the attributes look at, computed once for a batch: ``notes (B,)`` note-on counts,
    ``classes (B, 12)`` note-ons per pitch class, ``low``/``high (B,)`` pitch bounds (-1: no notes),
    ``max_leap (B,)`` largest interval between consecutive notes (0 with fewer than two), ``rests (B,)``
    number of rest tokens."""

    notes: Tensor
    classes: Tensor
    low: Tensor
    high: Tensor
    max_leap: Tensor
    rests: Tensor

    @classmethod
    def of(cls, tokens: Tensor) -> "Summary":
        """The summary of ``(B, T)`` tokens."""
        low, high = pitch_bounds(tokens)
        return cls(note_counts(tokens), pitch_class_counts(tokens), low, high, max_leap(tokens),
                   (tokens == REST).sum(dim=1))

    def in_pitch_classes(self, classes: Iterable[int]) -> Tensor:
        """``(B,)`` bool: at least one note and every note's pitch class in ``classes``."""
        outside = torch.ones(12, dtype=torch.bool)
        outside[list(classes)] = False
        return (self.notes > 0) & (self.classes[:, outside.to(self.classes.device)].sum(dim=1) == 0)

    @property
    def span(self) -> Tensor:
        """``(B,)`` semitones between lowest and highest note (0 without notes)."""
        return self.high - self.low


def in_key(tokens: Tensor, key: str) -> Tensor:
    """``(B,)`` bool: every note in the scale of ``key`` (``C``, ``Am``, ...; see `lctk_lstm.theory`)."""
    return Summary.of(tokens).in_pitch_classes(scale(*parse_key(key)))


def transpose(tokens: Tensor, semitones: int) -> tuple[Tensor, Tensor]:
    """Every note-on of ``(N, T)`` tokens moved by ``semitones``; returns the moved tokens and ``(N,)`` bool
    telling which windows stayed inside the encoded pitch range (the others are clamped and should go)."""
    notes = tokens >= FIRST_NOTE  # (N, T)
    shifted = torch.where(notes, tokens + semitones, tokens)  # (N, T)
    ok = (~notes | ((shifted >= FIRST_NOTE) & (shifted < VOCAB_SIZE))).all(dim=1)  # (N,)
    return shifted.clamp(0, VOCAB_SIZE - 1), ok


def key_attribute_name(key: str) -> str:
    """``Am`` -> ``in-a-minor``, ``Bb`` -> ``in-bb-major``."""
    tonic, mode = parse_key(key)
    return f"in-{NAMES[tonic].lower()}-{mode}"


def _key_attribute(key: str) -> Callable[[Summary], Tensor]:
    classes = scale(*parse_key(key))
    return lambda s: s.in_pitch_classes(classes)


#: Attribute name -> function of a batch's `Summary` giving ``(B,)`` bool.
ATTRIBUTES: dict[str, Callable[[Summary], Tensor]] = {
    **{key_attribute_name(k): _key_attribute(k) for k in ATTRIBUTE_KEYS},
    "dense": lambda s: s.notes >= DENSE_NOTES,
    "sparse": lambda s: s.notes <= SPARSE_NOTES,
    "wide-range": lambda s: (s.notes > 0) & (s.span >= WIDE_RANGE),
    "narrow-range": lambda s: (s.notes > 0) & (s.span <= NARROW_RANGE),
    "stepwise": lambda s: (s.notes >= 2) & (s.max_leap <= 2),
    "has-rest": lambda s: s.rests > 0,
}


#: Continuous attribute name -> function of ``(B, T)`` tokens giving ``(B,)`` float (see docs/melodies.md).
CONTINUOUS: dict[str, Callable[[Tensor], Tensor]] = {
    "density": lambda tokens: note_counts(tokens).float(),
    "range": lambda tokens: Summary.of(tokens).span.float(),
    "contour": contour,
    "rhythm": rhythmic_complexity,
}


def continuous_table(tokens: Tensor, names: Iterable[str] | None = None) -> Tensor:
    """``(B, C)`` float: the continuous attributes ``names`` (default all) of ``(B, T)`` tokens."""
    names = list(names) if names is not None else list(CONTINUOUS)
    if len(tokens) == 0:
        return torch.zeros(0, len(names))
    return torch.stack([CONTINUOUS[n](tokens) for n in names], dim=1)


def attribute_names() -> list[str]:
    """Names of the melody attributes, in column order."""
    return list(ATTRIBUTES)


def attribute_table(tokens: Tensor, names: Iterable[str] | None = None) -> Tensor:
    """``(B, A)`` bool: the attributes ``names`` (default all) of ``(B, T)`` tokens."""
    names = list(names) if names is not None else attribute_names()
    if len(tokens) == 0:
        return torch.zeros(0, len(names), dtype=torch.bool)
    summary = Summary.of(tokens)
    return torch.stack([ATTRIBUTES[n](summary) for n in names], dim=1)
