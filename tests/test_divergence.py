"""A loss (or a weight) that turns NaN or infinite stops training with one clear line and exit code 3, and
the last good checkpoint stays on disk, finite, ready for --resume."""

from __future__ import annotations

import json

import torch

from lctk.util.io import load_tensors
from tests.conftest import TINY_VAE
from tests.killing import checkpoint_step


def one_error_line(result) -> str:
    assert result.exit_code == 3, result
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and sum(line.startswith("error:") for line in lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[-1]


def all_finite(path) -> bool:
    tensors, _ = load_tensors(path)
    return all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())


def test_nan_loss_stops_train_vae_and_keeps_the_checkpoint(tmp_path, digits_dir, run_cli, monkeypatch):
    import lctk.trainer

    real = lctk.trainer._ELBO.forward
    calls = {"n": 0}

    def forward(self, x, eps):
        calls["n"] += 1
        terms = real(self, x, eps)
        if calls["n"] == 4:  # step 4 of the run
            terms["loss"] = terms["loss"] * float("nan")
        return terms

    monkeypatch.setattr(lctk.trainer._ELBO, "forward", forward)
    out = tmp_path / "run"
    r = run_cli("train-vae", "--backbone", "conv", "--data", "idx", "--data-dir", digits_dir, "--out", out, *TINY_VAE,
                "--max-examples", "400", "--epochs", "2", "--checkpoint-every", "1")
    line = one_error_line(r)
    assert "loss became nan at step 4" in line and "last good checkpoint" in line and "--resume" in line
    checkpoint = out / "checkpoint.safetensors"
    assert checkpoint_step(checkpoint) == 3 and all_finite(checkpoint)
    assert json.loads((out / "run.json").read_text())["status"] == "training"
    assert not (out / "backbone.safetensors").exists()

    # as the message says: resume with a lower learning rate (the checkpoint is picked up, lr changed)
    monkeypatch.setattr(lctk.trainer._ELBO, "forward", real)
    r = run_cli("train-vae", "--out", out, "--resume", "--lr", "1e-3")
    assert r.exit_code == 0, r
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "trained" and info["training"]["lr"] == 1e-3 and len(info["history"]) == 2


def test_nan_weight_is_never_checkpointed(tmp_path, digits_dir, run_cli, monkeypatch):
    real = torch.optim.Adam.step
    calls = {"n": 0}

    def step(self, *args, **kwargs):
        result = real(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 5:
            with torch.no_grad():
                self.param_groups[0]["params"][0].view(-1)[0] = float("inf")
        return result

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    out = tmp_path / "run"
    r = run_cli("train-vae", "--backbone", "conv", "--data", "idx", "--data-dir", digits_dir, "--out", out, *TINY_VAE,
                "--max-examples", "400", "--epochs", "2", "--checkpoint-every", "2")
    line = one_error_line(r)
    assert "became nan or infinite" in line.lower() and "last good checkpoint" in line
    assert checkpoint_step(out / "checkpoint.safetensors") == 4 and all_finite(out / "checkpoint.safetensors")


def test_nan_loss_stops_add_constraint_and_keeps_the_checkpoint(tiny_run, run_cli, monkeypatch):
    import lctk.engine.training

    real = lctk.engine.training.distance_penalty
    calls = {"n": 0}

    def distance_penalty(*args, **kwargs):
        calls["n"] += 1
        value = real(*args, **kwargs)
        return value * float("nan") if calls["n"] == 7 else value

    monkeypatch.setattr(lctk.engine.training, "distance_penalty", distance_penalty)
    settings = ["--attr", "3", "--steps", "20", "--set", "classifier_steps=10", "--set", "width=16", "--set", "depth=1",
                "--set", "batch_size=32", "--set", "checkpoint_every=2"]
    r = run_cli("add-constraint", tiny_run, *settings)
    line = one_error_line(r)
    assert "loss became nan" in line and "checkpoint was kept" in line
    partial = tiny_run / "constraints" / ".3.partial"
    assert checkpoint_step(partial / "checkpoint.safetensors") == 16  # 10 classifier steps, then actor steps 1..6
    assert all_finite(partial / "checkpoint.safetensors")
    assert not (tiny_run / "constraints" / "3").exists()

    monkeypatch.setattr(lctk.engine.training, "distance_penalty", real)
    assert run_cli("add-constraint", tiny_run, *settings).exit_code == 0  # the same command resumes
    assert (tiny_run / "constraints" / "3" / "weights.safetensors").is_file()
