"""A small diffusers AutoencoderKL trained briefly on Fashion-MNIST with diffusers' own model class, saved with
save_pretrained, then constrained by lctk without retraining.

    python examples/diffusers_fashion_mnist.py runs/diffusers-fm [--epochs 2] [--max-examples 20000]

writes OUT/model/ (config.json + diffusion_pytorch_model.safetensors; lctk reads it and never changes it) and
OUT/run/ (the lctk run: import-backbone, encode, the 10 classes as one constraint, samples, evaluate).
Needs the lctk-diffusers plugin (pip install -e plugins/lctk-diffusers).

The autoencoder: 1 channel in and out, 28x28 images, three blocks (16, 32, 32 channels), 4 x 7 x 7 latents
(196 dimensions for lctk). Trained as a VAE (Gaussian pixels with sigma 0.2 on diffusers' [-1, 1] scale, i.e.
0.1 on [0, 1], plus the KL of latent_dist to N(0, I) with weight 1), so that N(0, I) is its prior.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import lctk  # noqa: F401  (before torch: lctk lets OpenMP threads sleep while they wait, as a shared CPU needs)
import torch

from imported_pipeline import constrain

CONFIG = dict(in_channels=1, out_channels=1, sample_size=28, latent_channels=4, layers_per_block=1,
              down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
              block_out_channels=(16, 32, 32), norm_num_groups=8, scaling_factor=1.0)
SIGMA = 0.2  # pixel sigma on [-1, 1]


def train(model_dir: Path, epochs: int, max_examples: int | None, batch_size: int = 128, lr: float = 1e-3) -> None:
    """Train an AutoencoderKL as a VAE and save it with save_pretrained (safetensors)."""
    from diffusers import AutoencoderKL

    from lctk.plugins import DataRequest, get_registries

    torch.manual_seed(0)
    data = get_registries().dataset("fashion-mnist").value(DataRequest(max_examples=max_examples))
    train_x = data.fetch(data.indices("train")) * 2 - 1  # (N, 1, 28, 28) in [-1, 1]
    ae = AutoencoderKL(**CONFIG)
    opt = torch.optim.Adam(ae.parameters(), lr=lr)
    for epoch in range(1, epochs + 1):
        start, totals = time.monotonic(), torch.zeros(2)
        order = torch.randperm(len(train_x))
        for i in range(0, len(order), batch_size):
            x = train_x[order[i:i + batch_size]]  # (B, 1, 28, 28)
            posterior = ae.encode(x).latent_dist  # mean, std: (B, 4, 7, 7)
            recon = ae.decode(posterior.sample()).sample  # (B, 1, 28, 28)
            nll = (recon - x).pow(2).flatten(1).sum(1) / (2 * SIGMA ** 2)  # (B,)
            kl = posterior.kl()  # (B,)
            loss = (nll + kl).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            totals += torch.stack([nll.sum(), kl.sum()]).detach()
        nll, kl = (totals / len(order)).tolist()
        print(f"epoch {epoch}: reconstruction {nll:.1f} kl {kl:.1f} ({time.monotonic() - start:.0f} s)", flush=True)
        save(ae, model_dir)  # after every epoch: stopping the example keeps the last finished epoch's model


def save(ae, model_dir: Path) -> None:
    """save_pretrained into a fresh folder, then swap it in for ``model_dir``."""
    fresh = model_dir.with_name(model_dir.name + ".saving")
    shutil.rmtree(fresh, ignore_errors=True)
    ae.save_pretrained(str(fresh), safe_serialization=True)
    shutil.rmtree(model_dir, ignore_errors=True)
    fresh.rename(model_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", nargs="?", default="runs/diffusers-fm", type=Path)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-examples", type=int, default=None, help="train on a random subset of this size")
    args = parser.parse_args()
    model = args.out / "model"
    if not (model / "diffusion_pytorch_model.safetensors").is_file():
        train(model, args.epochs, args.max_examples)
    constrain(model, args.out / "run", "diffusers-autoencoderkl")


if __name__ == "__main__":
    main()
