"""The plugin system: discovery through real entry points, broken plugins skipped with one warning line,
the LCTK_PLUGINS allowlist, `lctk plugins --json`, an in-process fake plugin using every hook, and every hook
documented in docs/plugins.md and exercised by some test."""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
from pathlib import Path

import click
import pytest
import torch
from torch import nn

from lctk import hookimpl, hookspecs
from lctk import plugins as lctk_plugins
from lctk.interfaces import (Backbone, BackboneConfig, Decoder, Encoder, Evaluator, InMemoryDataset, Labeler, Rule,
                             Writer, gaussian_log_likelihood)
from lctk.util.io import write_bytes
from tests.plugin_packages import (BROKEN_HOOK, BROKEN_IMPORT, REPO, broken_target, example_target,
                                   lctk_subprocess)

TINY_CONV = ["--latent-dim", "4", "--set", "width=4", "--set", "hidden=16", "--batch-size", "64", "--epochs", "1",
             "--max-examples", "200"]


@pytest.fixture(scope="session")
def example_site(tmp_path_factory) -> Path:
    return example_target(tmp_path_factory)


@pytest.fixture(scope="session")
def broken_site(tmp_path_factory) -> Path:
    return broken_target(tmp_path_factory)


@pytest.fixture
def installed(monkeypatch, fresh_plugins):
    """Make folders of installed distributions visible to this process (as if pip-installed here)."""
    monkeypatch.delenv("LCTK_PLUGINS", raising=False)

    def add(*sites: Path):
        for site in sites:
            monkeypatch.syspath_prepend(str(site))
        fresh_plugins.reset()
        return fresh_plugins

    return add


def rows_of(result) -> dict[str, dict]:
    assert result.exit_code == 0, result
    return {row["name"]: row for row in json.loads(result.stdout)}


def warning_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("warning:")]


#: Only these load in the broken-plugin tests, so that other installed plugins cannot add warnings.
BROKEN_ONLY = ",".join(["lctk-conv", BROKEN_IMPORT, BROKEN_HOOK])


# -- discovery ---------------------------------------------------------------------------------------------


def test_entry_points_are_discovered(installed, example_site):
    plugins = installed(example_site)
    reg = plugins.get_registries()
    from lctk_conv.model import ConvVAE
    from lctk_mlp.model import MLPVAE

    assert reg.backbone("mlp") is MLPVAE and reg.backbones["mlp"].plugin == "lctk-mlp"
    assert reg.backbone("conv") is ConvVAE and reg.backbones["conv"].plugin == "lctk-conv"
    assert reg.plugins["lctk-mlp"].version == "0.1.0" and reg.plugins["lctk-mlp"].error is None


def test_plugins_json_shape(installed, example_site, run_cli):
    installed(example_site)
    result = run_cli("plugins", "--json")
    rows = json.loads(result.stdout)
    assert isinstance(rows, list) and [r["name"] for r in rows] == sorted(r["name"] for r in rows)
    for row in rows:
        assert set(row) == {"name", "version", "provides", "error"}
        assert all(isinstance(names, list) for names in row["provides"].values())
    by_name = {r["name"]: r for r in rows}
    conv = by_name["lctk-conv"]["provides"]
    assert conv["backbones"] == ["conv"] and conv["writers"] == ["image"]
    assert {"fashion-mnist", "idx", "celeba", "image-folder"} <= set(conv["datasets"])
    assert by_name["lctk-mlp"]["provides"] == {"backbones": ["mlp"]}
    table = run_cli("plugins")
    assert table.exit_code == 0 and "lctk-mlp" in table.stdout and "lctk-conv" in table.stdout


# -- broken plugins ------------------------------------------------------------------------------------------


def test_broken_plugins_are_reported_once_and_skipped(installed, broken_site, monkeypatch, run_cli):
    installed(broken_site)
    monkeypatch.setenv("LCTK_PLUGINS", BROKEN_ONLY)
    result = run_cli("plugins", "--json")
    rows = rows_of(result)
    warnings = warning_lines(result.stderr)
    assert len(warnings) == 2, result.stderr
    for dist in (BROKEN_IMPORT, BROKEN_HOOK):
        assert sum(dist in line for line in warnings) == 1
        assert rows[dist]["error"]
    assert "broken on purpose" in rows[BROKEN_IMPORT]["error"]
    assert rows[BROKEN_HOOK]["error"].startswith("register_backbones")
    assert rows["lctk-conv"]["error"] is None and rows["lctk-conv"]["provides"]["backbones"] == ["conv"]


