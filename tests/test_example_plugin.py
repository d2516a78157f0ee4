"""The third-party example plugin (examples/lctk-mlp), installed for real and found by the unchanged CLI."""

from __future__ import annotations

import json

import h5py
import pytest
import torch

from tests.plugin_packages import example_target, lctk_subprocess


@pytest.fixture(scope="session")
def example_site(tmp_path_factory):
    """A folder where examples/lctk-mlp is pip-installed (a real distribution with a real entry point)."""
    return example_target(tmp_path_factory)


def test_installed_as_a_real_distribution(example_site):
    dist_info = list(example_site.glob("lctk_mlp-*.dist-info"))
    assert len(dist_info) == 1
    assert "[lctk]\nmlp = lctk_mlp.plugin" in (dist_info[0] / "entry_points.txt").read_text()


def test_cli_lists_the_plugin(example_site, tmp_path):
    r = lctk_subprocess("plugins", "--json", paths=[example_site], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert rows["lctk-mlp"]["version"] == "0.1.0"
    assert rows["lctk-mlp"]["provides"] == {"backbones": ["mlp"]} and rows["lctk-mlp"]["error"] is None
    assert "conv" in rows["lctk-conv"]["provides"]["backbones"]
    assert "lctk-mlp" not in r.stderr  # no warning about it


def test_cli_trains_and_encodes_with_the_plugin(example_site, digits_dir, tmp_path):
    run = tmp_path / "run"
    r = lctk_subprocess("train-vae", "--backbone", "mlp", "--data", "idx", "--data-dir", digits_dir, "--out", run,
                        "--epochs", "1", "--latent-dim", "4", "--set", "hidden=32", "--batch-size", "64",
                        "--max-examples", "300", paths=[example_site], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    info = json.loads((run / "run.json").read_text())
    assert info["backbone"] == "mlp" and info["backbone_config"]["input_shape"] == [1, 8, 8]
    assert info["backbone_config"]["sigma_x"] == 0.1 and info["status"] == "trained"
    r = lctk_subprocess("encode", run, paths=[example_site], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    with h5py.File(run / "latents.h5", "r") as f:
        assert f["mu"].shape == (300, 4) and f["attributes"].shape == (300, 10)


def test_backbone_fits_any_fixed_shape(example_site, monkeypatch):
    monkeypatch.syspath_prepend(str(example_site))
    from lctk_mlp.model import MLPVAE

    model = MLPVAE(MLPVAE.configure({"input_shape": [7]}, {"latent_dim": 3, "hidden": 16, "sigmoid_output": "false"}))
    x = torch.randn(5, 7) * 4  # (B, 7) unbounded floats
    terms = model.elbo_terms(x, generator=torch.Generator().manual_seed(0))
    assert terms["reconstruction"].shape == (5,) and torch.isfinite(terms["loss"])
    assert model.sample(2).shape == (2, 7) and model.reconstruct(x).shape == (5, 7)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    terms["loss"].backward()
    torch.optim.SGD(model.parameters(), lr=1e-3).step()
    assert all(not torch.equal(v, before[k]) for k, v in model.state_dict().items())
