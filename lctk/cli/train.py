"""``lctk train-vae`` and ``lctk encode``."""

from __future__ import annotations

from pathlib import Path

import click

from lctk.cli.options import dataset_options, parse_pairs
from lctk.progress import console


@click.command("train-vae")
@click.option("--backbone", help="Backbone to train (see `lctk plugins`), e.g. conv.")
@dataset_options
@click.option("--out", type=click.Path(path_type=Path), help="Run folder to create [runs/BACKBONE-DATA].")
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs to train [10].")
@click.option("--batch-size", type=click.IntRange(min=1), help="Examples per step [128].")
@click.option("--latent-dim", type=click.IntRange(min=1), help="Latent dimensions.")
@click.option("--sigma-x", type=click.FloatRange(min=0, min_open=True), help="Decoder sigma for Gaussian outputs [0.1].")
@click.option("--beta", type=click.FloatRange(min=0), help="KL weight [1].")
@click.option("--set", "settings_", multiple=True, metavar="KEY=VALUE", help="Any other backbone config field (repeatable).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="Adam learning rate [1e-3].")
@click.option("--seed", type=int, help="Random seed [0].")
@click.option("--checkpoint-every", type=click.IntRange(min=0), help="Steps between checkpoints [0: every 60 s].")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
def train_vae_cmd(backbone, data, data_dir, data_option, out, epochs, batch_size, latent_dim, sigma_x, beta,
                  settings_, lr, max_examples, seed, checkpoint_every, device, resume):
    """Train a VAE backbone on a dataset into a run folder (checkpoints, pictures, run.json)."""
    from lctk.errors import LctkError
    from lctk.train_vae import train_vae

    if out is None:
        if resume or not backbone or not data:
            raise LctkError("--out RUN is required" + (" with --resume" if resume else " unless --backbone and --data are given"))
        out = Path("runs") / f"{backbone}-{data}"
    given = {key: value for key, value in (("epochs", epochs), ("batch_size", batch_size), ("lr", lr), ("seed", seed),
                                           ("checkpoint_every", checkpoint_every)) if value is not None}
    overrides = {"latent_dim": latent_dim, "sigma_x": sigma_x, "beta": beta, **parse_pairs(settings_, "--set")}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    run = train_vae(out, backbone=backbone, data=data, data_dir=data_dir, data_options=parse_pairs(data_option, "--data-option"),
                    max_examples=max_examples, settings=given, overrides=overrides, resume=resume, device=device)
    from lctk.distributed import env_rank

    if env_rank() != 0:  # under torchrun, rank 0 reports
        return
    info = run.read()
    if info.get("history"):
        last = info["history"][-1]
        console.print(f"trained {info['backbone']} on {info['dataset']['name']}: epoch {last['epoch']} loss {last['loss']:.2f} "
                      f"reconstruction {last['reconstruction']:.2f} kl {last['kl']:.2f} "
                      f"({last['seconds']:.1f} s/epoch); run folder {run.path}", highlight=False, soft_wrap=True)


@click.command("encode")
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--batch-size", type=click.IntRange(min=1), default=1024, show_default=True)
@click.option("--force", is_flag=True, help="Re-encode even if up-to-date latents exist.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--prefetch", type=click.IntRange(min=0), default=2, show_default=True,
              help="Batches read ahead while the encoder runs (0: none).")
def encode_cmd(run, batch_size, force, device, prefetch):
    """Encode every example of RUN's dataset into RUN/latents.h5 (mu, sigma, attributes, split).

    Runs under torchrun too: each process encodes its share (docs/distributed.md)."""
    from lctk.distributed import env_rank
    from lctk.encode import encode_run
    from lctk.latents import LatentStore
    from lctk.run import RunDir

    path = encode_run(RunDir(run), batch_size=batch_size, force=force, device=device, prefetch=prefetch)
    if env_rank() != 0:  # under torchrun, rank 0 reports
        return
    with LatentStore.open(path) as store:
        console.print(f"latents: {store.rows} x {store.latent_dim} with {len(store.attribute_names)} attributes "
                      f"(fingerprint {store.fingerprint}) in {path}", highlight=False)


COMMANDS = [train_vae_cmd, encode_cmd]
