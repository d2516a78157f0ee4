"""pythae's MNIST conv benchmark nets (Encoder_Conv_VAE_MNIST + Decoder_Conv_AE_MNIST): pythae pickles them into
encoder.pkl/decoder.pkl; the importer recognises them from model.pt alone and computes what they compute."""

from __future__ import annotations

import pickle

import torch

import pythae_fixtures  # noqa: F401,E402  (puts the repository root on sys.path for `tests.`)
from lctk_pythae.importer import PythaeImporter
from tests.importing_helpers import Marker  # noqa: E402


def test_conv_benchmark_nets_are_rebuilt_from_model_pt_alone(tmp_path):
    from pythae.models import VAE, VAEConfig
    from pythae.models.nn.benchmarks.mnist import Decoder_Conv_AE_MNIST, Encoder_Conv_VAE_MNIST

    torch.manual_seed(0)
    config = VAEConfig(input_dim=(1, 28, 28), latent_dim=3, reconstruction_loss="bce")
    model = VAE(config, encoder=Encoder_Conv_VAE_MNIST(config), decoder=Decoder_Conv_AE_MNIST(config)).eval()
    folder = tmp_path / "conv"
    model.save(str(folder))  # pythae's own writer: model.pt, model_config.json, encoder.pkl, decoder.pkl
    marker = tmp_path / "pwned"
    for part in ("encoder", "decoder"):  # whatever the pickles hold, the importer never opens them
        assert (folder / f"{part}.pkl").is_file()
        (folder / f"{part}.pkl").write_bytes(pickle.dumps(Marker(marker)))

    backbone = PythaeImporter().load(folder, {"input_shape": [1, 28, 28]})
    assert (backbone.config.encoder, backbone.config.decoder) == ("Encoder_Conv_VAE_MNIST", "Decoder_Conv_AE_MNIST")
    x, z = torch.rand(4, 1, 28, 28), torch.randn(4, 3)
    with torch.no_grad():
        out = model.encoder(x)
        mu, sigma = backbone.encode(x)
        torch.testing.assert_close(mu, out.embedding)
        torch.testing.assert_close(sigma, torch.exp(0.5 * out.log_covariance))
        torch.testing.assert_close(backbone.decode(z), model.decoder(z).reconstruction.reshape(4, 1, 28, 28))
    assert not marker.exists()
