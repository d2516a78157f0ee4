"""The continuous melody attributes (docs/melodies.md) on hand-made melodies, as the dataset stores them and as
the evaluator measures generated melodies."""

from __future__ import annotations

import torch

from lctk_lstm.encoding import Note
from lctk_lstm.evaluator import MelodyEvaluator
from lctk_lstm.features import CONTINUOUS, continuous_table, metrical_depth

from test_lstm_rules import A_MINOR_LEADING_TONE, C_MAJOR_ARPEGGIO, SILENT, melodies

SYNCOPATED = [Note(1, 3, 60), Note(3, 5, 62), Note(5, 7, 60)]  # onsets on off-beat 16ths, up then down


def test_continuous_attributes_of_hand_made_melodies():
    batch = melodies(C_MAJOR_ARPEGGIO, A_MINOR_LEADING_TONE, SYNCOPATED, SILENT)
    table = continuous_table(batch)  # (4, 4): density, range, contour, rhythm
    assert list(CONTINUOUS) == ["density", "range", "contour", "rhythm"]
    assert table[:, 0].tolist() == [4, 3, 3, 0]  # notes
    assert table[:, 1].tolist() == [12, 1, 2, 0]  # semitones from lowest to highest
    assert table[:, 2].tolist() == [1.0, 0.0, 0.0, 0.0]  # only rising; down then up; up then down; no notes
    # onsets at steps 0, 4, 8, 12 have depths 0, 2, 1, 2; steps 1, 3, 5 are off-beat 16ths (depth 4)
    assert torch.allclose(table[:, 3], torch.tensor([5 / 16, (0 + 2 + 1) / 12, 1.0, 0.0]))
    assert metrical_depth(16).tolist() == [0, 4, 3, 4, 2, 4, 3, 4, 1, 4, 3, 4, 2, 4, 3, 4]


def test_evaluator_measures_what_the_dataset_stores():
    batch = melodies(C_MAJOR_ARPEGGIO, SYNCOPATED)
    judge = MelodyEvaluator.__new__(MelodyEvaluator)
    assert judge.measure("density", batch).tolist() == [4.0, 3.0]
    assert judge.measure("Range", batch).tolist() == [12.0, 2.0]
    assert judge.measure("smiling", batch) is None
