"""Generator-only backbones through the CLI: a tiny DCGAN on the 8x8 digits, constrained through the labeler
(and a rule), sampled and evaluated; no encoder, no realism critic; the labeler apart from the evaluator; the
generator's files byte-identical after the whole pipeline."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from lctk import hookimpl
from lctk.interfaces import Rule
from lctk.util.io import load_tensors
from lctk_conv.dcgan import DCGANConfig, DCGANGenerator, detect, load_dcgan, save_dcgan

FEW_STEPS = ["--steps", "20", "--set", "classifier_steps=20", "--set", "width=32", "--set", "depth=2",
             "--set", "rule_pool=256", "--set", "relabel_batch=64", "--set", "batch_size=64"]


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def tiny_gan(folder: Path, seed: int = 0) -> Path:
    """A randomly initialised 8x8 DCGAN generator saved in the dcgan format."""
    torch.manual_seed(seed)
    return save_dcgan(DCGANGenerator(DCGANConfig(input_shape=(1, 8, 8), latent_dim=4, width=4)), folder)


@pytest.fixture
def gan(tmp_path, digits_dir, run_cli):
    """(source folder, run folder) of a tiny generator imported for the digits (its format detected)."""
    source, run = tiny_gan(tmp_path / "gan"), tmp_path / "run"
    result = run_cli("import-backbone", source, "--data", "idx", "--data-dir", digits_dir, "--out", run)
    assert result.exit_code == 0, result
    assert "generator-only" in result.stderr and "next: `lctk add-constraint" in result.stderr
    assert (run / "prior-samples.png").is_file() and not (run / "reconstructions.png").exists()
    return source, run


def test_dcgan_format_round_trip_and_refusals(tmp_path, digits_dir, run_cli):
    source = tiny_gan(tmp_path / "gan")
    big = save_dcgan(DCGANGenerator(DCGANConfig(input_shape=(1, 16, 16), latent_dim=4, width=4)), tmp_path / "big")
    result = run_cli("import-backbone", big, "--data", "idx", "--data-dir", digits_dir, "--out", tmp_path / "run",
                     "--format", "dcgan")
    assert result.exit_code != 0 and "makes 1x16x16 images" in result.stderr and "1x8x8" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()
    assert detect(source) and not detect(tmp_path)
    model, again = DCGANGenerator(DCGANConfig(input_shape=(1, 8, 8), latent_dim=4, width=4)), load_dcgan(source)
    z = torch.randn(3, 4)
    out = again.decode(z)
    assert out.shape == (3, 1, 8, 8) and 0 <= out.min() and out.max() <= 1
    assert not again.has_encoder and model.has_encoder is False
    config = json.loads((source / "config.json").read_text())
    (source / "config.json").write_text(json.dumps({**config, "width": 8}))
    with pytest.raises(Exception, match="do not fit"):
        load_dcgan(source)


def test_generator_run_through_the_cli(gan, run_cli, tmp_path):
    source, run = gan
    before = _hashes(source)
    result = run_cli("encode", run)
    assert result.exit_code != 0 and "generator-only" in result.stderr and "no encoder" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (run / "latents.h5").exists()
    result = run_cli("add-constraint", run)
    assert result.exit_code != 0 and "no realism constraint" in result.stderr

    result = run_cli("add-constraint", run, "--attr", "0", "--attr", "1", *FEW_STEPS)
    assert result.exit_code == 0, result
    folder = run / "constraints" / "0+1"
    description = json.loads((folder / "constraint.json").read_text())
    weights, _ = load_tensors(folder / "weights.safetensors")
    assert description["realism"] is False and not any(k.startswith("realism.") for k in weights)
    metrics = json.loads((folder / "metrics.json").read_text())
    assert 0 <= metrics["actor_attribute_match_by_labeler"] <= 1 and "labeler_test_accuracy" in metrics["labeler"]

    for extra in ([], ["--method", "optimize"]):
        out = tmp_path / f"s{len(extra)}.png"
        assert run_cli("sample", run, "--attr", "0", "-n", "6", *extra, "--out", out).exit_code == 0 and out.is_file()
    result = run_cli("transform", run, "--index", "3", "--attr", "0", "--out", tmp_path / "t.png")
    assert result.exit_code != 0 and "no encoder" in result.stderr

    result = run_cli("evaluate", run, "-n", "20", "--json")
    assert result.exit_code == 0, result
    metrics = json.loads(result.stdout)
    sets = {(r["set"], r["method"]) for r in metrics["sets"]}
    assert ("conditional", "actor") in sets and ("conditional", "optimize") in sets and ("prior", "-") in sets
    assert not any(s.startswith("reconstruction") for s, _ in sets) and metrics["transforms"] == {}
    # the labeler is a model of its own: another file, another architecture, than the evaluator's classifier
    labeler, _ = load_tensors(run / "labeler" / "labeler.safetensors")
    evaluator, _ = load_tensors(run / "evaluator" / "classifier.safetensors")
    assert {k: v.shape for k, v in labeler.items()} != {k: v.shape for k, v in evaluator.items()}
    assert _hashes(source) == before  # the generator's own files are never written


def test_attr_without_a_labeler_is_refused(gan, run_cli, fresh_plugins, monkeypatch):
    _, run = gan
    monkeypatch.setattr(fresh_plugins.get_registries(), "labelers", {})
    result = run_cli("add-constraint", run, "--attr", "0", *FEW_STEPS)
    assert result.exit_code != 0 and "no installed plugin provides a labeler for image data" in result.stderr
    assert "--rule" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (run / "constraints").exists()


class Bright(Rule):
    """Mean pixel value at least 0.5."""

    def __init__(self, spec: str):
        self.spec = spec

    def __call__(self, outputs):
        return outputs.flatten(1).mean(dim=1) >= 0.5


class BrightRulePlugin:
    @hookimpl
    def register_rules(self, register):
        register("bright", Bright, modality="image")


def test_rule_constraint_on_a_generator_needs_no_labeler(gan, run_cli, fresh_plugins, monkeypatch):
    _, run = gan
    fresh_plugins.add_plugin(BrightRulePlugin(), "bright-rule")
    monkeypatch.setattr(fresh_plugins.get_registries(), "labelers", {})
    result = run_cli("add-constraint", run, "--rule", "bright", *FEW_STEPS)
    assert result.exit_code == 0, result
    metrics = json.loads((run / "constraints" / "bright" / "metrics.json").read_text())
    assert set(metrics["rule bright"]) == {"prior_satisfied", "actor_satisfied"} and "labeler" not in metrics
    assert not (run / "labeler").exists()
    assert run_cli("sample", run, "--rule", "bright", "-n", "4", "--check", "--out", run / "b.png").exit_code == 0


def test_a_config_not_matching_the_weights_is_refused_in_one_line(tmp_path, digits_dir, run_cli):
    from tests.importing_helpers import refused_unchanged

    source = tiny_gan(tmp_path / "gan")
    config = json.loads((source / "config.json").read_text())
    (source / "config.json").write_text(json.dumps({**config, "width": 8}))
    line = refused_unchanged(run_cli, source, digits_dir, tmp_path, "do not fit")
    assert "model.safetensors" in line or "config.json" in line