def test_training_works_beside_broken_plugins(installed, broken_site, digits_dir, tmp_path, monkeypatch, run_cli):
    installed(broken_site)
    monkeypatch.setenv("LCTK_PLUGINS", BROKEN_ONLY)
    result = run_cli("train-vae", "--backbone", "conv", "--data", "idx", "--data-dir", digits_dir,
                     "--out", tmp_path / "run", *TINY_CONV)
    assert result.exit_code == 0, result
    assert len(warning_lines(result.stderr)) == 2
    assert (tmp_path / "run" / "backbone.safetensors").is_file()


def test_broken_plugins_in_a_fresh_process(broken_site, tmp_path):
    result = lctk_subprocess("plugins", paths=[broken_site], cwd=tmp_path, env={"LCTK_PLUGINS": BROKEN_ONLY})
    assert result.returncode == 0, result.stderr
    warnings = warning_lines(result.stderr)
    assert len(warnings) == 2 and "Traceback" not in result.stderr
    assert any(BROKEN_IMPORT in w and "failed to load" in w for w in warnings)
    assert any(BROKEN_HOOK in w and "register_backbones" in w for w in warnings)
    assert "lctk-conv" in result.stdout


# -- the LCTK_PLUGINS allowlist ---------------------------------------------------------------------------------


def test_allowlist_restricts_loading(installed, example_site, broken_site, monkeypatch, run_cli):
    installed(example_site, broken_site)
    monkeypatch.setenv("LCTK_PLUGINS", "lctk-conv")
    result = run_cli("plugins", "--json")
    assert set(rows_of(result)) == {"lctk", "lctk-conv"} and not warning_lines(result.stderr)  # lctk's own always


def test_empty_allowlist_loads_none(installed, example_site, digits_dir, tmp_path, monkeypatch, run_cli):
    installed(example_site)
    monkeypatch.setenv("LCTK_PLUGINS", "")
    assert set(rows_of(run_cli("plugins", "--json"))) == {"lctk"}  # only lctk's own constraint methods
    result = run_cli("train-vae", "--backbone", "conv", "--data", "idx", "--data-dir", digits_dir,
                     "--out", tmp_path / "run")
    assert result.exit_code != 0 and "unknown backbone 'conv'; available: none installed" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# -- an in-process fake plugin using every hook -------------------------------------------------------------------


@pytest.fixture
def fake_plugin(fresh_plugins):
    """The fake plugin below, registered in-process for one test."""
    fresh_plugins.add_plugin(FakePlugin(), "fake-plugin")
    yield fresh_plugins
    fresh_plugins.remove_plugin("fake-plugin")


def test_fake_plugin_backbone_dataset_and_writer_work_in_the_cli(fake_plugin, tmp_path, run_cli):
    out = tmp_path / "run"
    result = run_cli("train-vae", "--backbone", "fake-linear", "--data", "fake-vectors", "--out", out,
                     "--epochs", "1", "--latent-dim", "2", "--batch-size", "16")
    assert result.exit_code == 0, result
    assert (out / "prior-samples.txt").read_text().startswith("64 outputs")  # written by the fake writer
    assert run_cli("encode", out).exit_code == 0
    info = json.loads((out / "run.json").read_text())
    assert info["backbone_config"]["input_shape"] == [6] and info["dataset"]["modality"] == "fake"


def test_fake_plugin_rule_evaluator_and_command(fake_plugin, run_cli):
    reg = fake_plugin.get_registries()
    entry = reg.rule_entry("fake-positive>=0.5")
    assert entry.plugin == "fake-plugin" and entry.modality == "fake"
    rule = entry.value("fake-positive>=0.5")
    assert isinstance(rule, Rule) and rule(torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])).tolist() == [
        True, True, False]
    assert issubclass(reg.evaluator("fake"), Evaluator) and issubclass(reg.labeler("fake"), Labeler)
    assert reg.labeler("no-such-modality") is None
    result = run_cli("fake-hello", "--name", "lctk")
    assert result.exit_code == 0 and result.stdout.strip() == "hello lctk"
    rows = rows_of(run_cli("plugins", "--json"))
    assert rows["fake-plugin"]["provides"] == {"backbones": ["fake-linear"], "datasets": ["fake-vectors"],
                                               "writers": ["fake"], "evaluators": ["fake"], "labelers": ["fake"],
                                               "rules": ["fake-positive"], "commands": ["fake-hello"]}


def test_removing_the_fake_plugin_removes_what_it_registered(fresh_plugins):
    reg = fresh_plugins.add_plugin(FakePlugin(), "fake-plugin")
    assert "fake-linear" in reg.backbones
    fresh_plugins.remove_plugin("fake-plugin")
    assert "fake-linear" not in fresh_plugins.get_registries().backbones


# -- every hook documented and tested (as datasette insists) ----------------------------------------------------------


def test_hooks_match_the_hookspecs():
    specs = {name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(fn, "lctk_spec")}
    assert set(lctk_plugins.HOOKS) == specs


