"""``lctk import-backbone``: a run folder from a model trained elsewhere (pythae, diffusers, ...)."""

from __future__ import annotations

from pathlib import Path

import click

from lctk.cli.options import dataset_options, parse_pairs
from lctk.util.progress import console


@click.command("import-backbone")
@click.argument("path", type=click.Path(path_type=Path))
@dataset_options
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Run folder to create.")
@click.option("--format", "fmt", metavar="NAME", help="Model format (see `lctk plugins`); detected from the files if not given.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for --max-examples and the pictures.")
def import_backbone_cmd(path, data, data_dir, data_option, max_examples, out, fmt, seed):
    """Make run folder OUT from the model at PATH, trained elsewhere, without training it.

    The model's files are read, never changed; the run records their path and hashes and refuses to go on if
    they change. Then `lctk encode OUT`, `add-constraint`, `sample`, `transform` and `evaluate` work as usual.
    """
    from lctk import api
    from lctk.util.errors import LctkError

    if not data:
        raise LctkError("import-backbone needs --data DATASET, the data the model was trained on (see `lctk plugins`)")
    run = api.import_backbone(path, out, data=data, fmt=fmt, data_dir=data_dir,
                          data_options=parse_pairs(data_option, "--data-option"), max_examples=max_examples, seed=seed)
    info = run.read()
    generator_only = not run.load_backbone().has_encoder
    step = f"lctk add-constraint {run.path} --attr NAME" if generator_only else f"lctk encode {run.path}"
    console.print(f"imported {info['source']['format']} model {info['source']['path']} "
                  f"(latent_dim {info['backbone_config'].get('latent_dim', '?')}"
                  f"{', generator-only' if generator_only else ''}) for {info['dataset']['name']}; "
                  f"run folder {run.path}; next: `{step}`", highlight=False, soft_wrap=True)


COMMANDS = [import_backbone_cmd]
