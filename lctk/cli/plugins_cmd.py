"""``lctk plugins``: what is installed and what each plugin provides."""

from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table

KINDS = ("backbones", "datasets", "writers", "evaluators", "labelers", "rules", "importers", "commands")


def plugin_rows() -> list[dict]:
    """One dict per plugin distribution: name, version, what it provides, and its error if it failed."""
    from lctk.plugins import get_registries

    reg = get_registries()
    rows = []
    for name, info in sorted(reg.plugins.items()):
        rows.append({"name": name, "version": info.version,
                     "provides": {k: sorted(info.provides[k]) for k in KINDS if info.provides.get(k)},
                     "error": info.error})
    return rows


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines instead of a table.")
def plugins_cmd(as_json):
    """List installed plugins: distribution, version and what each provides."""
    rows = plugin_rows()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="lctk plugins")
    for col in ("distribution", "version", "provides", "status"):
        table.add_column(col, overflow="fold")
    for row in rows:
        provides = "\n".join(f"{kind}: {', '.join(names)}" for kind, names in row["provides"].items())
        table.add_row(row["name"], row["version"], provides,
                      "ok" if not row["error"] else f"[red]failed: {row['error']}[/red]")
    Console().print(table)


COMMANDS = [plugins_cmd]
