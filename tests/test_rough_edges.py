"""Rough edges a new user or plugin author hit, on the in-process fake plugin (tiny and fast): backbone options
from the backbone's config (and `--backbone NAME --help`), `lctk evaluate` without an evaluator, a rule no
sample satisfies, `transform`'s default output and `--test-index`."""

from __future__ import annotations

import json

import pytest

from lctk import hookimpl
from tests.test_plugins import FakePlugin

TINY_CONSTRAINT = ["--steps", "5", "--set", "classifier_steps=5", "--set", "width=8", "--set", "depth=1",
                   "--set", "batch_size=16", "--set", "rule_pool=64", "--set", "relabel_batch=16"]


class NoEvaluatorPlugin(FakePlugin):
    """The fake plugin without its evaluator (a method without the hookimpl mark is not a hook)."""

    def register_evaluators(self, register):
        pass


@pytest.fixture
def fake_run(fresh_plugins, tmp_path, run_cli):
    fresh_plugins.add_plugin(NoEvaluatorPlugin(), "fake-plugin")
    run = tmp_path / "run"
    r = run_cli("train-vae", "--backbone", "fake-linear", "--data", "fake-vectors", "--out", run, "--epochs", "1",
                "--batch-size", "16")
    assert r.exit_code == 0, r
    assert run_cli("encode", run).exit_code == 0
    yield run
    fresh_plugins.remove_plugin("fake-plugin")


def test_backbone_options_come_from_its_config(fake_run, run_cli, tmp_path):
    help_text = run_cli("train-vae", "--backbone", "fake-linear", "--help").stdout
    assert "Options of backbone fake-linear" in help_text and "--input-shape" in help_text
    assert "--latent-dim INT" in help_text and "[default: 2]" in help_text
    core = help_text.split("Options of backbone")[0]
    assert not any(line.strip().startswith("--sigma-x") for line in core.splitlines())  # not a core flag any more
    listing = run_cli("train-vae", "--help").stdout
    assert "fake-linear" in listing and "fake-vectors" in listing
    r = run_cli("train-vae", "--backbone", "fake-linear", "--data", "fake-vectors", "--out", tmp_path / "x",
                "--sigma-x", "0.5")
    assert r.exit_code != 0 and "no such option --sigma-x" in r.stderr and "--backbone fake-linear --help" in r.stderr
    assert not (tmp_path / "x").exists()
    r = run_cli("train-vae", "--backbone", "fake-linear", "--data", "fake-vectors", "--out", tmp_path / "y",
                "--epochs", "1", "--batch-size", "16", "--latent-dim", "3", "--beta", "0.5")
    assert r.exit_code == 0, r
    assert json.loads((tmp_path / "y" / "run.json").read_text())["backbone_config"]["beta"] == 0.5


def test_conv_options_still_work_as_flags(run_cli, digits_dir, tmp_path):
    r = run_cli("train-vae", "--backbone", "conv", "--data", "idx", "--data-dir", digits_dir, "--out", tmp_path / "r",
                "--epochs", "1", "--latent-dim", "4", "--width", "4", "--hidden=16", "--sigma-x", "0.2",
                "--max-examples", "200", "--batch-size", "64")
    assert r.exit_code == 0, r
    config = json.loads((tmp_path / "r" / "run.json").read_text())["backbone_config"]
    assert config["sigma_x"] == 0.2 and config["width"] == 4 and config["hidden"] == 16


def test_evaluate_without_an_evaluator_reports_what_it_can(fake_run, run_cli):
    assert run_cli("add-constraint", fake_run, "--attr", "positive", *TINY_CONSTRAINT).exit_code == 0
    r = run_cli("evaluate", fake_run, "-n", "10")
    assert r.exit_code == 0, r
    metrics = json.loads((fake_run / "metrics.json").read_text())
    assert "none installed for modality 'fake'" in metrics["evaluator"]["evaluator"]
    assert metrics["conditional"]["actor"]["mean_accuracy"] is None
    assert metrics["conditional"]["actor"]["mean_sigma_weighted_shift"] > 0
    assert "samples measured independently" in r.stdout


def test_a_rule_nothing_satisfies_is_refused(fake_run, run_cli):
    r = run_cli("add-constraint", fake_run, "--rule", "fake-positive>=1.5", *TINY_CONSTRAINT)
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.exit_code != 0 and len(errors) == 1 and r.stderr.splitlines()[-1] == errors[0]
    assert "rule 'fake-positive>=1.5' holds for none of 32 decoded latents" in errors[0]


def test_transform_writes_under_the_run_by_default(fake_run, run_cli):
    assert run_cli("add-constraint", fake_run, "--attr", "positive", *TINY_CONSTRAINT).exit_code == 0
    r = run_cli("transform", fake_run, "--test-index", "0", "--attr", "positive", "--steps", "3")
    assert r.exit_code == 0, r
    assert (fake_run / "transforms" / "positive.txt").read_text() == "1 pairs\n"
    r = run_cli("transform", fake_run, "--test-index", "8", "--attr", "positive")
    assert r.exit_code != 0 and "--test-index 8 is out of range; the dataset has 8 test examples" in r.stderr
