"""Fixtures of the pythae importer's tests: pythae VAEs trained by pythae's own TrainingPipeline for one epoch
on 300 digits scaled to 28x28. (Not a conftest.py: the plugins' test folders share the module name
``conftest``; test modules import these fixtures instead.)"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

try:
    import tests.conftest  # noqa: F401  (the repository root is on sys.path under `python -m pytest`)
except ModuleNotFoundError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from tests.importing_helpers import make_digits28_idx  # noqa: E402


def train_with_pythae(out: Path, images: torch.Tensor, benchmark: bool) -> Path:
    """A pythae VAE (latent 4, BCE) trained one epoch by pythae's TrainingPipeline; its final_model folder."""
    from pythae.models import VAE, VAEConfig
    from pythae.models.nn.benchmarks.mnist import Decoder_ResNet_AE_MNIST, Encoder_ResNet_VAE_MNIST
    from pythae.pipelines import TrainingPipeline
    from pythae.trainers import BaseTrainerConfig

    torch.manual_seed(0)
    config = VAEConfig(input_dim=(1, 28, 28), latent_dim=4, reconstruction_loss="bce")
    nets = dict(encoder=Encoder_ResNet_VAE_MNIST(config), decoder=Decoder_ResNet_AE_MNIST(config)) if benchmark else {}
    model = VAE(config, **nets)
    training = BaseTrainerConfig(output_dir=str(out), num_epochs=1, per_device_train_batch_size=50,
                                 per_device_eval_batch_size=50, no_cuda=True)
    TrainingPipeline(training_config=training, model=model)(train_data=images[:250], eval_data=images[250:])
    return next(out.glob("*/final_model"))


@pytest.fixture(scope="session")
def digits28(tmp_path_factory) -> Path:
    """300 training + 100 test digits at 28x28 as IDX files."""
    return make_digits28_idx(tmp_path_factory.mktemp("digits28"))


@pytest.fixture(scope="session")
def pythae_models(tmp_path_factory, digits28) -> dict[str, Path]:
    """{"mlp": pythae's default networks, "resnet": its MNIST ResNet benchmark nets (pickled by pythae)}."""
    from lctk.plugins import DataRequest
    from lctk_conv.mnist_like import load_idx

    data = load_idx(DataRequest(data_dir=digits28))
    images = data.fetch(torch.arange(300))  # (300, 1, 28, 28) in [0, 1]
    root = tmp_path_factory.mktemp("pythae")
    return {"mlp": train_with_pythae(root / "mlp", images, False),
            "resnet": train_with_pythae(root / "resnet", images, True)}
