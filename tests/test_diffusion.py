"""The constraint method ``diffusion``: it learns a conditional distribution (a synthetic two-cluster check),
trains, samples, sweeps and edits through the CLI beside an actor constraint of the same targets, resumes bit
for bit, and refuses bad method options with one line, changing nothing."""

from __future__ import annotations

import json

import pytest
import torch

from lctk.engine.diffusion.config import DiffusionConfig
from lctk.engine.diffusion.method import DiffusionConstraint
from lctk.engine.method import TrainingData
from lctk.engine.targets import Target
from tests.test_engine_cli import TINY, one_line_error, tree_digests

TINY_DIFFUSION = ["--method", "diffusion", "--steps", "30", "--set", "width=32", "--set", "depth=1",
                  "--set", "embed_dim=8", "--set", "batch_size=64", "--set", "sample_steps=4"]


class TwoClusters:
    """A latent store stand-in: class 1 around (+3, 0), class 0 around (-3, 0); a continuous value = x / 6 + 0.5."""

    attribute_names, continuous_names, fingerprint = ["right"], ["x"], "fp"

    def __init__(self, n: int = 2048):
        gen = torch.Generator().manual_seed(0)
        self.right = torch.rand(n, generator=gen) < 0.5
        self.mu = torch.randn(n, 2, generator=gen) * 0.3
        self.mu[:, 0] += torch.where(self.right, 3.0, -3.0)

    def load(self, part="train", limit=None):
        return self.mu, torch.full_like(self.mu, 0.1), self.right[:, None]

    def load_continuous(self, part="train"):
        return self.mu[:, :1] / 6 + 0.5

    def sigma_bar(self):
        return torch.full((2,), 0.1)


def test_the_denoiser_learns_a_conditional_distribution(tmp_path):
    store = TwoClusters()
    targets = [Target("right", "attribute"), Target("x", "continuous", None, 0.0, 1.0)]
    config = DiffusionConfig(width=64, depth=2, embed_dim=16, steps=600, batch_size=128, lr=3e-3, sample_steps=10)
    data = TrainingData(store, targets, None, tmp_path / "checkpoint.safetensors")
    torch.manual_seed(0)
    model = DiffusionConstraint.create("two", targets, 2, config, data)
    model.fit(data)
    z = torch.randn(400, 2, generator=torch.Generator().manual_seed(1))
    known = torch.tensor([[True, False]]).expand(400, 2)
    right = model.sample(z, torch.tensor([[1.0, 0.0]]).expand(400, 2), known, guidance=1.0)
    left = model.sample(z, torch.tensor([[0.0, 0.0]]).expand(400, 2), known, guidance=1.0)
    assert (right[:, 0] > 1.5).float().mean() > 0.9 and (left[:, 0] < -1.5).float().mean() > 0.9
    free = model.sample(z, torch.zeros(400, 2), torch.zeros(400, 2, dtype=torch.bool))  # both clusters, unconditioned
    assert 0.25 < (free[:, 0] > 0).float().mean() < 0.75
    near = model.sample(z, torch.tensor([[0.0, 0.9]]).expand(400, 2), torch.tensor([[False, True]]).expand(400, 2),
                        guidance=1.0)  # x / 6 + 0.5 = 0.9: around x = 2.4, in the right cluster
    assert (near[:, 0] > 1.5).float().mean() > 0.8
    edited = model.transform(left[:50], torch.tensor([[1.0, 0.0]]).expand(50, 2), known[:50], strength=0.9,
                             guidance=1.0, generator=torch.Generator().manual_seed(2))
    assert (edited[:, 0] > 1.5).float().mean() > 0.8


