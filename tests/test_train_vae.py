"""train-vae and encode on tiny data: weights change, resume is bit-identical, files are right."""

from __future__ import annotations

import json

import h5py
import torch

from lctk.util.io import load_tensors
from lctk.run import RunDir, fingerprint
from tests.conftest import TINY_VAE


def test_train_writes_run_folder(tiny_run_template):
    run = RunDir(tiny_run_template)
    info = run.read()
    assert info["status"] == "trained" and len(info["history"]) == 3
    assert info["history"][-1]["loss"] < info["history"][0]["loss"]
    for name in ("backbone.safetensors", "checkpoint.safetensors", "reconstructions.png", "prior-samples.png", "latents.h5"):
        assert (run.path / name).is_file(), name


def test_one_step_changes_weights(digits_dir):
    from lctk.run import load_dataset
    from lctk.trainer import TrainSettings, VAETrainer
    from lctk_conv.model import ConvVAE

    dataset = load_dataset({"name": "idx", "data_dir": str(digits_dir)})
    model = ConvVAE(ConvVAE.configure(dataset.spec, {"latent_dim": 4, "width": 4, "hidden": 16}))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = VAETrainer(model, dataset, TrainSettings(epochs=1, batch_size=32), checkpoint_path=digits_dir / "x.ckpt")
    trainer._train_step(0)
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert len(changed) == len(before)


def test_resume_is_bit_identical(tmp_path, digits_dir, run_cli):
    common = ["train-vae", "--backbone", "conv", "--data", "idx", "--data-dir", digits_dir, *TINY_VAE,
              "--max-examples", "400", "--checkpoint-every", "2"]
    assert run_cli(*common, "--out", tmp_path / "straight", "--epochs", "3").exit_code == 0
    assert run_cli(*common, "--out", tmp_path / "split", "--epochs", "1").exit_code == 0
    r = run_cli("train-vae", "--out", tmp_path / "split", "--epochs", "3", "--resume")
    assert r.exit_code == 0, r
    a, _ = load_tensors(tmp_path / "straight" / "backbone.safetensors")
    b, _ = load_tensors(tmp_path / "split" / "backbone.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_encode_shapes_and_fingerprint(tiny_run_template):
    run = RunDir(tiny_run_template)
    backbone = run.load_backbone()
    with h5py.File(run.latents_path, "r") as f:
        assert f["mu"].shape == (1797, 8) and f["sigma"].shape == (1797, 8)
        assert f["attributes"].shape == (1797, 10)
        assert json.loads(f.attrs["attribute_names"]) == [str(i) for i in range(10)]
        assert (f["split"][...] == 0).sum() == 1500
        assert f.attrs["fingerprint"] == fingerprint(backbone)
        assert (f["sigma"][...] > 0).all()
        assert f["attributes"][...].sum(axis=1).tolist() == [1] * 1797


def test_existing_run_refused_without_resume(tiny_run, digits_dir, run_cli):
    before = (tiny_run / "backbone.safetensors").read_bytes()
    r = run_cli("train-vae", "--backbone", "conv", "--data", "idx", "--data-dir", digits_dir, "--out", tiny_run)
    assert r.exit_code != 0 and "already exists" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert (tiny_run / "backbone.safetensors").read_bytes() == before
