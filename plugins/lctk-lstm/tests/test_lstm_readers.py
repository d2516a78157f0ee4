"""Melody datasets from users' ABC and MIDI folders (files written by the tests), the cache, and errors."""

from __future__ import annotations

import time

import pytest
import torch

from conftest import write_music21_midi
from lctk.util.errors import LctkError
from lctk.plugins import DataRequest
from lctk_lstm.datasets import load_abc_folder, load_midi_folder, load_music21_corpus
from lctk_lstm.encoding import Note, events_to_tokens
from lctk_lstm.writer import MelodyWriter

# "Ode to joy", first two bars at L:1/4: E E F G | G F E D
ODE_BARS_1_2 = events_to_tokens([Note(4 * i, 4 * i + 4, p) for i, p in enumerate([64, 64, 65, 67, 67, 65, 64, 62])])


def rows(dataset) -> set[tuple[int, ...]]:
    return {tuple(r) for r in dataset.examples.tolist()}


def test_abc_folder_reads_good_files_and_reports_the_malformed_one(abc_dir, capsys):
    dataset = load_abc_folder(DataRequest(data_dir=abc_dir))
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "broken.abc" in warnings[0] and "skipped" in warnings[0]
    assert tuple(ODE_BARS_1_2) in rows(dataset)
    # ode: 4 bars -> 3 windows; scale tune: 4 bars -> 3 windows; the 3/4 waltz gives none
    assert len(dataset) == 6
    assert dataset.examples.dtype == torch.int64 and dataset.examples.shape[1] == 32
    assert dataset.spec == {"seq_len": 32, "vocab_size": 90}
    assert dataset.modality == "melody" and "in-c-major" in dataset.attribute_names
    assert dataset.attributes.shape == (6, len(dataset.attribute_names))


def test_second_load_comes_from_the_cache(abc_dir, capsys):
    first = load_abc_folder(DataRequest(data_dir=abc_dir))
    started = time.perf_counter()
    second = load_abc_folder(DataRequest(data_dir=abc_dir))
    assert time.perf_counter() - started < 2.0
    assert torch.equal(first.examples, second.examples) and torch.equal(first.split, second.split)
    assert capsys.readouterr().err.count("cached in") == 1  # parsed once only
    (abc_dir / "ode.abc").write_text((abc_dir / "ode.abc").read_text().replace("E E F G", "C C F G"))
    changed = load_abc_folder(DataRequest(data_dir=abc_dir))
    assert tuple(ODE_BARS_1_2) not in rows(changed)


def test_midi_folder_reads_music21_files_and_skips_broken_ones(tmp_path, capsys):
    folder = tmp_path / "midi"
    folder.mkdir()
    melody = [(64, 1), (64, 1), (65, 1), (67, 1), (67, 1), (65, 1), (64, 1), (62, 1), (60, 2), (None, 2)]
    write_music21_midi(folder / "ode.mid", melody)
    # melody over chords: the highest voice is the melody
    write_music21_midi(folder / "band.mid", melody, chords=[(0, [48, 52, 55], 4), (4, [43, 47, 50], 4)])
    (folder / "garbage.mid").write_bytes(b"MThd this is not really midi")
    (folder / "empty.midi").write_bytes(b"")
    dataset = load_midi_folder(DataRequest(data_dir=folder))
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2 and any("garbage.mid" in w for w in warnings) and any("empty.midi" in w for w in warnings)
    assert tuple(ODE_BARS_1_2) in rows(dataset)
    assert len(dataset) == 2  # both files give the same first window (deduplicated) and a second one


def test_read_input_from_abc_and_midi(abc_dir, tmp_path):
    writer = MelodyWriter()
    spec = {"seq_len": 32, "vocab_size": 90}
    assert writer.read_input(abc_dir / "ode.abc", spec)[0].tolist() == ODE_BARS_1_2.tolist()
    path = write_music21_midi(tmp_path / "in.mid", [(64, 1), (64, 1), (65, 1), (67, 1), (67, 1), (65, 1), (64, 1), (62, 1)])
    x = writer.read_input(path, spec)
    assert x.shape == (1, 32) and x.dtype == torch.int64 and x[0].tolist() == ODE_BARS_1_2.tolist()
    with pytest.raises(LctkError, match="could not be read"):
        writer.read_input(abc_dir / "broken.abc", spec)
    (tmp_path / "bad.mid").write_bytes(b"garbage")
    with pytest.raises(LctkError, match="could not be read"):
        writer.read_input(tmp_path / "bad.mid", spec)
    with pytest.raises(LctkError, match="does not exist"):
        writer.read_input(tmp_path / "missing.mid", spec)


def test_user_errors_are_one_line(tmp_path):
    for call, match in [
        (lambda: load_abc_folder(DataRequest()), "needs --data-dir"),
        (lambda: load_abc_folder(DataRequest(data_dir=tmp_path)), "no abc files"),
        (lambda: load_midi_folder(DataRequest(data_dir=tmp_path / "nope")), "is not a folder"),
        (lambda: load_music21_corpus(DataRequest()), "collection=NAME"),
        (lambda: load_music21_corpus(DataRequest(options={"collection": "nosuch"})), "oneills1850"),
        (lambda: load_midi_folder(DataRequest(data_dir=tmp_path, options={"colour": "red"})), "no option colour"),
    ]:
        with pytest.raises(LctkError, match=match) as info:
            call()
        assert "\n" not in str(info.value)


def test_transposition_adds_shifted_windows_on_the_same_side(abc_dir):
    plain = load_abc_folder(DataRequest(data_dir=abc_dir))
    shifted = load_abc_folder(DataRequest(data_dir=abc_dir, options={"transpose": "2"}))
    assert len(shifted) == 5 * len(plain)  # -2..2 semitones, all inside the pitch range
    assert rows(plain) <= rows(shifted)
    up_two = torch.where(torch.from_numpy(ODE_BARS_1_2) >= 2, torch.from_numpy(ODE_BARS_1_2) + 2,
                         torch.from_numpy(ODE_BARS_1_2))
    assert tuple(up_two.tolist()) in rows(shifted)
    tune = shifted.meta["tune_of_window"]
    for t in tune.unique():
        assert len(shifted.split[tune == t].unique()) == 1
    with pytest.raises(LctkError, match="transpose"):
        load_abc_folder(DataRequest(data_dir=abc_dir, options={"transpose": "up"}))


def test_a_music21_corpus_collection():
    dataset = load_music21_corpus(DataRequest(options={"collection": "oneills1850", "max_tunes": "6", "workers": "1"}))
    assert len(dataset) > 10 and dataset.modality == "melody"
