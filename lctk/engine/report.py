"""`lctk evaluate`'s report: the measured sets as tables on stdout (so that ``> log`` keeps them)."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.table import Table

CAPTION = ("A row per target compares that target's samples with all real test examples, so its distances are larger "
           "than those of the pooled '(all attributes)' row, which compares samples of every target with them.")


def _cell(value: Any) -> str:
    """A table cell: floats to 4 significant digits."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _values(values) -> str:
    return " ".join(f"{v:.3g}" for v in values)


def print_report(metrics: dict[str, Any], console: Console | None = None) -> None:
    """Rich tables of the measured sets, conditional accuracy, rules and transforms (on stdout by default)."""
    console = console or Console(width=None if sys.stdout.isatty() else 160)
    console.print("evaluator: " + ", ".join(f"{k} {v}" for k, v in metrics["evaluator"].items()), highlight=False)
    if metrics["evaluator"].get("weak_judge"):
        console.print(f"WARNING: weak judge ({metrics['evaluator'].get('weak_judge_reason', 'see above')}); its "
                      "accuracy figures understate what the samples show", highlight=False)
    keys = [k for k in dict.fromkeys(k for r in metrics["sets"] for k in r) if k not in ("set", "method", "target", "n")]
    conditional = any(r["set"] == "conditional" for r in metrics["sets"])
    table = Table(title="samples measured independently", caption=CAPTION if conditional else None)
    for col in ("set", "method", "target", "n", *keys):
        table.add_column(col, justify="left" if col in ("set", "method", "target") else "right")
    for r in metrics["sets"]:
        table.add_row(*[_cell(r.get(c, "")) for c in ("set", "method", "target", "n", *keys)])
    console.print(table)
    for method, figures in metrics.get("conditional", {}).items():
        console.print(f"conditional ({method}): mean accuracy {figures['mean_accuracy']}, mean sigma-weighted shift "
                      f"{figures['mean_sigma_weighted_shift']}", highlight=False)
    for spec, figures in metrics.get("rules", {}).items():
        if "actor_satisfied" in figures:
            console.print(f"rule {spec}: prior {figures['prior_satisfied']:.1%} -> actor {figures['actor_satisfied']:.1%}"
                          f" -> actor with --check {figures['checked_satisfied']:.1%} "
                          f"({figures['checked_draws_per_sample']} draws per sample)", highlight=False)
        for method, f in figures.get("methods", {}).items():
            console.print(f"rule {spec}: prior {figures['prior_satisfied']:.1%} -> {method} {f['satisfied']:.1%}",
                          highlight=False)
    for name, methods in metrics.get("continuous", {}).items():
        for method, f in methods.items():
            if "spearman" in f:
                console.print(f"continuous {name} ({method}): Spearman {f['spearman']} between requested and realised "
                              f"values, mean absolute error {f['mae']}; asked {_values(f['grid'])}, got "
                              f"{_values(f['realised_mean'])}", highlight=False)
    edits = {"actor": metrics.get("transforms") or {}, **(metrics.get("method_transforms") or {})}
    for method, t in edits.items():
        if t.get("success_rate") is not None:
            console.print(f"transforms ({method}): success {t['success_rate']:.1%} of {t['n']}, mean sigma-weighted "
                          f"shift {t['mean_sigma_weighted_shift']}", highlight=False)
    for method, cost in (metrics.get("methods") or {}).items():
        trained = [v for v in cost["training_seconds"].values() if v is not None]
        per = cost["sample_seconds_per_1000"]
        console.print(f"method {method}: training {sum(trained):.1f} s over {len(trained)} constraint(s)"
                      + (f", sampling {per:.3g} s per 1,000 latents" if per is not None else ""), highlight=False)
