"""``lctk plugins``: what is installed and what each plugin provides (imports no plugin's model code)."""

from __future__ import annotations

import json
import sys

import click

from lctk.hookspecs import KINDS


def plugin_rows() -> list[dict]:
    """One dict per plugin distribution: name, version, what it provides, and its error if it failed."""
    from lctk.plugins import get_registries

    reg = get_registries()
    rows = []
    for name, info in sorted(reg.plugins.items()):
        rows.append({"name": name, "version": info.version,
                     "provides": {k.key: sorted(info.provides[k.key]) for k in KINDS if info.provides.get(k.key)},
                     "error": info.error})
    return rows


def detail_rows() -> list[dict]:
    """One dict per registered name: kind, name, plugin, modality, help, the kind's details (a dataset's
    options and attribute names) and the plugins whose registration of the same name lost."""
    from lctk.plugins import get_registries

    reg = get_registries()
    rows = []
    for kind in KINDS:
        for name, entry in sorted(reg.tables[kind.key].items()):
            rows.append({"kind": kind.key, "name": name, "plugin": entry.plugin, "modality": entry.modality,
                         "help": entry.help, **{k: entry.details[k] for k in kind.details if k in entry.details},
                         "also_provided_by": entry.also})
    return rows


def _status(row: dict, shadowed: dict[str, list[str]]) -> str:
    if row["error"]:
        return f"[red]failed: {row['error']}[/red]"
    lost = shadowed.get(row["name"], [])
    return "ok" + (f"; [yellow]its {'; '.join(lost)}[/yellow]" if lost else "")


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines instead of a table.")
@click.option("--details", is_flag=True,
              help="One line per registered name: its help, dataset options and attribute names.")
def plugins_cmd(as_json, details):
    """List installed plugins: distribution, version and what each provides."""
    from rich.console import Console
    from rich.table import Table

    rows = detail_rows() if details else plugin_rows()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    out = Console(width=None if sys.stdout.isatty() else 160)  # results go to stdout
    if details:
        table = Table(title="lctk plugins: registered names")
        for col in ("kind", "name", "plugin", "help"):
            table.add_column(col, overflow="fold")
        for row in rows:
            text = row["help"] + "".join(f"\n{k}: {_detail(row[k])}" for k in ("options", "attributes") if row.get(k))
            if row["also_provided_by"]:
                text += f"\n[yellow]also registered by {', '.join(row['also_provided_by'])} (overridden)[/yellow]"
            table.add_row(row["kind"], row["name"] + (f" ({row['modality']})" if row["modality"] else ""),
                          row["plugin"], text)
        out.print(table)
        return
    shadowed: dict[str, list[str]] = {}
    for row in detail_rows():
        for loser in row["also_provided_by"]:
            shadowed.setdefault(loser, []).append(f"{row['kind'][:-1]} {row['name']!r} is overridden by {row['plugin']}")
    table = Table(title="lctk plugins")
    for col in ("distribution", "version", "provides", "status"):
        table.add_column(col, overflow="fold")
    for row in rows:
        provides = "\n".join(f"{kind}: {', '.join(names)}" for kind, names in row["provides"].items())
        table.add_row(row["name"], row["version"], provides, _status(row, shadowed))
    out.print(table)
    out.print("[dim]lctk plugins --details: help, dataset options and attribute names of each[/dim]")


def _detail(value) -> str:
    if isinstance(value, dict):
        return "".join(f"\n  --data-option {k}=...: {v}" for k, v in value.items())
    return str(value)


COMMANDS = [plugins_cmd]
