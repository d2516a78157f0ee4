"""Zero-shot rules on melodies, checked exactly on decoded tokens ``(B, T)``:

- ``key=C``, ``key=Am``, ``key=F#``, ``key=Bb minor``: every note in the scale of that key (a minor key's
  scale includes its raised 7th; see `lctk_lstm.theory`), and at least one note;
- ``density>=N``, ``density<=N`` (also ``>``, ``<``, ``=``): the number of notes (note-ons) compared to N;
- ``range=LOW..HIGH``: every note between LOW and HIGH inclusive (MIDI numbers or names such as ``C4..C5``),
  and at least one note.
"""

from __future__ import annotations

import operator
import re

from torch import Tensor

from lctk.plugin_api import LctkError, Rule
from lctk_lstm.encoding import SEQ_LEN
from lctk_lstm.features import Summary, note_counts, pitch_bounds
from lctk_lstm.rule_forms import DENSITY_FORMS, KEY_FORMS, RANGE_FORMS, RULE_HELP
from lctk_lstm.theory import key_name, parse_key, parse_pitch, pitch_name, scale

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq, "=": operator.eq}


class KeyRule(Rule):
    """Every note in the scale of a key (and at least one note)."""

    def __init__(self, spec: str, tonic: int, mode: str):
        self.spec, self.tonic, self.mode = spec, tonic, mode
        self.classes = scale(tonic, mode)

    def __call__(self, outputs: Tensor) -> Tensor:
        return Summary.of(outputs).in_pitch_classes(self.classes)  # (B,)

    def __repr__(self) -> str:
        return f"KeyRule({key_name(self.tonic, self.mode)})"


class DensityRule(Rule):
    """The number of note-ons compared with a bound."""

    def __init__(self, spec: str, op: str, bound: int):
        self.spec, self.op, self.bound = spec, op, bound

    def __call__(self, outputs: Tensor) -> Tensor:
        return _OPS[self.op](note_counts(outputs), self.bound)  # (B,)

    def __repr__(self) -> str:
        return f"DensityRule(notes {self.op} {self.bound})"


class RangeRule(Rule):
    """Every note within [low, high] (and at least one note)."""

    def __init__(self, spec: str, low: int, high: int):
        self.spec, self.low, self.high = spec, low, high

    def __call__(self, outputs: Tensor) -> Tensor:
        low, high = pitch_bounds(outputs)  # (B,) each, -1 without notes
        return (low >= self.low) & (high <= self.high) & (high >= 0)

    def __repr__(self) -> str:
        return f"RangeRule({pitch_name(self.low)}..{pitch_name(self.high)})"


def _value(spec: str, name: str, forms: str) -> str:
    m = re.fullmatch(rf"\s*{name}\s*=\s*(.+?)\s*", spec, flags=re.IGNORECASE)
    if not m:
        raise LctkError(f"rule {spec!r} is not understood; write {forms}")
    return m.group(1)


def parse_key_rule(spec: str) -> KeyRule:
    """``key=C`` ... -> `KeyRule`; a one-line LctkError naming the accepted forms otherwise."""
    value = _value(spec, "key", KEY_FORMS)
    try:
        tonic, mode = parse_key(value)
    except ValueError:
        raise LctkError(f"rule {spec!r}: {value!r} is not a key; write {KEY_FORMS}") from None
    return KeyRule(spec, tonic, mode)


def parse_density_rule(spec: str) -> DensityRule:
    """``density>=N`` ... -> `DensityRule`; a one-line LctkError naming the accepted forms otherwise."""
    m = re.fullmatch(r"\s*density\s*(>=|<=|==|=|>|<)\s*(\d+)\s*", spec, flags=re.IGNORECASE)
    if not m or int(m.group(2)) > SEQ_LEN:
        raise LctkError(f"rule {spec!r} is not understood; write {DENSITY_FORMS}")
    return DensityRule(spec, m.group(1), int(m.group(2)))


def parse_range_rule(spec: str) -> RangeRule:
    """``range=C4..C5`` -> `RangeRule`; a one-line LctkError naming the accepted forms otherwise."""
    value = _value(spec, "range", RANGE_FORMS)
    parts = value.split("..")
    try:
        if len(parts) != 2:
            raise ValueError(value)
        low, high = parse_pitch(parts[0]), parse_pitch(parts[1])
    except ValueError:
        raise LctkError(f"rule {spec!r} is not understood; write {RANGE_FORMS}") from None
    if low > high:
        raise LctkError(f"rule {spec!r}: {parts[0].strip()} lies above {parts[1].strip()}; write range=LOW..HIGH")
    return RangeRule(spec, low, high)


#: Rule name -> (parser, help), as registered with lctk.
RULES = {
    "key": (parse_key_rule, RULE_HELP["key"]),
    "density": (parse_density_rule, RULE_HELP["density"]),
    "range": (parse_range_rule, RULE_HELP["range"]),
}


def parse_rule(spec: str) -> Rule:
    """Any melody rule from its spec (the name is the text before the first ``=<>!``)."""
    name = re.split(r"[=<>!]", spec, maxsplit=1)[0].strip().lower()
    if name not in RULES:
        raise LctkError(f"unknown melody rule {spec!r}; melody rules: {', '.join(RULES)} (e.g. key=C, density>=8, "
                        "range=C4..C5)")
    return RULES[name][0](spec)
