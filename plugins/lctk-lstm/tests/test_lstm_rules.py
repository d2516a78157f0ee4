"""Melody rules on hand-made melodies, through lctk's registry, and their one-line errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lctk.util.errors import LctkError
from lctk.interfaces import Rule
from lctk.plugins import get_registries
from lctk_lstm.encoding import Note, events_to_tokens


def melodies(*note_lists) -> torch.Tensor:
    return torch.from_numpy(np.stack([events_to_tokens(notes) for notes in note_lists]))


C_MAJOR_ARPEGGIO = [Note(0, 4, 60), Note(4, 8, 64), Note(8, 12, 67), Note(12, 16, 72)]  # C E G C, 4 notes
F_SHARP_MAJOR = [Note(0, 8, 66), Note(8, 16, 70), Note(16, 24, 73)]  # F# A# C#, 3 notes
A_MINOR_LEADING_TONE = [Note(0, 4, 69), Note(4, 8, 68), Note(8, 16, 69)]  # A G# A
SILENT: list[Note] = []
BATCH = melodies(C_MAJOR_ARPEGGIO, F_SHARP_MAJOR, A_MINOR_LEADING_TONE, SILENT)


def rule(spec: str) -> Rule:
    return get_registries().rule_entry(spec).value(spec)


@pytest.mark.parametrize("spec, expected", [
    ("key=C", [True, False, False, False]),
    ("key=Am", [True, False, True, False]),
    ("key=F#", [False, True, False, False]),
    ("key=Gb", [False, True, False, False]),
    ("key=Bb minor", [False, True, True, False]),  # Gb Bb Db; Ab is in it
    ("key=Eb", [False, False, False, False]),
    ("key=A minor", [True, False, True, False]),
    ("density>=4", [True, False, False, False]),
    ("density<=3", [False, True, True, True]),
    ("density>3", [True, False, False, False]),
    ("density=0", [False, False, False, True]),
    ("range=C4..C5", [True, False, True, False]),
    ("range=60..72", [True, False, True, False]),
    ("range=F#4..C#5", [False, True, True, False]),
])
def test_rules_on_hand_made_melodies(spec, expected):
    r = rule(spec)
    assert isinstance(r, Rule) and r.spec == spec
    out = r(BATCH)
    assert out.dtype == torch.bool and out.shape == (4,)
    assert out.tolist() == expected


@pytest.mark.parametrize("spec, accepted", [
    ("key=H", "key=Am"),
    ("key=C dorian", "key=Am"),
    ("key", "key=Am"),
    ("density>=many", "density<=N"),
    ("density>=99", "density<=N"),
    ("density!=3", "density<=N"),
    ("range=C4", "range=LOW..HIGH"),
    ("range=C5..C4", "range=LOW..HIGH"),
    ("range=Z1..C4", "range=LOW..HIGH"),
])
def test_malformed_specs_say_the_accepted_forms_in_one_line(spec, accepted):
    with pytest.raises(LctkError) as info:
        rule(spec)
    assert accepted in str(info.value) and "\n" not in str(info.value)


def test_rules_are_registered_for_melodies():
    entries = get_registries().rules
    for name in ("key", "density", "range"):
        assert entries[name].modality == "melody" and entries[name].plugin == "lctk-lstm"
