"""The diffusion constraint method on melodies: a rule labels the training latents by decoding them (no human
labels), the denoiser samples under it (with and without --check), a continuous attribute sweeps, and evaluate
reports the method's rule satisfaction, Spearman and costs beside the prior's."""

from __future__ import annotations

import json

import pytest

from conftest import ESSEN_TUNES
from test_lstm_cli import TINY_LSTM

TINY_DIFFUSION = ["--method", "diffusion", "--steps", "40", "--set", "width=32", "--set", "depth=1",
                  "--set", "embed_dim=8", "--set", "batch_size=64", "--set", "sample_steps=4"]


@pytest.fixture(scope="module")
def melody_run(tmp_path_factory):
    from click.testing import CliRunner

    from lctk.cli import cli

    run = tmp_path_factory.mktemp("melody") / "run"
    for args in (["train-vae", "--backbone", "lstm", "--data", "essen", "--data-option", f"max_tunes={ESSEN_TUNES}",
                  "--epochs", "1", "--out", str(run), *TINY_LSTM], ["encode", str(run)]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
    return run


def test_rule_and_continuous_diffusion_constraints(melody_run, run_cli, tmp_path):
    weights = (melody_run / "backbone.safetensors").read_bytes()
    result = run_cli("add-constraint", melody_run, "--rule", "density<=8", *TINY_DIFFUSION)
    assert result.exit_code == 0, result.output
    folder = melody_run / "constraints" / "density-le-8-diffusion"
    assert json.loads((folder / "constraint.json").read_text())["method"] == "diffusion"
    figures = json.loads((folder / "metrics.json").read_text())["rule density<=8"]
    assert 0 < figures["data_satisfied"] <= 1 and 0 <= figures["diffusion_satisfied"] <= 1
    assert (melody_run / "backbone.safetensors").read_bytes() == weights  # the backbone never changes

    result = run_cli("sample", melody_run, "--rule", "density<=8", "--method", "diffusion", "-n", "8", "--check",
                     "--out", tmp_path / "dense")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "dense" / "pianoroll.png").is_file()

    assert run_cli("add-constraint", melody_run, "--attr", "density", *TINY_DIFFUSION).exit_code == 0
    result = run_cli("sample", melody_run, "--attr", "density=4..8", "--method", "diffusion", "-n", "2",
                     "--out", tmp_path / "sweep")
    assert result.exit_code == 0, result.output

    result = run_cli("evaluate", melody_run, "-n", "40", "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads((melody_run / "metrics.json").read_text())
    rule = metrics["rules"]["density<=8"]
    assert "actor_satisfied" not in rule and 0 <= rule["methods"]["diffusion"]["satisfied"] <= 1
    assert "density_tv" in rule["methods"]["diffusion"]
    assert -1 <= metrics["continuous"]["density"]["diffusion"]["spearman"] <= 1
    cost = metrics["methods"]["diffusion"]
    assert cost["sample_seconds_per_1000"] > 0 and set(cost["training_seconds"]) == {"density<=8-diffusion",
                                                                                      "density-diffusion"}
    assert any(r["set"] == "rule" and r["method"] == "diffusion" for r in metrics["sets"])
