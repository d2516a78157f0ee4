"""Small helpers shared by the benchmarks: the machine's description, medians, a rich table, JSON results."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import lctk  # noqa: F401  (before torch: lctk sets the OpenMP wait policy its users get)
import torch
from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).resolve().parent / "results"
console = Console()


def machine() -> dict[str, Any]:
    """CPU model, logical CPUs, torch threads and versions: recorded with every result."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "logical_cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, MiB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Timer:
    """``with Timer() as t: ...`` then ``t.seconds``."""

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        return False


def show(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a rich table."""
    table = Table(title=title)
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*[f"{v:,.4g}" if isinstance(v, float) else str(v) for v in row])
    console.print(table)


def save(name: str, result: dict[str, Any], args=None) -> Path:
    """Write ``benchmarks/results/NAME.json`` with the machine, the command line and the arguments."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    record = {"benchmark": name, "command": "python " + " ".join(sys.argv), "args": vars(args) if args else {},
              "machine": machine(), **result}
    path.write_text(json.dumps(record, indent=2) + "\n")
    console.print(f"results written to {path}", highlight=False)
    return path
