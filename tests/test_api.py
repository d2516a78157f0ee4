"""The Python API on its own (the CLI calls it, so the CLI tests exercise it too): every command's
function, the CLI's checks (bounds, --check, --each, --prior), `Sampler` as a context manager, and
examples/python_api.py run end to end on a tiny setting."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from lctk import api
from lctk.util.errors import LctkError
from tests.plugin_packages import REPO as REPO_ROOT

TINY_CONSTRAINT = {"steps": 20, "classifier_steps": 20, "width": 16, "depth": 1, "batch_size": 32}


@pytest.fixture(scope="module")
def constrained(tmp_path_factory, tiny_run_template):
    """A copy of the tiny run with a constraint for attributes 3 and 7, trained through the API."""
    import shutil

    run = api.RunDir(shutil.copytree(tiny_run_template, tmp_path_factory.mktemp("api") / "run"))
    folder = api.add_constraint(run, ["3", "7"], overrides=TINY_CONSTRAINT)
    assert folder == run.constraints_dir / "3+7" and (folder / "weights.safetensors").is_file()
    return run


def test_sample_forms(constrained, tmp_path):
    images = api.sample(constrained, attrs=["3"], n=5)
    assert images.shape[0] == 5 and images.dtype == torch.float32
    assert torch.equal(images, api.sample(constrained.path, attrs=["3"], n=5))  # seeded: the same draw
    rows = api.write_samples(constrained, n=3, each=True, out=tmp_path / "each.png")
    assert rows.labels == ["3", "7"] and len(rows.outputs) == 6 and rows.files == [tmp_path / "each.png"]
    prior = api.write_samples(constrained, n=4, prior=True)
    assert prior.files == [constrained.path / "samples" / "prior.png"] and prior.files[0].is_file()
    with pytest.raises(LctkError, match="does not go with --prior"):
        api.sample(constrained, rules=["x"], n=2, prior=True, check=True)
    with pytest.raises(LctkError, match="give at least one --rule"):
        api.sample(constrained, attrs=["3"], n=2, check=True)
    with pytest.raises(LctkError, match=r"the image writer writes \.png files, not \.csv; name the output s\.png"):
        api.write_samples(constrained, attrs=["3"], n=2, out=tmp_path / "s.csv")
    assert not (tmp_path / "s.csv").exists()


def test_transform_bounds_and_test_indices(constrained, tmp_path):
    dataset = constrained.load_dataset()
    test = dataset.indices("test")
    before, after = api.transform(constrained, test_indices=[0], attrs=["7"])
    global_before, _ = api.transform(constrained, indices=[int(test[0])], attrs=["7"])
    assert torch.equal(before, global_before) and after.shape == before.shape
    with pytest.raises(LctkError, match=rf"--index {len(dataset)} is out of range; the dataset has {len(dataset)}"):
        api.transform(constrained, indices=[len(dataset)], attrs=["7"])
    with pytest.raises(LctkError, match=rf"--test-index {len(test)} is out of range; .* {len(test)} test examples"):
        api.transform(constrained, test_indices=[len(test)], attrs=["7"])
    with pytest.raises(LctkError, match="exactly one of"):
        api.transform(constrained, indices=[0], test_indices=[0], attrs=["7"])
    edits = api.write_transform(constrained, test_indices=[1, 2], attrs=["3"])
    assert edits.files == [constrained.path / "transforms" / "3.png"] and edits.files[0].is_file()


def test_sampler_is_a_context_manager(constrained):
    with api.Sampler(constrained) as sampler:
        sampler.table()
        assert sampler._store is not None
    assert sampler._store is None


def test_check_never_passes_off_failing_samples(constrained, monkeypatch, run_cli, tmp_path):
    """A rule that most samples break: the redraw budget runs out, and only samples that satisfy it are
    written, with a warning saying how many were left out."""
    from lctk.engine.sampling import Sampler

    calls = {"n": 0}

    def checked(self, wants, n, method="actor", seed=0, rounds=10, first=None, guidance=None):
        outputs = self.decode(self.latents(wants, n, method, seed)[1])
        ok = torch.arange(n) % 4 == 0  # a quarter satisfy the rule
        calls["n"] += 1
        return outputs, n * (rounds + 1), ok

    monkeypatch.setattr(Sampler, "checked", checked)
    monkeypatch.setattr(Sampler, "wants", lambda self, attrs=(), rules=(): [])
    result = run_cli("sample", constrained.path, "--rule", "anything", "-n", "8", "--check", "--out", tmp_path / "c.png")
    assert result.exit_code == 0, result
    assert "6 of 8 samples still broke a rule" in result.stderr and "wrote the 2 that satisfy" in result.stderr
    assert "wrote 2 samples" in result.stderr

    monkeypatch.setattr(Sampler, "checked", lambda self, wants, n, *a, **k: (torch.zeros(n, 1, 8, 8), 11 * n,
                                                                               torch.zeros(n, dtype=torch.bool)))
    result = run_cli("sample", constrained.path, "--rule", "anything", "-n", "8", "--check", "--out", tmp_path / "d.png")
    assert result.exit_code != 0 and "none of 88 samples drawn satisfied anything" in result.stderr
    assert not (tmp_path / "d.png").exists()


def test_evaluate_and_its_report_on_stdout(constrained, run_cli):
    metrics = api.evaluate(constrained, n=20)
    assert json.loads(constrained.metrics_path.read_text()) == metrics
    assert set(metrics["conditional"]["actor"]["per_attribute"]) == {"3", "7"}
    with pytest.raises(LctkError, match="-n 5 should be at least 10"):
        api.evaluate(constrained, n=5)
    result = run_cli("evaluate", constrained.path, "-n", "20")
    assert result.exit_code == 0 and "samples measured independently" in result.stdout
    assert "samples measured independently" not in result.stderr


def test_the_python_api_example_runs(tmp_path, digits_dir, capsys):
    spec = importlib.util.spec_from_file_location("python_api_example", REPO_ROOT / "examples" / "python_api.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    metrics = example.main(str(tmp_path / "demo"), data="idx", data_dir=str(digits_dir), attrs=("3", "7"), epochs=1,
                           max_examples=300, steps=10, n=20, backbone_settings={"latent_dim": 4, "width": 4, "hidden": 16},
                           constraint_settings={"classifier_steps": 10, "width": 16, "depth": 1, "batch_size": 32})
    out = capsys.readouterr().out
    assert "3 samples: (16, 1, 8, 8)" in out and "edited: (2, 1, 8, 8)" in out
    assert (tmp_path / "demo" / "api-3.png").is_file() and (tmp_path / "demo" / "api-to-7.png").is_file()
    assert metrics["conditional"]["actor"]["mean_accuracy"] is not None
