"""The diffusers importer: an AutoencoderKL folder read as diffusers reads it (latent_dist mean and std,
decode), taken through the whole pipeline unchanged, and the folders it must refuse."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import torch

from diffusers_fixtures import autoencoder, digits28, save_autoencoder  # noqa: F401  (fixtures)
from lctk_diffusers.importer import AutoencoderKLImporter
from tests.conftest import fresh_plugins, run_cli  # noqa: F401  (fixtures)
from tests.importing_helpers import Marker, refused_unchanged, run_the_pipeline, tree_digests


def test_the_import_computes_what_diffusers_computes(autoencoder):
    from diffusers import AutoencoderKL

    backbone = AutoencoderKLImporter().load(autoencoder, {"input_shape": [1, 28, 28]})
    assert backbone.config.latent_shape == (2, 7, 7) and backbone.latent_dim == 98
    reference = AutoencoderKL.from_pretrained(str(autoencoder), use_safetensors=True).eval()
    torch.manual_seed(1)
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        mu, sigma = backbone.encode(x)  # (3, 98) each
        posterior = reference.encode(x * 2 - 1).latent_dist  # (3, 2, 7, 7)
        torch.testing.assert_close(mu, (posterior.mean * 0.5).flatten(1))  # scaled by config.scaling_factor
        torch.testing.assert_close(sigma, (posterior.std * 0.5).flatten(1))
        images = backbone.decode(mu)
        torch.testing.assert_close(images, ((reference.decode(posterior.mean).sample + 1) / 2).clamp(0, 1))
    assert images.shape == (3, 1, 28, 28)


def test_autoencoder_through_the_pipeline_leaves_the_folder_byte_identical(autoencoder, digits28, tmp_path, run_cli):
    before = tree_digests(autoencoder)
    run = tmp_path / "run"
    r = run_cli("import-backbone", autoencoder, "--data", "idx", "--data-dir", digits28, "--out", run)
    assert r.exit_code == 0, r
    info = json.loads((run / "run.json").read_text())
    assert info["source"]["format"] == "diffusers-autoencoderkl"
    assert set(info["source"]["files"]) == {"config.json", "diffusion_pytorch_model.safetensors"}
    run_the_pipeline(run_cli, run, tmp_path, "3")
    assert tree_digests(autoencoder) == before



def test_a_pickle_posing_as_safetensors_is_refused_without_running_it(autoencoder, digits28, tmp_path, run_cli):
    folder = Path(shutil.copytree(autoencoder, tmp_path / "evil"))
    marker = tmp_path / "pwned"
    torch.save({"weight": Marker(marker)}, folder / "diffusion_pytorch_model.safetensors")
    refused_unchanged(run_cli, folder, digits28, tmp_path, "diffusion_pytorch_model.safetensors", "is a pickle")
    (folder / "diffusion_pytorch_model.safetensors").write_bytes(pickle.dumps(Marker(marker), protocol=2))
    refused_unchanged(run_cli, folder, digits28, tmp_path, "is a pickle", "never loads")
    assert not marker.exists()


def test_bin_only_weights_are_refused(tmp_path, digits28, run_cli):
    folder = save_autoencoder(tmp_path / "bin", safe=False)
    assert (folder / "diffusion_pytorch_model.bin").is_file()
    refused_unchanged(run_cli, folder, digits28, tmp_path, "only pickled weights", "diffusion_pytorch_model.bin",
                       "safe_serialization")


def test_config_not_matching_the_weights_is_refused(autoencoder, digits28, tmp_path, run_cli):
    folder = Path(shutil.copytree(autoencoder, tmp_path / "mismatch"))
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "latent_channels": 3}))
    refused_unchanged(run_cli, folder, digits28, tmp_path, "does not fit config.json", "has shape", "the config implies")


def test_image_size_and_channel_mismatches_are_refused(tmp_path, digits28, run_cli):
    refused_unchanged(run_cli, save_autoencoder(tmp_path / "big", sample_size=32), digits28, tmp_path,
                       "32x32", "28x28", "neither pads nor resizes")
    refused_unchanged(run_cli, save_autoencoder(tmp_path / "rgb", in_channels=3, out_channels=3), digits28, tmp_path,
                       "3-channel", "have 1", "in_channels = out_channels = 1")


def test_a_folder_in_no_known_format_lists_the_installed_formats(tmp_path, digits28, run_cli):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("not a model")
    refused_unchanged(run_cli, folder, digits28, tmp_path, "no known model format", "diffusers-autoencoderkl", "pythae")