def test_diffusion_beside_the_actor_through_the_cli(tiny_run, run_cli, tmp_path):
    assert run_cli("add-constraint", tiny_run, "--attr", "3", *TINY).exit_code == 0
    r = run_cli("add-constraint", tiny_run, "--attr", "3", *TINY_DIFFUSION)
    assert r.exit_code == 0, r
    folder = tiny_run / "constraints" / "3-diffusion"
    info = json.loads((folder / "constraint.json").read_text())
    assert info["method"] == "diffusion" and info["config"]["steps"] == 30
    assert json.loads((tiny_run / "constraints" / "3" / "constraint.json").read_text())["method"] == "actor"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["training"]["seconds"] > 0 and metrics["training"]["steps"] == 30
    assert sorted(p.name for p in folder.iterdir()) == ["constraint.json", "metrics.json", "weights.safetensors"]

    for method, extra in (("diffusion", ["--guidance", "3"]), ("actor", []), ("optimize", [])):
        out = tmp_path / f"{method}.png"
        r = run_cli("sample", tiny_run, "--attr", "3", "--method", method, *extra, "-n", "4", "--out", out)
        assert r.exit_code == 0, r
        assert out.is_file()
    r = run_cli("transform", tiny_run, "--index", "5", "--attr", "3", "--method", "diffusion", "--strength", "0.6",
                "--out", tmp_path / "edit.png")
    assert r.exit_code == 0, r
    assert (tmp_path / "edit-before.png").is_file() or (tmp_path / "edit.png").is_file()

    from lctk.engine.sampling import Sampler

    with Sampler(tiny_run) as sampler:  # seeded: the same request gives the same latents
        a = sampler.latents([Target("3", "attribute")], 6, "diffusion", seed=4, guidance=2.0)[1]
        b = sampler.latents([Target("3", "attribute")], 6, "diffusion", seed=4, guidance=2.0)[1]
        c = sampler.latents([Target("3", "attribute")], 6, "diffusion", seed=4, guidance=0.0)[1]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_diffusion_on_a_continuous_attribute_with_a_sweep(tiny_run, run_cli, tmp_path):
    r = run_cli("add-constraint", tiny_run, "--attr", "ink", *TINY_DIFFUSION)
    assert r.exit_code == 0, r
    ink = json.loads((tiny_run / "constraints" / "ink-diffusion" / "constraint.json").read_text())["targets"][0]
    assert ink["kind"] == "continuous"
    low, high = ink["low"] + 0.01, ink["high"] - 0.01
    r = run_cli("sample", tiny_run, "--attr", f"ink={low:.4f}..{high:.4f}:3", "--method", "diffusion", "-n", "2",
                "--out", tmp_path / "sweep.png")
    assert r.exit_code == 0, r
    assert (tmp_path / "sweep.png").is_file()


def test_diffusion_resumes_bit_for_bit(tiny_run, run_cli, monkeypatch):
    from lctk.engine.diffusion.training import DiffusionTrainer

    args = ["--attr", "3", *TINY_DIFFUSION, "--set", "checkpoint_every=5"]
    assert run_cli("add-constraint", tiny_run, *args, "--name", "whole").exit_code == 0
    real, calls = DiffusionTrainer.train_step, {"n": 0}

    def stop_at_12(self, s):
        calls["n"] += 1
        if calls["n"] == 12:
            raise KeyboardInterrupt
        return real(self, s)

    monkeypatch.setattr(DiffusionTrainer, "train_step", stop_at_12)
    stopped = run_cli("add-constraint", tiny_run, *args, "--name", "split")
    assert stopped.exit_code != 0  # progress lines, then the one error line
    assert "error: interrupted; run the same `lctk add-constraint` command again" in stopped.stderr.splitlines()[-1]
    monkeypatch.undo()
    assert run_cli("add-constraint", tiny_run, *args, "--name", "split").exit_code == 0
    whole = (tiny_run / "constraints" / "whole" / "weights.safetensors").read_bytes()
    assert (tiny_run / "constraints" / "split" / "weights.safetensors").read_bytes() == whole
    resumed = json.loads((tiny_run / "constraints" / "split" / "metrics.json").read_text())["training"]["resumed"]
    assert resumed is True


