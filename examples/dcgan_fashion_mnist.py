"""A GAN trained elsewhere, constrained by lctk without retraining it: a small DCGAN on Fashion-MNIST.

    python examples/dcgan_fashion_mnist.py runs/dcgan-fm

1. trains a DCGAN (generator + discriminator, the usual recipe) on the 60,000 training images, as any GAN
   user would, and saves the generator in the dcgan format: ``OUT/dcgan/config.json`` + ``model.safetensors``
   (interrupted, it resumes from ``OUT/gan-checkpoint.safetensors``);
2. ``lctk import-backbone OUT/dcgan --data fashion-mnist --out OUT/run --format dcgan``;
3. ``lctk add-constraint OUT/run --all-attributes --name classes`` (smaller critics and fewer steps than the
   defaults, to stay cheap on a CPU): the 10 classes, learned from prior samples labelled by the image labeler
   (a classifier of its own, apart from the evaluator's);
4. sample grids (one row per class; actor and optimize; the GAN's own prior samples) and ``lctk evaluate``.

The generator's files are never changed (their SHA-256 is checked at the end).
"""

from __future__ import annotations

import argparse
import hashlib
import shlex
import subprocess
import sys
from pathlib import Path

import lctk  # noqa: F401  (before torch: lctk lets OpenMP threads sleep while they wait, as a shared CPU needs)
import torch
import torch.nn.functional as F
from torch import nn

from lctk.util.checkpoint import load_checkpoint, save_checkpoint
from lctk.util.progress import Progress
from lctk.run import load_dataset
from lctk_conv.dcgan import DCGANConfig, DCGANGenerator, save_dcgan


#: Constraint training settings of the example (the defaults are 512 x 4 critics, 1,500 + 1,500 steps).
CONSTRAINT_SETTINGS = ("--set", "width=256", "--set", "depth=3", "--steps", 500, "--set", "classifier_steps=500")


class Discriminator(nn.Module):
    """DCGAN discriminator for 28 x 28 images in [-1, 1]: two stride-2 convolutions, then one logit."""

    def __init__(self, channels: int = 1, width: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),  # (B, w, 14, 14)
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * width),
            nn.LeakyReLU(0.2),  # (B, 2w, 7, 7)
            nn.Flatten(), nn.Linear(2 * width * 7 * 7, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)  # (B,) logits


def train_gan(out: Path, epochs: int, seed: int, width: int, batch_size: int = 128) -> DCGANGenerator:
    """Train a DCGAN on Fashion-MNIST's training images; resumable per epoch."""
    dataset = load_dataset({"name": "fashion-mnist", "seed": seed})
    train = dataset.indices("train")
    torch.manual_seed(seed)
    gen, disc = DCGANGenerator(DCGANConfig(latent_dim=64, width=width)), Discriminator(width=width)
    opt_g = torch.optim.Adam(gen.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=2e-4, betas=(0.5, 0.999))
    checkpoint = out / "gan-checkpoint.safetensors"
    modules, optimizers = {"generator": gen, "discriminator": disc}, {"g": opt_g, "d": opt_d}
    start = int(load_checkpoint(checkpoint, modules=modules, optimizers=optimizers)["epoch"]) if checkpoint.is_file() else 0
    steps = len(train) // batch_size
    with Progress().task("train DCGAN", total=epochs * steps, completed=start * steps) as bar:
        for epoch in range(start, epochs):
            g = torch.Generator().manual_seed(seed * 1000 + epoch)
            perm = train[torch.randperm(len(train), generator=g)]
            gen.train(), disc.train()
            for i in range(steps):
                real = dataset.fetch(perm[i * batch_size:(i + 1) * batch_size]) * 2 - 1  # (B, 1, 28, 28) in [-1, 1]
                z = torch.randn(len(real), gen.latent_dim, generator=g)
                fake = gen(z)
                d_loss = F.binary_cross_entropy_with_logits(disc(real), torch.full((len(real),), 0.9)) + \
                    F.binary_cross_entropy_with_logits(disc(fake.detach()), torch.zeros(len(real)))
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
                g_loss = F.binary_cross_entropy_with_logits(disc(fake), torch.ones(len(real)))
                opt_g.zero_grad(set_to_none=True)
                g_loss.backward()
                opt_g.step()
                bar.advance(1, info=f"epoch {epoch + 1} D {d_loss.item():.3f} G {g_loss.item():.3f}")
            save_checkpoint(checkpoint, modules=modules, optimizers=optimizers, meta={"epoch": epoch + 1})
    return gen.eval()


def sha256(folder: Path) -> dict[str, str]:
    """SHA-256 of every file in ``folder``."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def lctk(*args: object) -> None:
    """Run one lctk command, echoing it; stop the example if it fails."""
    command = [sys.executable, "-m", "lctk", *map(str, args)]
    print("$ lctk " + " ".join(shlex.quote(str(a)) for a in args), flush=True)
    subprocess.run(command, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="folder for the GAN, its checkpoints and the lctk run")
    parser.add_argument("--epochs", type=int, default=10, help="GAN training epochs [10]")
    parser.add_argument("--width", type=int, default=64, help="channels of the GAN's last conv stage [64]")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    source, run = out / "dcgan", out / "run"
    if not (source / "model.safetensors").is_file():
        save_dcgan(train_gan(out, args.epochs, args.seed, args.width), source)
    before = sha256(source)
    if not (run / "run.json").is_file():
        lctk("import-backbone", source, "--data", "fashion-mnist", "--out", run, "--format", "dcgan")
    if not (run / "constraints" / "classes").is_dir():
        lctk("add-constraint", run, "--all-attributes", "--name", "classes", *CONSTRAINT_SETTINGS)
    samples = run / "samples"
    lctk("sample", run, "--each", "-n", 10, "--out", samples / "classes-actor.png")
    lctk("sample", run, "--each", "-n", 10, "--method", "optimize", "--out", samples / "classes-optimize.png")
    lctk("sample", run, "--prior", "-n", 64, "--out", samples / "prior.png")
    lctk("evaluate", run, "-n", 1000)
    if sha256(source) != before:
        sys.exit(f"error: the generator's files in {source} changed during the pipeline")
    print(f"the generator's files in {source} are byte-identical after the pipeline")


if __name__ == "__main__":
    main()
