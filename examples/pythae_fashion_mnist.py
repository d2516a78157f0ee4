"""A VAE trained by pythae's own TrainingPipeline on Fashion-MNIST, then constrained by lctk without retraining.

    python examples/pythae_fashion_mnist.py runs/pythae-fm [--epochs 10] [--nets mlp|resnet] [--latent-dim 16]

writes OUT/model/ (pythae's training folder; lctk reads its final_model/ and never changes it) and OUT/run/
(the lctk run: import-backbone, encode, the 10 classes as one constraint, samples, evaluate).
Needs the lctk-pythae plugin (pip install -e plugins/lctk-pythae).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import lctk  # noqa: F401  (before torch: lctk lets OpenMP threads sleep while they wait, as a shared CPU needs)
import torch

from imported_pipeline import constrain


def fashion_mnist() -> tuple[torch.Tensor, torch.Tensor]:
    """Training and test images (N, 1, 28, 28) in [0, 1], from the same loader lctk uses."""
    from lctk.plugins import DataRequest, get_registries

    data = get_registries().dataset("fashion-mnist").value(DataRequest())
    return data.fetch(data.indices("train")), data.fetch(data.indices("test"))


def train(model_dir: Path, epochs: int, nets: str, latent_dim: int, beta: float | None = None) -> Path:
    """Train with pythae's TrainingPipeline (BCE VAE, or pythae's BetaVAE when ``beta`` is given); return the
    final_model folder pythae writes."""
    from pythae.models import VAE, BetaVAE, BetaVAEConfig, VAEConfig
    from pythae.models.nn.benchmarks.mnist import Decoder_ResNet_AE_MNIST, Encoder_ResNet_VAE_MNIST
    from pythae.pipelines import TrainingPipeline
    from pythae.trainers import BaseTrainerConfig

    torch.manual_seed(0)
    config = VAEConfig(input_dim=(1, 28, 28), latent_dim=latent_dim, reconstruction_loss="bce") if beta is None else \
        BetaVAEConfig(input_dim=(1, 28, 28), latent_dim=latent_dim, reconstruction_loss="bce", beta=beta)
    networks = {"encoder": Encoder_ResNet_VAE_MNIST(config), "decoder": Decoder_ResNet_AE_MNIST(config)} \
        if nets == "resnet" else {}
    training = BaseTrainerConfig(output_dir=str(model_dir), num_epochs=epochs, learning_rate=1e-3,
                                 per_device_train_batch_size=128, per_device_eval_batch_size=500, no_cuda=True,
                                 steps_saving=None, seed=0)
    train_x, test_x = fashion_mnist()
    model = VAE(config, **networks) if beta is None else BetaVAE(config, **networks)
    TrainingPipeline(training_config=training, model=model)(train_data=train_x, eval_data=test_x)
    return final_model(model_dir)


def final_model(model_dir: Path) -> Path | None:
    """The newest final_model folder pythae wrote under ``model_dir``, if any."""
    found = sorted(model_dir.glob("*/final_model"))
    return found[-1] if found else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", nargs="?", default="runs/pythae-fm", type=Path)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--nets", choices=("mlp", "resnet"), default="mlp",
                        help="pythae's default MLPs (fast on a CPU) or its MNIST ResNet benchmark nets (see docs/results.md: "
                             "with a BCE VAE they reconstruct no better, and the actor does worse)")
    parser.add_argument("--latent-dim", type=int, default=16)
    parser.add_argument("--beta", type=float, default=None,
                        help="train pythae's BetaVAE with this KL weight instead of its VAE (beta < 1: sharper posteriors)")
    args = parser.parse_args()
    model = final_model(args.out / "model") or train(args.out / "model", args.epochs, args.nets, args.latent_dim,
                                                               args.beta)
    constrain(model, args.out / "run", "pythae")


if __name__ == "__main__":
    main()
