"""The pythae importer: folders written by pythae's TrainingPipeline read as pythae reads them (without its
unpickling loader), taken through the whole pipeline unchanged, and the folders it must refuse."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from lctk_pythae.importer import PythaeImporter
from pythae_fixtures import digits28, pythae_models  # noqa: F401  (fixtures)
from tests.conftest import fresh_plugins, run_cli  # noqa: F401  (fixtures)
from tests.importing_helpers import Marker, refused_unchanged, run_the_pipeline, tree_digests

SPEC = {"input_shape": [1, 28, 28]}


@pytest.mark.parametrize("arch, encoder", [("mlp", "Encoder_VAE_MLP"), ("resnet", "Encoder_ResNet_VAE_MNIST")])
def test_the_import_computes_what_pythae_computes(pythae_models, arch, encoder):
    from pythae.models import AutoModel

    folder = pythae_models[arch]
    backbone = PythaeImporter().load(folder, SPEC)
    assert backbone.config.encoder == encoder and backbone.latent_dim == 4
    reference = AutoModel.load_from_folder(str(folder)).eval()  # pythae's own (unpickling) loader, on our own files
    torch.manual_seed(1)
    x, z = torch.rand(5, 1, 28, 28), torch.randn(5, 4)
    with torch.no_grad():
        out = reference.encoder(x)
        mu, sigma = backbone.encode(x)
        torch.testing.assert_close(mu, out.embedding)
        torch.testing.assert_close(sigma, torch.exp(0.5 * out.log_covariance))
        decoded = backbone.decode(z)
        torch.testing.assert_close(decoded, reference.decoder(z).reconstruction.reshape(5, 1, 28, 28))
    assert decoded.shape == (5, 1, 28, 28) and 0 <= decoded.min() and decoded.max() <= 1


def test_pythae_run_through_the_pipeline_leaves_the_folder_byte_identical(pythae_models, digits28, tmp_path, run_cli):
    folder = pythae_models["resnet"]
    assert (folder / "encoder.pkl").is_file()  # pythae pickled its benchmark nets; lctk rebuilds them instead
    before = tree_digests(folder)
    run = tmp_path / "run"
    r = run_cli("import-backbone", folder, "--data", "idx", "--data-dir", digits28, "--out", run)
    assert r.exit_code == 0, r
    info = json.loads((run / "run.json").read_text())
    assert info["source"]["format"] == "pythae"
    assert set(info["source"]["files"]) == {"model.pt", "model_config.json", "training_config.json", "environment.json"}
    run_the_pipeline(run_cli, run, tmp_path, "3")
    assert tree_digests(folder) == before


def _copy(folder: Path, tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(folder, tmp_path / name))



def test_a_pickle_posing_as_model_pt_is_refused_without_running_it(pythae_models, digits28, tmp_path, run_cli):
    folder = _copy(pythae_models["mlp"], tmp_path, "evil")
    marker = tmp_path / "pwned"
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(Marker(probe)))  # the payload is live: unpickling it creates its file
    assert probe.exists()
    torch.save({"model_state_dict": Marker(marker)}, folder / "model.pt")
    refused_unchanged(run_cli, folder, digits28, tmp_path, "model.pt", "weights_only", "never runs code")
    assert not marker.exists()
    (folder / "model.pt").write_bytes(pickle.dumps(Marker(marker), protocol=2))  # a bare (non-zip) pickle too
    refused_unchanged(run_cli, folder, digits28, tmp_path, "model.pt", "weights_only")
    assert not marker.exists()


def custom_encoder() -> nn.Module:
    """A network pythae does not ship: pythae's save pickles it into encoder.pkl."""
    from pythae.models.nn import BaseEncoder

    class CustomEncoder(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.body = nn.Linear(784, 6)

        def forward(self, x):
            from pythae.models.base.base_utils import ModelOutput

            mu, log_var = self.body(x.reshape(len(x), -1)).chunk(2, dim=1)
            return ModelOutput(embedding=mu, log_covariance=log_var)

    return CustomEncoder()


def test_custom_pickled_networks_are_refused_with_the_reason(tmp_path, digits28, run_cli):
    from pythae.models import VAE, VAEConfig

    folder = tmp_path / "custom"
    VAE(VAEConfig(input_dim=(1, 28, 28), latent_dim=3), encoder=custom_encoder()).save(str(folder))
    assert (folder / "encoder.pkl").is_file()
    marker = tmp_path / "pwned"
    (folder / "encoder.pkl").write_bytes(pickle.dumps(Marker(marker)))  # whatever it holds, it is never opened
    refused_unchanged(run_cli, folder, digits28, tmp_path, "encoder.pkl", "custom network", "never unpickles",
                       "runs whatever code")
    assert not marker.exists()


def test_config_not_matching_the_weights_is_refused(pythae_models, digits28, tmp_path, run_cli):
    folder = _copy(pythae_models["mlp"], tmp_path, "mismatch")
    config = json.loads((folder / "model_config.json").read_text())
    (folder / "model_config.json").write_text(json.dumps({**config, "latent_dim": 5}))
    refused_unchanged(run_cli, folder, digits28, tmp_path, "does not fit model_config.json",
                       "encoder.embedding.bias has shape [4]", "has [5]")


def test_an_image_size_mismatch_is_refused(tmp_path, digits28, run_cli):
    from pythae.models import VAE, VAEConfig

    folder = tmp_path / "big"
    VAE(VAEConfig(input_dim=(1, 32, 32), latent_dim=3)).save(str(folder))
    refused_unchanged(run_cli, folder, digits28, tmp_path, "[1, 32, 32]", "[1, 28, 28]")


def test_unsupported_pythae_models_and_damaged_files_are_refused(pythae_models, digits28, tmp_path, run_cli):
    folder = _copy(pythae_models["mlp"], tmp_path, "vamp")
    config = json.loads((folder / "model_config.json").read_text())
    (folder / "model_config.json").write_text(json.dumps({**config, "name": "VAMPConfig"}))
    refused_unchanged(run_cli, folder, digits28, tmp_path, "VAMPConfig", "N(0, I)")
    (folder / "model_config.json").write_text(json.dumps(config))
    (folder / "model.pt").write_bytes(b"\x00" * 100)
    refused_unchanged(run_cli, folder, digits28, tmp_path, "model.pt", "not a plain weights file")
