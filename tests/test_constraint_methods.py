"""Constraint methods are a plugin kind (register_constraint_methods): lctk registers ``actor`` and ``diffusion``
itself, a test plugin registers a third (``nudge``) that trains, samples and is listed through the CLI like the
others; sampling with a method that no constraint of the targets has, or one nobody registered, is one line."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from lctk import hookimpl
from lctk.plugin_api import (Constraint, TargetColumns, describe_constraint, load_tensors, read_description,
                             save_json, save_tensors)


@dataclasses.dataclass
class NudgeSettings:
    """Settings of the fake method: how far samples are pulled towards the centre of the wanted class."""

    pull: float = 0.9
    seed: int = 0


class NudgeConstraint(TargetColumns, Constraint):
    """Pulls prior draws towards the mean encoding of the examples that have the first wanted attribute."""

    method = "nudge"
    settings_class = NudgeSettings

    def __init__(self, name, targets, latent_dim, settings, fingerprint):
        self.name, self.settings, self.fingerprint = name, settings, fingerprint
        self.set_targets(targets)
        self.centres = torch.zeros(len(targets), latent_dim)  # (K, D)
        self.sigma_bar = torch.ones(latent_dim)

    @classmethod
    def create(cls, name, targets, latent_dim, settings, data):
        return cls(name, targets, latent_dim, settings, data.store.fingerprint)

    def fit(self, data):
        mu, _, labels = data.labelled()  # (N, D), (N, K_a)
        for j, i in enumerate(self.attr_cols):
            self.centres[i] = mu[labels[:, j] > 0.5].mean(dim=0)
        data.checkpoint.write_text("{}")  # a method may checkpoint where it is told to
        return {"losses": {}, "training": {"steps": 1}}

    def sample(self, z, y, known, *, guidance=None, generator=None):
        first = int(known[0].float().argmax()) if known.any() else 0
        return (1 - self.settings.pull) * z + self.settings.pull * self.centres[first]

    def save(self, folder: Path) -> None:
        save_tensors(folder / "weights.safetensors", {"centres": self.centres})
        save_json(folder / "constraint.json", describe_constraint(self, self.settings, self.centres.shape[1]))

    @classmethod
    def load(cls, folder: Path):
        info, targets, latent_dim, settings = read_description(folder, NudgeSettings)
        model = cls(info["name"], targets, latent_dim, settings, info["fingerprint"])
        model.centres = load_tensors(folder / "weights.safetensors")[0]["centres"]
        return model


class NudgePlugin:
    @hookimpl
    def register_constraint_methods(self, register):
        register("nudge", NudgeConstraint, help="pulls prior draws to the class centre (a test method)")


def test_builtin_methods_are_listed(run_cli):
    rows = {r["name"]: r for r in json.loads(run_cli("plugins", "--json").stdout)}
    assert rows["lctk"]["provides"]["constraint_methods"] == ["actor", "diffusion"]
    details = json.loads(run_cli("plugins", "--details", "--json").stdout)
    actor = next(r for r in details if r["kind"] == "constraint_methods" and r["name"] == "actor")
    assert actor["plugin"] == "lctk" and "actor" in actor["help"]


def test_a_plugin_method_trains_and_samples_through_the_cli(fresh_plugins, tiny_run, tmp_path, run_cli):
    fresh_plugins.add_plugin(NudgePlugin(), "nudge-plugin")
    rows = {r["name"]: r for r in json.loads(run_cli("plugins", "--json").stdout)}
    assert rows["nudge-plugin"]["provides"] == {"constraint_methods": ["nudge"]}

    result = run_cli("add-constraint", tiny_run, "--attr", "3", "--method", "nudge")
    assert result.exit_code == 0, result
    folder = tiny_run / "constraints" / "3-nudge"  # named apart from an actor constraint of the same target
    info = json.loads((folder / "constraint.json").read_text())
    assert info["method"] == "nudge" and info["targets"][0]["name"] == "3"
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["training"]["method"] == "nudge" and metrics["training"]["seconds"] >= 0
    assert not (folder / "checkpoint.safetensors").exists()

    out = tmp_path / "nudged.png"
    result = run_cli("sample", tiny_run, "--attr", "3", "--method", "nudge", "-n", "4", "--out", out)
    assert result.exit_code == 0, result
    assert out.is_file()

    from lctk.engine.sampling import Sampler
    from lctk.engine.targets import Target

    with Sampler(tiny_run) as sampler:
        z, moved = sampler.latents([Target("3", "attribute")], 8, "nudge", seed=1)
        centre = NudgeConstraint.load(folder).centres[0]
        assert torch.allclose(moved, 0.1 * z + 0.9 * centre, atol=1e-5)


def test_sampling_with_a_method_that_does_not_cover_is_one_line(fresh_plugins, tiny_run, run_cli):
    fresh_plugins.add_plugin(NudgePlugin(), "nudge-plugin")
    assert run_cli("add-constraint", tiny_run, "--attr", "3", "--method", "nudge").exit_code == 0
    before = sorted(p.name for p in (tiny_run / "constraints").iterdir())
    result = run_cli("sample", tiny_run, "--attr", "3", "--method", "actor", "-n", "2")
    assert result.exit_code != 0 and len(result.stderr.strip().splitlines()) == 1
    assert "no actor constraint" in result.stderr and "only nudge ones do" in result.stderr
    result = run_cli("sample", tiny_run, "--attr", "3", "--method", "diffusion", "-n", "2")
    assert result.exit_code != 0 and "--method diffusion" in result.stderr
    result = run_cli("sample", tiny_run, "--attr", "3", "--method", "nope", "-n", "2")
    assert result.exit_code != 0 and len(result.stderr.strip().splitlines()) == 1
    assert "unknown method 'nope'; available: actor, diffusion, nudge, optimize" in result.stderr
    result = run_cli("add-constraint", tiny_run, "--attr", "3", "--method", "nope")
    assert result.exit_code != 0 and "unknown constraint method 'nope'; available: actor, diffusion, nudge" in result.stderr
    assert sorted(p.name for p in (tiny_run / "constraints").iterdir()) == before
    assert not (tiny_run / "samples").exists()


def test_a_constraint_of_an_uninstalled_method_is_one_line(fresh_plugins, tiny_run, run_cli):
    fresh_plugins.add_plugin(NudgePlugin(), "nudge-plugin")
    assert run_cli("add-constraint", tiny_run, "--attr", "3", "--method", "nudge").exit_code == 0
    fresh_plugins.remove_plugin("nudge-plugin")
    result = run_cli("sample", tiny_run, "--attr", "3", "-n", "2")
    assert result.exit_code != 0 and len(result.stderr.strip().splitlines()) == 1
    assert "trained with method 'nudge', which no installed plugin provides" in result.stderr
