"""VAE training throughput: lctk's VAETrainer against pythae's BaseTrainer on the same model (the conv plugin's
ConvVAE encoder and decoder, wrapped as pythae BaseEncoder/BaseDecoder), the same Fashion-MNIST images, batch
size, Adam learning rate and thread count. Each side's whole ``train()`` call is timed (its data loading,
checkpoint or final-model saving included); repeats alternate the sides in one process. Target: >= 1.0x pythae.

The losses differ only in the Gaussian decoder's scale (lctk: sigma_x 0.1, pythae's ``mse``: 0.5 * squared
error), which costs the same arithmetic.

    python benchmarks/throughput_vs_pythae.py                          # 20,480 images x 2 epochs x 5 repeats
    python benchmarks/throughput_vs_pythae.py --examples 2048 --epochs 1 --repeats 1    # quick
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

from _common import Timer, console, median, save, show  # noqa: I001  (first: lctk before torch)
import numpy as np
import torch
from pythae.data.datasets import BaseDataset
from pythae.models import VAE, VAEConfig
from pythae.models.base.base_utils import ModelOutput
from pythae.models.nn import BaseDecoder, BaseEncoder
from pythae.trainers import BaseTrainer, BaseTrainerConfig

from lctk.interfaces import InMemoryDataset
from lctk.util.progress import Progress
from lctk.trainer import TrainSettings, VAETrainer
from lctk_conv.idx import read_idx
from lctk_conv.mnist_like import FASHION_MNIST_DIR, pixels_to_model
from lctk_conv.model import ConvVAE, ConvVAEConfig


class Encoder(BaseEncoder):
    """pythae's view of our encoder: mu and log variance."""

    def __init__(self, encoder):
        super().__init__()
        self.inner = encoder

    def forward(self, x):
        mu, sigma = self.inner(x)
        return ModelOutput(embedding=mu, log_covariance=2 * torch.log(sigma))


class Decoder(BaseDecoder):
    """pythae's view of our decoder: pixel means."""

    def __init__(self, decoder):
        super().__init__()
        self.inner = decoder

    def forward(self, z):
        return ModelOutput(reconstruction=self.inner(z))


def images(n: int) -> torch.Tensor:
    """The first ``n`` Fashion-MNIST training images, uint8 ``(n, 1, 28, 28)``."""
    path = next(p for p in sorted(Path(FASHION_MNIST_DIR).glob("train-images-idx3-ubyte*")))
    return torch.from_numpy(np.ascontiguousarray(read_idx(path)[:n])).unsqueeze(1)


def run_lctk(pixels: torch.Tensor, args, folder: Path) -> float:
    n = len(pixels)
    dataset = InMemoryDataset("fashion-mnist", "image", pixels, torch.zeros(n, 1, dtype=torch.bool), ["any"],
                              torch.zeros(n, dtype=torch.int8), {"input_shape": [1, 28, 28]}, to_model=pixels_to_model)
    torch.manual_seed(args.seed)
    model = ConvVAE(ConvVAEConfig())
    settings = TrainSettings(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed)
    trainer = VAETrainer(model, dataset, settings, folder / "checkpoint.safetensors", progress=Progress(enabled=False))
    with Timer() as t:
        trainer.train()
    return t.seconds


def run_pythae(pixels: torch.Tensor, args, folder: Path) -> float:
    data = pixels_to_model(pixels.clone())  # (N, 1, 28, 28) float in [0, 1]
    torch.manual_seed(args.seed)
    inner = ConvVAE(ConvVAEConfig())
    model = VAE(VAEConfig(input_dim=(1, 28, 28), latent_dim=inner.latent_dim, reconstruction_loss="mse"),
                encoder=Encoder(inner.encoder), decoder=Decoder(inner.decoder))
    config = BaseTrainerConfig(output_dir=str(folder), num_epochs=args.epochs, learning_rate=args.lr,
                               per_device_train_batch_size=args.batch_size, seed=args.seed, no_cuda=True)
    trainer = BaseTrainer(model=model, train_dataset=BaseDataset(data, torch.zeros(len(data))), training_config=config)
    with Timer() as t:
        trainer.train()
    return t.seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--examples", type=int, default=20480, help="a multiple of the batch size: both see every image")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=TrainSettings.batch_size)
    p.add_argument("--lr", type=float, default=TrainSettings.lr)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default="throughput_vs_pythae")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    logging.getLogger("pythae").setLevel(logging.WARNING)
    pixels = images(args.examples)
    n_seen = args.epochs * (len(pixels) // args.batch_size) * args.batch_size
    times = {"lctk": [], "pythae": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            order = ("lctk", "pythae") if r % 2 == 0 else ("pythae", "lctk")
            for side in order:
                folder = Path(tmp) / f"{side}-{r}"
                folder.mkdir()
                seconds = (run_lctk if side == "lctk" else run_pythae)(pixels, args, folder)
                times[side].append(seconds)
                console.print(f"repeat {r + 1}/{args.repeats} {side}: {n_seen / seconds:,.0f} examples/s", highlight=False)
    rate = {side: n_seen / median(ts) for side, ts in times.items()}
    per_repeat = [round(tp / tl, 3) for tl, tp in zip(times["lctk"], times["pythae"])]
    ratio = rate["lctk"] / rate["pythae"]
    show(f"VAE training, ConvVAE on {len(pixels):,} Fashion-MNIST images x {args.epochs} epochs, batch "
         f"{args.batch_size}, {args.threads} threads (median of {args.repeats})",
         ["trainer", "seconds (median)", "examples/s", "vs pythae"],
         [(side, median(times[side]), rate[side], f"{rate[side] / rate['pythae']:.2f}x") for side in times])
    console.print(f"lctk / pythae per repeat: {per_repeat} (target >= 1.0)", highlight=False)
    save(args.name, {"examples_per_run": n_seen, "seconds": times,
                     "examples_per_second": {k: round(v, 1) for k, v in rate.items()},
                     "lctk_over_pythae": round(ratio, 3), "per_repeat_ratio": per_repeat,
                     "meets_target": ratio >= 1.0}, args)


if __name__ == "__main__":
    main()
