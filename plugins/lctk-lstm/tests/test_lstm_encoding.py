"""The melody encoding: tokens <-> notes <-> MIDI bytes, monophony, transposition, pitch names."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lctk_lstm.encoding import FIRST_NOTE, HOLD, REST, SEQ_LEN, VOCAB_SIZE, Note, events_to_tokens, \
    note_token, tokens_to_events
from lctk_lstm.extract import skyline
from lctk_lstm.features import attribute_table, max_leap, transpose
from lctk_lstm.midi import MidiError, melody_from_midi, notes_to_midi, parse_midi
from lctk_lstm.extract import melody_windows
from lctk_lstm.theory import parse_key, parse_pitch, scale


def random_windows(n: int, seed: int = 0) -> np.ndarray:
    """``(n, 32)`` canonical windows of random monophonic melodies."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        notes, t = [], int(rng.integers(0, 4))
        while t < SEQ_LEN:
            length = int(rng.choice([1, 2, 3, 4, 6, 8]))
            if rng.random() < 0.8:
                notes.append(Note(t, min(SEQ_LEN, t + length), int(rng.integers(48, 85))))
            t += length + int(rng.random() < 0.2)
        out.append(events_to_tokens(notes))
    return np.stack(out)


def test_vocabulary_is_musicvaes():
    assert (REST, HOLD, FIRST_NOTE, VOCAB_SIZE) == (0, 1, 2, 90)
    assert note_token(21) == 2 and note_token(108) == 89
    assert note_token(12) == note_token(24)  # folded into range


def test_windows_events_midi_events_round_trip():
    windows = random_windows(50)
    for tokens in windows:
        notes = tokens_to_events(tokens)
        content = parse_midi(notes_to_midi(notes))
        melody = melody_from_midi(content)
        assert melody.notes == notes
        again = events_to_tokens(melody.notes)
        assert np.array_equal(again, tokens)


def test_written_midi_parses_back_with_music21(tmp_path):
    music21 = pytest.importorskip("music21")
    notes = [Note(0, 4, 60), Note(4, 6, 62), Note(8, 16, 64), Note(20, 32, 67)]
    path = tmp_path / "m.mid"
    path.write_bytes(notes_to_midi(notes))
    score = music21.converter.parse(str(path))
    read = [(float(n.offset) * 4, float(n.quarterLength) * 4, n.pitch.midi) for n in score.flatten().notes]
    assert read == [(n.start, n.end - n.start, n.pitch) for n in notes]


def test_canonical_form():
    # a note sounding into the window is struck at step 0; silence starts with REST then HOLDs
    tokens = events_to_tokens([Note(-4, 2, 60), Note(8, 10, 64)])
    assert tokens[0] == note_token(60) and tokens[1] == HOLD and tokens[2] == REST and tokens[3] == HOLD
    assert tokens[8] == note_token(64) and tokens[10] == REST
    assert events_to_tokens([])[0] == REST
    # a HOLD at step 0 reads as silence; a REST in silence changes nothing
    assert tokens_to_events([HOLD, note_token(60), REST, REST, HOLD]) == [Note(1, 2, 60)]


def test_monophony_keeps_highest_of_simultaneous_and_cuts_at_next_start():
    tokens = events_to_tokens([Note(0, 8, 60), Note(0, 4, 67), Note(2, 6, 64)])
    assert tokens_to_events(tokens) == [Note(0, 2, 67), Note(2, 6, 64)]


def test_skyline_takes_the_top_line():
    notes = [Note(0, 8, 48), Note(0, 4, 64), Note(4, 6, 62), Note(10, 12, 50)]
    assert skyline(notes) == [Note(0, 4, 64), Note(4, 6, 62), Note(6, 8, 48), Note(10, 12, 50)]


def test_malformed_midi_raises_midi_error():
    for data in (b"", b"not a midi file at all", notes_to_midi([Note(0, 4, 60)])[:-6]):
        with pytest.raises(MidiError):
            parse_midi(data)


def test_transpose_drops_out_of_range_windows():
    low = torch.tensor(events_to_tokens([Note(0, 4, 22)]))[None]
    high = torch.tensor(events_to_tokens([Note(0, 4, 100)]))[None]
    moved, ok = transpose(torch.cat([low, high]), 5)
    assert ok.tolist() == [True, True]
    assert tokens_to_events(moved[0]) == [Note(0, 4, 27)]
    moved, ok = transpose(torch.cat([low, high]), -3)
    assert ok.tolist() == [False, True]


def test_attributes_on_hand_made_melodies():
    c_major = events_to_tokens([Note(0, 4, 60), Note(4, 8, 62), Note(8, 12, 64), Note(12, 32, 65)])
    wide = events_to_tokens([Note(0, 4, 60), Note(4, 8, 79), Note(16, 20, 61)])
    table = attribute_table(torch.tensor(np.stack([c_major, wide])), ["in-c-major", "wide-range", "stepwise",
                                                                      "has-rest", "sparse"])
    assert table.tolist() == [[True, False, True, False, True], [False, True, False, True, True]]
    assert max_leap(torch.tensor(wide)[None]).item() == 19


def test_melody_windows_skip_silent_and_off_grid():
    from lctk_lstm.extract import Melody

    bars = [(0, True), (16, True), (32, True), (48, True)]
    melody = Melody([Note(0, 4, 60), Note(40, 44, 62)], bars, off_grid={41})
    assert len(melody_windows(melody, skip_off_grid=False)) == 3
    assert len(melody_windows(melody)) == 1  # windows at 16 and 32 hold the off-grid note


def test_pitch_and_key_names():
    assert [parse_pitch(p) for p in ("C4", "60", "F#3", "Bb2", "C-1")] == [60, 60, 54, 46, 0]
    assert parse_key("Am") == (9, "minor") and parse_key("F#") == (6, "major")
    assert parse_key("Bb minor") == (10, "minor")
    assert 8 in scale(9, "minor") and 8 not in scale(0, "major")  # G# in A minor (leading tone)
