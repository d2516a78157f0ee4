"""Option parsing shared by the commands: ``key=value`` lists, the dataset options."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import click

from lctk.util.errors import LctkError


def parse_pairs(pairs: Iterable[str], flag: str) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``; a pair without ``=`` is a one-line error."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise LctkError(f"{flag} {pair!r} should look like key=value")
        key, value = pair.split("=", 1)
        out[key.strip().replace("-", "_")] = value.strip()
    return out


def dataset_options(command):
    """``--data``, ``--data-dir``, ``--data-option`` and ``--max-examples``, as `lctk train-vae` takes them."""
    for option in reversed([
        click.option("--data", help="Dataset (see `lctk plugins --details`), e.g. fashion-mnist."),
        click.option("--data-dir", type=click.Path(path_type=Path), help="Folder holding the dataset's files."),
        click.option("--data-option", multiple=True, metavar="KEY=VALUE",
                     help="Extra dataset setting (repeatable); a dataset's options: `lctk plugins --details`."),
        click.option("--max-examples", type=click.IntRange(min=1), help="Use at most N examples [all]."),
    ]):
        command = option(command)
    return command