@pytest.mark.parametrize("args, words", [
    (["sample", "--attr", "3", "--method", "diffusion", "--guidance", "-1"], "--guidance -1 is out of range"),
    (["sample", "--attr", "3", "--method", "diffusion", "--guidance", "51"], "--guidance 51 is out of range"),
    (["sample", "--attr", "3", "--method", "actor", "--guidance", "2"], "--guidance is for methods"),
    (["sample", "--attr", "3", "--method", "actor"], "no actor constraint"),
    (["sample", "--attr", "3", "--method", "optimize"], "only diffusion ones do"),
    (["sample", "--attr", "3", "--method", "difusion"], "unknown method 'difusion'; available: actor, diffusion"),
    (["transform", "--index", "0", "--attr", "3", "--method", "diffusion", "--strength", "0"], "--strength 0 is out"),
    (["transform", "--index", "0", "--attr", "3", "--method", "diffusion", "--strength", "1.5"], "--strength 1.5"),
    (["transform", "--index", "0", "--attr", "3", "--strength", "0.5"], "--strength is for edits"),
    (["transform", "--index", "0", "--attr", "3", "--method", "actor"], "only diffusion ones do"),
    (["add-constraint", "--attr", "3", "--method", "diffusion", "--set", "lambda_dist=1"], "unknown setting"),
    (["add-constraint", "--attr", "3", "--method", "optimize"], "optimize is a way of sampling"),
])
def test_bad_method_options_are_one_line_and_change_nothing(tiny_run, run_cli, tmp_path, args, words):
    assert run_cli("add-constraint", tiny_run, "--attr", "3", *TINY_DIFFUSION).exit_code == 0
    before = tree_digests(tiny_run)
    command, *rest = args
    out = tmp_path / "bad.png"
    r = run_cli(command, tiny_run, *rest, *([] if command == "add-constraint" else ["--out", out]))
    assert words in one_line_error(r), r
    assert tree_digests(tiny_run) == before and not out.exists()


def test_evaluate_measures_every_method(tiny_run, run_cli):
    from lctk import api

    assert run_cli("add-constraint", tiny_run, "--attr", "3", *TINY).exit_code == 0
    assert run_cli("add-constraint", tiny_run, "--attr", "3", *TINY_DIFFUSION).exit_code == 0
    metrics = api.evaluate(tiny_run, n=20)
    rows = {(r["set"], r["method"], r["target"]) for r in metrics["sets"]}
    assert {("conditional", m, "3") for m in ("actor", "optimize", "diffusion")} <= rows
    assert ("realism (3-diffusion, no condition)", "diffusion", "-") in rows
    assert set(metrics["conditional"]) == {"actor", "optimize", "diffusion"}
    assert 0 <= metrics["conditional"]["diffusion"]["mean_accuracy"] <= 1
    assert metrics["method_transforms"]["diffusion"]["n"] > 0
    costs = metrics["methods"]
    assert list(costs) == ["actor", "optimize", "diffusion"]
    assert costs["diffusion"]["training_seconds"]["3-diffusion"] > 0 and costs["diffusion"]["sample_seconds_per_1000"] > 0
    assert costs["optimize"]["training_seconds"] == costs["actor"]["training_seconds"]
    r = run_cli("evaluate", tiny_run, "-n", "20")
    assert r.exit_code == 0 and "method diffusion: training" in r.stdout and "transforms (diffusion)" in r.stdout
    guided = api.evaluate(tiny_run, n=20, guidance=0.0)  # the diffusion samples change, the actor's do not
    assert guided["guidance"] == 0.0 and guided["conditional"]["actor"] == metrics["conditional"]["actor"]
    assert guided["conditional"]["diffusion"] != metrics["conditional"]["diffusion"]
    before = tree_digests(tiny_run)
    assert "--guidance 99 is out of range" in one_line_error(run_cli("evaluate", tiny_run, "--guidance", "99"))
    assert tree_digests(tiny_run) == before
