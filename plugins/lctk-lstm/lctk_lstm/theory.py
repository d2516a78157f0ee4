"""Pitch names and keys: ``C4`` -> 60, ``Bb minor`` -> the pitch classes of its scale.

A major key's scale is the major (Ionian) scale; a minor key's is the natural minor scale plus the raised
7th (leading tone) of the harmonic minor, so ``Am`` admits G and G#.
"""

from __future__ import annotations

import re

LETTERS = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
NAMES = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
MAJOR_STEPS = (0, 2, 4, 5, 7, 9, 11)
MINOR_STEPS = (0, 2, 3, 5, 7, 8, 10, 11)

_NOTE = re.compile(r"^([a-gA-G])(#{1,2}|b{1,2}|-{1,2}|♯|♭)?$")
_KEY = re.compile(r"^([a-gA-G](?:#|b|-|♯|♭)?)\s*([a-zA-Z]*)$")
_PITCH = re.compile(r"^([a-gA-G](?:#{1,2}|b{1,2}|♯|♭)?)(-1|\d)$")
MAJOR_WORDS, MINOR_WORDS = ("", "M", "maj", "major"), ("m", "min", "minor")


def pitch_class(name: str) -> int:
    """``C`` -> 0, ``F#`` -> 6, ``Bb`` (or ``B-``) -> 10; ValueError for anything else."""
    m = _NOTE.match(name.strip())
    if not m:
        raise ValueError(f"not a note name: {name!r}")
    accidental = m.group(2) or ""
    shift = accidental.count("#") + accidental.count("♯") - accidental.count("b") - accidental.count("-") \
        - accidental.count("♭")
    return (LETTERS[m.group(1).lower()] + shift) % 12


def parse_pitch(text: str) -> int:
    """A MIDI number (``60``) or a note name with octave (``C4`` = 60, ``F#3``, ``Bb2``, ``C-1`` = 0) -> MIDI
    number."""
    text = text.strip()
    if re.fullmatch(r"\d{1,3}", text):
        value = int(text)
        if value > 127:
            raise ValueError(f"MIDI pitch {value} is above 127")
        return value
    m = _PITCH.match(text)
    if not m:
        raise ValueError(f"not a pitch: {text!r}")
    name, octave = m.group(1), int(m.group(2))
    letter = LETTERS[name[0].lower()]
    value = 12 * (octave + 1) + letter + (pitch_class(name) - letter + 6) % 12 - 6
    if not 0 <= value <= 127:
        raise ValueError(f"pitch {text} is outside MIDI 0..127")
    return value


def pitch_name(pitch: int) -> str:
    """MIDI number -> name with octave (60 -> ``C4``)."""
    return f"{NAMES[pitch % 12]}{pitch // 12 - 1}"


def parse_key(text: str) -> tuple[int, str]:
    """``C``, ``Am``, ``F#``, ``Bb minor``, ``Eb major`` -> (tonic pitch class, ``major`` or ``minor``)."""
    m = _KEY.match(text.strip())
    if not m:
        raise ValueError(f"not a key: {text!r}")
    word = m.group(2)
    if word in MAJOR_WORDS or word.lower() in MAJOR_WORDS[2:]:
        return pitch_class(m.group(1)), "major"
    if word == "m" or word.lower() in MINOR_WORDS[1:]:
        return pitch_class(m.group(1)), "minor"
    raise ValueError(f"not a key mode: {word!r}")


def scale(tonic: int, mode: str) -> frozenset[int]:
    """Pitch classes of the scale of a key (see the module docstring for minor keys)."""
    steps = MAJOR_STEPS if mode == "major" else MINOR_STEPS
    return frozenset((tonic + s) % 12 for s in steps)


def key_name(tonic: int, mode: str) -> str:
    """(0, ``major``) -> ``C``; (9, ``minor``) -> ``Am``."""
    return NAMES[tonic] + ("m" if mode == "minor" else "")
