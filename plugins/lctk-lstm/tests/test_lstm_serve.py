"""Melodies in the explorer: the synthesiser's WAV, the writer's media (piano roll, sound, MIDI), and a tiny
melody run sampled and listened to in a real browser."""

from __future__ import annotations

import base64
import importlib.util
import io
import shutil
import wave
from pathlib import Path

import numpy as np
import pytest

from conftest import ESSEN_TUNES
from lctk_lstm.encoding import FIRST_NOTE, HOLD, MIN_PITCH, REST, SEQ_LEN
from lctk_lstm.synth import SAMPLE_RATE, step_seconds, synthesize, wav_bytes
from lctk_lstm.writer import MelodyWriter
from test_lstm_cli import TINY_CONSTRAINT, TINY_LSTM

REPO = Path(__file__).resolve().parents[3]


def a440_then_rest() -> np.ndarray:
    """One bar of A4 (MIDI 69), then a bar of silence: ``(32,)`` tokens."""
    tokens = np.full(SEQ_LEN, HOLD)
    tokens[0], tokens[16] = FIRST_NOTE + 69 - MIN_PITCH, REST
    return tokens


def test_synthesised_note_has_its_pitch_and_length():
    samples = synthesize(a440_then_rest())
    assert len(samples) == round(SEQ_LEN * step_seconds() * SAMPLE_RATE) and np.abs(samples).max() <= 1.0
    half = len(samples) // 2
    sounding, silent = samples[:half], samples[half + SAMPLE_RATE // 10:]
    assert np.sqrt((sounding ** 2).mean()) > 0.05 and np.abs(silent).max() < 1e-3
    spectrum = np.abs(np.fft.rfft(sounding))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE / len(sounding)
    assert abs(peak_hz - 440.0) < 2.0


def test_wav_is_a_playable_16_bit_mono_file():
    data = wav_bytes(synthesize(a440_then_rest()))
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, SAMPLE_RATE)
        assert abs(w.getnframes() / SAMPLE_RATE - SEQ_LEN * step_seconds()) < 0.01


def test_writer_renders_roll_sound_and_midi():
    import torch

    batch = torch.from_numpy(np.stack([a440_then_rest(), np.full(SEQ_LEN, HOLD)]))
    rendered = MelodyWriter().render(batch)
    assert [[m.mime for m in item] for item in rendered] == [["image/png", "audio/wav", "audio/midi"]] * 2
    assert rendered[0][0].data[:8] == b"\x89PNG\r\n\x1a\n" and rendered[0][1].data[:4] == b"RIFF"
    assert rendered[0][2].data[:4] == b"MThd" and rendered[0][1].inline and not rendered[0][2].inline
    assert ".mid" in MelodyWriter.input_suffixes and ".abc" in MelodyWriter.input_suffixes


@pytest.fixture(scope="module")
def melody_run(tmp_path_factory):
    """A tiny LSTM run on 200 Essen tunes with a zero-shot `density>=4` constraint."""
    from click.testing import CliRunner

    from lctk.cli import cli

    run = tmp_path_factory.mktemp("melody-serve") / "run"
    for args in (["train-vae", "--backbone", "lstm", "--data", "essen", "--data-option", f"max_tunes={ESSEN_TUNES}",
                  "--epochs", "1", "--out", str(run), *TINY_LSTM], ["encode", str(run)],
                 ["add-constraint", str(run), "--rule", "density>=4", *TINY_CONSTRAINT]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
    return run


def test_api_samples_and_edits_melodies(melody_run):
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from lctk.serve.app import create_app

    with TestClient(create_app(melody_run)) as client:
        info = client.get("/api/run").json()
        assert info["modality"] == "melody" and info["rules"] == ["density>=4"]
        items = client.post("/api/sample", json={"rules": ["density>=4"], "n": 4}).json()["items"]
        assert len(items) == 4 and all(base64.b64decode(item[1]["data"])[:4] == b"RIFF" for item in items)
        edit = client.post("/api/edit", json={"test_index": 0, "rules": ["density>=4"], "steps": 10}).json()
        assert [m["mime"] for m in edit["after"]] == ["image/png", "audio/wav", "audio/midi"]
        midi = base64.b64decode(edit["before"][2]["data"])
        upload = client.post("/api/edit-upload?suffix=.mid&rules=density>=4&steps=10", content=midi)
        assert upload.status_code == 200, upload.text


def test_browser_plays_a_melody(melody_run, tmp_path):
    """Headless Chromium: sample with the rule, and the first audio element holds a playable 4-second WAV."""
    pytest.importorskip("selenium")
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.fail("the browser tests need Debian's chromium and chromium-driver (installed by .ci/run)")
    spec = importlib.util.spec_from_file_location("explorer_tour", REPO / "examples" / "explorer_tour.py")
    tour = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tour)
    with tour.explorer(melody_run) as url:
        seen = tour.tour(url, tmp_path / "shots", rules=["density>=4"])
    assert seen["sample_items"] == 16 and seen["sample_audio"] == 16
    assert seen["audio_header"] == "RIFF" and abs(seen["audio_duration_s"] - SEQ_LEN * step_seconds()) < 0.05
    assert seen["edit_images"] == 2 and seen["inspect_tables"] >= 3
    assert all((tmp_path / "shots" / f"{page}.png").stat().st_size > 0 for page in ("sample", "edit", "inspect"))
