"""End to end through the CLI: train a tiny LSTM VAE on a few Essen tunes, encode, look at what was written,
and evaluate melodies."""

from __future__ import annotations


import pytest
import torch

from conftest import ESSEN_TUNES
from lctk.latents import LatentStore
from lctk.plugins import DataRequest, get_registries
from lctk.run import RunDir
from lctk_lstm.datasets import load_essen

TINY_LSTM = ["--latent-dim", "8", "--set", "embed_dim=8", "--set", "encoder_hidden=16", "--set", "decoder_hidden=16",
             "--set", "decoder_layers=1", "--batch-size", "64", "--lr", "3e-3"]


@pytest.fixture(scope="module")
def essen():
    return load_essen(DataRequest(options={"max_tunes": str(ESSEN_TUNES)}))


def test_essen_subset(essen):
    assert 1000 < len(essen) < 3000  # about 7.5 unique windows per tune
    assert essen.examples.shape[1] == 32 and essen.spec == {"seq_len": 32, "vocab_size": 90}
    train, test = essen.indices("train"), essen.indices("test")
    assert 0.03 < len(test) / len(essen) < 0.25
    tunes = essen.meta["tune_of_window"]
    assert not set(tunes[train].tolist()) & set(tunes[test].tolist())  # split by tune
    assert len(torch.unique(essen.examples, dim=0)) == len(essen)


def test_train_vae_encode_and_outputs(tmp_path, run_cli, essen):
    run = tmp_path / "run"
    result = run_cli("train-vae", "--backbone", "lstm", "--data", "essen", "--data-option", f"max_tunes={ESSEN_TUNES}",
                     "--epochs", "1", "--out", run, *TINY_LSTM)
    assert result.exit_code == 0, result
    info = RunDir(run).read()
    assert info["backbone_config"]["vocab_size"] == 90 and info["backbone_config"]["seq_len"] == 32
    assert info["dataset"]["modality"] == "melody"
    result = run_cli("encode", run)
    assert result.exit_code == 0, result
    with LatentStore.open(run / "latents.h5") as store:
        assert store.rows == len(essen) and store.latent_dim == 8

    music21 = pytest.importorskip("music21")
    samples = run / "prior-samples"
    midis = sorted(samples.glob("[0-9]*.mid"))
    assert len(midis) == 64 and (samples / "pianoroll.png").stat().st_size > 0 and (samples / "all.mid").is_file()
    music21.converter.parse(str(midis[0]))  # parses back (a tiny model may decode silence: notes not checked)
    pairs = run / "reconstructions"
    assert len(list(pairs.glob("*-before.mid"))) == 32 and (pairs / "pianoroll.png").is_file()
    first = music21.converter.parse(str(pairs / "000-before.mid"))
    assert len(first.flatten().notes) > 0


def test_writer_midi_parses_back_note_for_note(tmp_path, essen):
    music21 = pytest.importorskip("music21")
    from lctk_lstm.encoding import tokens_to_events

    writer = get_registries().writer("melody")
    batch = essen.fetch(torch.arange(6))
    files = writer.write_batch(batch, tmp_path / "out", labels=["first", "second"])
    assert (tmp_path / "out" / "first-00.mid") in files and (tmp_path / "out" / "pianoroll.png") in files
    from PIL import Image

    with Image.open(tmp_path / "out" / "pianoroll.png") as img:
        assert img.width > img.height > 0
    score = music21.converter.parse(str(tmp_path / "out" / "second-01.mid"))
    read = [(round(float(n.offset) * 4), n.pitch.midi) for n in score.flatten().notes]
    assert read == [(n.start, n.pitch) for n in tokens_to_events(batch[4])]


def test_evaluator_figures(tmp_path, essen):
    evaluator = get_registries().evaluator("melody")(essen, tmp_path)
    figures = evaluator.prepare()
    assert figures["train_windows"] == len(essen.indices("train"))
    real = essen.fetch(essen.indices("train"))
    same = evaluator.evaluate("reconstruction", real, reference=real)
    assert same["token_accuracy"] == 1.0 and same["pitch_class_tv"] < 1e-6 and same["density_tv"] < 1e-6
    silent = torch.zeros(8, 32, dtype=torch.long)
    assert evaluator.evaluate("prior", silent)["pitch_class_tv"] == 1.0
    c_major = real[essen.attributes[essen.indices("train"), essen.attribute_names.index("in-c-major")]]
    figures = evaluator.evaluate("conditional", c_major, target={"in-c-major": True, "key=C": True})
    assert figures["accuracy"] == 1.0 and figures["accuracy/key=C"] == 1.0
    assert evaluator.evaluate("conditional", c_major, target={"in-c-major": False})["accuracy"] == 0.0


TINY_CONSTRAINT = ["--steps", "30", "--set", "width=32", "--set", "depth=2", "--set", "batch_size=64",
                   "--set", "rule_pool=512", "--set", "relabel_batch=64"]


def test_zero_shot_rule_constraint_sample_check_and_evaluate(tmp_path, run_cli, essen):
    """add-constraint --rule learns from decoded prior samples only (no dataset labels); sample --rule writes
    MIDI + piano roll; --check redraws breaking samples; evaluate reports prior vs actor satisfaction."""
    import json

    from lctk.run import fingerprint

    run = tmp_path / "run"
    assert run_cli("train-vae", "--backbone", "lstm", "--data", "essen", "--data-option", f"max_tunes={ESSEN_TUNES}",
                   "--epochs", "1", "--out", run, *TINY_LSTM).exit_code == 0
    assert run_cli("encode", run).exit_code == 0
    weights = (run / "backbone.safetensors").read_bytes()

    result = run_cli("add-constraint", run, "--rule", "density>=4", *TINY_CONSTRAINT)
    assert result.exit_code == 0, result.output
    folder = run / "constraints" / "density-ge-4"
    spec = json.loads((folder / "constraint.json").read_text())
    assert [t["kind"] for t in spec["targets"]] == ["rule"]
    rule_metrics = json.loads((folder / "metrics.json").read_text())["rule density>=4"]
    assert 0.0 <= rule_metrics["prior_satisfied"] <= 1.0 and 0.0 <= rule_metrics["actor_satisfied"] <= 1.0
    assert (run / "backbone.safetensors").read_bytes() == weights  # the backbone never changes

    result = run_cli("sample", run, "--rule", "density>=4", "-n", "16", "--check", "--out", tmp_path / "dense")
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "dense").glob("[0-9]*.mid"))) == 16 and (tmp_path / "dense" / "pianoroll.png").is_file()
    assert "samples drawn for 16" in result.output
    refused = run_cli("sample", run, "--check", "--prior")
    assert refused.exit_code != 0 and "--check" in refused.output

    result = run_cli("evaluate", run, "-n", "64", "--json")
    assert result.exit_code == 0, result.output
    figures = json.loads((run / "metrics.json").read_text())["rules"]["density>=4"]
    assert figures["checked_satisfied"] >= figures["actor_satisfied"]  # redrawing never loses satisfied samples
    assert figures["checked_draws_per_sample"] >= 1.0
    assert {"pitch_class_tv", "density_tv", "pitch_class_tv_matching", "density_tv_matching"} <= set(figures)
    assert 0.0 <= figures["prior_satisfied"] <= 1.0
