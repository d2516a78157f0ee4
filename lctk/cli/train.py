"""``lctk train-vae`` and ``lctk encode``, through `lctk.api`.

A backbone's own config fields are options too: ``--sigma-x 0.05`` sets the conv backbone's ``sigma_x``
(``--set sigma_x=0.05`` is the same); ``lctk train-vae --backbone conv --help`` lists them with defaults."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import click

from lctk.cli.options import dataset_options, parse_pairs
from lctk.util.errors import LctkError
from lctk.util.progress import console


class BackboneOptions(click.Command):
    """train-vae: unknown ``--name value`` options are fields of the chosen backbone's config, and ``--help``
    after ``--backbone NAME`` lists them."""

    def format_epilog(self, ctx, formatter):
        super().format_epilog(ctx, formatter)
        from lctk.plugins import get_registries

        reg = get_registries()
        name = ctx.params.get("backbone")
        if name:
            try:
                cls = reg.backbone(name)
            except LctkError as e:
                formatter.write_paragraph()
                formatter.write_text(str(e))
                return
            with formatter.section(f"Options of backbone {name} (its config fields; also --set KEY=VALUE)"):
                formatter.write_dl(backbone_fields(cls))
            return
        with formatter.section("Backbones (`lctk train-vae --backbone NAME --help` lists a backbone's options)"):
            formatter.write_dl([(n, e.help) for n, e in sorted(reg.backbones.items())] or [("", "none installed")])
        with formatter.section("Datasets (options and attribute names: `lctk plugins --details`)"):
            formatter.write_dl([(n, e.help) for n, e in sorted(reg.datasets.items())] or [("", "none installed")])


def backbone_fields(cls) -> list[tuple[str, str]]:
    """``(--option TYPE, "default ...")`` for each config field of backbone class ``cls``."""
    config = cls.config_class
    hints = typing.get_type_hints(config)
    rows = []
    for field in dataclasses.fields(config):
        hint = hints.get(field.name)
        kind = getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
        default = field.default if field.default is not dataclasses.MISSING else "required"
        rows.append((f"--{field.name.replace('_', '-')} {kind.upper()}", f"[default: {default}]"))
    doc = " ".join((config.__doc__ or "").split())
    return rows + ([("", doc)] if doc and not doc.startswith(config.__name__ + "(") else [])


def extra_fields(args: list[str]) -> dict[str, str]:
    """``["--sigma-x", "0.05", "--width=16"]`` -> ``{"sigma_x": "0.05", "width": "16"}``."""
    out, i = {}, 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or len(arg) == 2:
            raise LctkError(f"unexpected argument {arg!r}; see `lctk train-vae --help`")
        key, eq, value = arg[2:].partition("=")
        if not eq:
            if i + 1 >= len(args) or args[i + 1].startswith("--"):
                raise LctkError(f"option --{key} needs a value (a backbone config field: see "
                                "`lctk train-vae --backbone NAME --help`)")
            value, i = args[i + 1], i + 1
        out[key.replace("-", "_")] = value
        i += 1
    return out


def check_fields(backbone: str | None, run: Path, resume: bool, fields: dict[str, object]) -> None:
    """Refuse an option that is neither a train-vae option nor a field of the backbone's config."""
    if not fields:
        return
    from lctk.plugins import get_registries
    from lctk.run import RunDir

    name = RunDir(run).record.backbone if resume and not backbone else backbone
    if not name:
        return
    known = {f.name for f in dataclasses.fields(get_registries().backbone(name).config_class)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise LctkError(f"no such option --{unknown[0].replace('_', '-')}: not a train-vae option nor a config field "
                        f"of backbone {name} (see `lctk train-vae --backbone {name} --help`)")


@click.command("train-vae", cls=BackboneOptions,
               context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--backbone", is_eager=True, help="Backbone to train (see below), e.g. conv; with --help, lists its options.")
@dataset_options
@click.option("--out", type=click.Path(path_type=Path), help="Run folder to create [runs/BACKBONE-DATA].")
@click.option("--epochs", type=click.IntRange(min=1), help="Epochs to train [10].")
@click.option("--batch-size", type=click.IntRange(min=1), help="Examples per step [128, or the backbone's].")
@click.option("--latent-dim", type=click.IntRange(min=1), help="Latent dimensions [the backbone's: 32 conv, 64 lstm].")
@click.option("--beta", type=click.FloatRange(min=0), help="KL weight [the backbone's, 1 for conv].")
@click.option("--set", "settings_", multiple=True, metavar="KEY=VALUE", help="Any backbone config field (repeatable).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="Adam learning rate [1e-3].")
@click.option("--seed", type=int, help="Random seed [0].")
@click.option("--checkpoint-every", type=click.IntRange(min=0),
              help="Steps between checkpoints [0: every 60 s; also at the end and when stopped].")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint (more --epochs extend it).")
@click.pass_context
def train_vae_cmd(ctx, backbone, data, data_dir, data_option, out, epochs, batch_size, latent_dim, beta,
                  settings_, lr, max_examples, seed, checkpoint_every, device, resume):
    """Train a VAE backbone on a dataset into a run folder (checkpoints, pictures, run.json).

    Options of the chosen backbone (e.g. --sigma-x for conv) are accepted too."""
    from lctk import api

    given = {key: value for key, value in (("epochs", epochs), ("batch_size", batch_size), ("lr", lr), ("seed", seed),
                                           ("checkpoint_every", checkpoint_every)) if value is not None}
    fields = extra_fields(ctx.args)
    if out is not None:
        check_fields(backbone, out, resume, fields)
    elif backbone:
        check_fields(backbone, Path("."), False, fields)
    overrides = {"latent_dim": latent_dim, "beta": beta, **fields, **parse_pairs(settings_, "--set")}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    run = api.train_vae(out, backbone=backbone, data=data, data_dir=data_dir,
                        data_options=parse_pairs(data_option, "--data-option"), max_examples=max_examples,
                        overrides=overrides, resume=resume, device=device, **given)
    from lctk.util.distributed import env_rank

    if env_rank() != 0:  # under torchrun, rank 0 reports
        return
    record = run.record
    if record.history:
        last = record.history[-1]
        console.print(f"trained {record.backbone} on {record.dataset.name}: epoch {last['epoch']} loss {last['loss']:.2f} "
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
    from lctk import api
    from lctk.util.distributed import env_rank
    from lctk.latents import LatentStore

    path = api.encode(run, batch_size=batch_size, force=force, device=device, prefetch=prefetch)
    if env_rank() != 0:  # under torchrun, rank 0 reports
        return
    with LatentStore.open(path) as store:
        console.print(f"latents: {store.rows} x {store.latent_dim} with {len(store.attribute_names)} attributes "
                      f"(fingerprint {store.fingerprint}) in {path}", highlight=False)


COMMANDS = [train_vae_cmd, encode_cmd]