def _test_sources() -> str:
    files = [*(REPO / "tests").rglob("*.py"), *(REPO / "plugins").glob("*/tests/**/*.py")]
    return "\n".join(f.read_text(errors="replace") for f in files)


def hook_problems(hook: str, docs: str, test_sources: str) -> list[str]:
    """What is missing for ``hook``: a heading in the plugin docs, a mention in some test."""
    problems = []
    if not re.search(rf"^#+\s+`?{hook}`?\b", docs, re.M):
        problems.append(f"docs/plugins.md needs a '## {hook}' section")
    if not re.search(rf"\b{hook}\b", test_sources):
        problems.append(f"no test under tests/ or plugins/*/tests/ mentions {hook}")
    return problems


@pytest.mark.parametrize("hook", lctk_plugins.HOOKS)
def test_hook_is_documented_and_tested(hook):
    assert hook_problems(hook, (REPO / "docs" / "plugins.md").read_text(), _test_sources()) == []


def test_hook_check_catches_an_undocumented_untested_hook():
    hook = "register_" + "unheard_of"  # spelled apart so that this file does not mention it
    assert len(hook_problems(hook, (REPO / "docs" / "plugins.md").read_text(), _test_sources())) == 2


# -- the fake plugin -----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class LinearConfig(BackboneConfig):
    input_shape: tuple[int, ...] = (6,)
    latent_dim: int = 2


class LinearEncoder(Encoder):
    def __init__(self, config: LinearConfig):
        super().__init__()
        self.fc = nn.Linear(config.input_shape[0], 2 * config.latent_dim)

    def forward(self, x):
        mu, s = self.fc(x).chunk(2, dim=1)  # (B, D) each
        return mu, nn.functional.softplus(s) + 1e-4


class LinearDecoder(Decoder):
    def __init__(self, config: LinearConfig):
        super().__init__()
        self.fc = nn.Linear(config.latent_dim, config.input_shape[0])

    def forward(self, z, x=None):
        return self.fc(z)  # (B, N)

    def log_likelihood(self, x, params):
        return gaussian_log_likelihood(x, params, 1.0)

    def generate(self, z, *, temperature=0.0, generator=None):
        return self(z)


class LinearVAE(Backbone):
    """A linear VAE for flat vectors."""

    config_class = LinearConfig

    def __init__(self, config: LinearConfig):
        super().__init__(config)
        self.encoder, self.decoder = LinearEncoder(config), LinearDecoder(config)


def load_vectors(request):
    """40 random 6-vectors; attribute: first value positive."""
    x = torch.randn(40, 6, generator=torch.Generator().manual_seed(request.seed))  # (N, 6)
    split = (torch.arange(40) >= 32).to(torch.int8)
    return InMemoryDataset("fake-vectors", "fake", x, x[:, :1] > 0, ["positive"], split, {"input_shape": [6]})


class TextWriter(Writer):
    default_suffix = ".txt"

    def write_batch(self, outputs, path, *, columns=None, labels=None):
        write_bytes(path, f"{len(outputs)} outputs\n".encode())
        return [Path(path)]

    def write_pairs(self, before, after, path):
        write_bytes(path, f"{len(before)} pairs\n".encode())
        return [Path(path)]


class PositiveRule(Rule):
    def __init__(self, spec: str):
        self.spec = spec
        self.fraction = float(spec.split(">=")[1])

    def __call__(self, outputs):
        return (outputs > 0).float().mean(dim=1) >= self.fraction  # (B,)


class MeanEvaluator(Evaluator):
    def prepare(self, seed=0):
        return {}

    def evaluate(self, name, outputs, target=None, reference=None):
        return {"mean": float(outputs.mean())}


class SignLabeler(Labeler):
    def prepare(self, seed=0):
        return {}

    def label(self, outputs):
        return outputs[:, :1] > 0


@click.command("fake-hello")
@click.option("--name", default="world")
def hello(name):
    click.echo(f"hello {name}")


class FakePlugin:
    """Uses every hook, as a plugin package would from its entry-point module."""

    @hookimpl
    def register_backbones(self, register):
        register("fake-linear", LinearVAE)

    @hookimpl
    def register_datasets(self, register):
        register("fake-vectors", load_vectors, modality="fake")

    @hookimpl
    def register_writers(self, register):
        register("fake", TextWriter())

    @hookimpl
    def register_evaluators(self, register):
        register("fake", MeanEvaluator)

    @hookimpl
    def register_labelers(self, register):
        register("fake", SignLabeler)

    @hookimpl
    def register_rules(self, register):
        register("fake-positive", PositiveRule, modality="fake", help="a share of positive values")

    @hookimpl
    def register_commands(self, cli):
        cli.add_command(hello)
