"""Data-path speeds: images encoded per second by the `lctk encode` path (lctk.encode.encode_run on a trained
Fashion-MNIST conv run), and the Essen melody corpus's first parse (parallel workers, into a fresh cache folder
named by LCTK_CACHE) against its cached load. Each Essen figure comes from a fresh process: the cached load is
what a new `lctk` command pays (its seconds of importing Python packages are shown apart). Target: cached Essen
load < 2 s.

    python benchmarks/encode_and_load.py --run runs/fashion-mnist          # a trained run (copied)
    python benchmarks/encode_and_load.py --run runs/fashion-mnist --max-tunes 200 --repeats 1   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

T0 = time.perf_counter()
from _common import Timer, console, median, save, show  # noqa: E402,I001  (first: lctk before torch)
import torch  # noqa: E402

IMPORT_SECONDS = time.perf_counter() - T0


def essen_child(args) -> dict:
    """Load Essen once in this process (LCTK_CACHE set by the parent): parse on a miss, else read the cache."""
    from lctk.run import load_dataset

    options = {"workers": str(args.workers)}
    if args.max_tunes:
        options["max_tunes"] = str(args.max_tunes)
    with Timer() as t:
        dataset = load_dataset({"name": "essen", "data_dir": None, "options": options, "seed": 0})
    return {"seconds": t.seconds, "import_seconds": IMPORT_SECONDS, "windows": len(dataset)}


def essen(args, cache: Path) -> dict:
    argv = [sys.executable, __file__, *sys.argv[1:], "--child", "essen"]
    env = {**os.environ, "LCTK_CACHE": str(cache)}
    out = subprocess.run(argv, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def encode(args, work: Path) -> list[float]:
    """Seconds of encoding every example of the run, each repeat into a fresh latents.h5."""
    from lctk import api

    run = work / "run"
    run.mkdir()
    for name in ("run.json", "backbone.safetensors"):
        shutil.copy2(Path(args.run) / name, run / name)
    times = []
    for _ in range(args.repeats):
        with Timer() as t:
            api.encode(run, batch_size=args.batch_size, force=True)
        times.append(t.seconds)
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="a trained image run (Fashion-MNIST conv), copied, never written")
    p.add_argument("--batch-size", type=int, default=1024, help="lctk encode's default")
    p.add_argument("--repeats", type=int, default=3, help="encodes, and cached Essen loads")
    p.add_argument("--workers", type=int, default=2, help="Essen parsing processes (the dataset's default)")
    p.add_argument("--max-tunes", type=int, default=None, help="parse only this many tunes (quick mode)")
    p.add_argument("--skip-encode", action="store_true")
    p.add_argument("--name", default="encode_and_load")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(essen_child(args)))
        return
    torch.manual_seed(0)
    result, rows = {}, []
    with tempfile.TemporaryDirectory(prefix="lctk-bench-") as tmp:
        work = Path(tmp)
        if not args.skip_encode:
            from lctk.run import RunDir

            examples = len(RunDir(args.run).load_dataset())
            times = encode(args, work)
            rate = examples / median(times)
            result["encode"] = {"examples": examples, "seconds": times, "examples_per_second": round(rate, 1)}
            rows.append((f"lctk encode: {examples:,} images", median(times), f"{rate:,.0f} images/s", "-"))
        first = essen(args, work / "cache")
        cached = [essen(args, work / "cache") for _ in range(args.repeats)]
        load = median([c["seconds"] for c in cached])
        imports = median([c["import_seconds"] for c in cached])
        result["essen"] = {"first_parse": first, "cached_loads": cached, "cached_load_seconds": round(load, 3),
                           "workers": args.workers, "meets_target": load < 2.0}
        rows.append((f"Essen first parse ({args.workers} workers)", first["seconds"], f"{first['windows']:,} windows",
                     f"{first['import_seconds']:.1f}"))
        rows.append(("Essen cached load", load, f"{load:.2f} s (target < 2 s)", f"{imports:.1f}"))
    show(f"encode and load (median of {args.repeats})", ["", "seconds", "figure", "import s (apart)"], rows)
    save(args.name, result, args)


if __name__ == "__main__":
    main()
