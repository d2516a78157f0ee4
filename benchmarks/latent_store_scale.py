"""A latent store too big to want in memory: 1,000,000 latents of size 256 written through lctk's latent store
API (lctk.latents.LatentWriter), then streamed through constraint training (lctk.engine.training.
StreamingLatentSource) against the same training from memory (LatentSource over LatentStore.load).

Each side runs in its own process, so each peak RSS is its own; repeats alternate the sides. Targets: the
streaming side's peak RSS < 1 GiB, its steps/s >= 90 % of the in-memory side's.

    python benchmarks/latent_store_scale.py                            # 1,000,000 x 256 (2 GiB on disk)
    python benchmarks/latent_store_scale.py --rows 50000 --steps 10 --classifier-steps 10 --repeats 1   # quick
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import Timer, console, median, peak_rss_mib, save, show  # noqa: I001  (first: lctk before torch)
import torch

from lctk.engine.config import ConstraintConfig
from lctk.engine.constraint import LatentConstraint
from lctk.engine.targets import Target
from lctk.engine.training import ConstraintTrainer, LatentSource, StreamingLatentSource
from lctk.latents import LatentStore, LatentWriter
from lctk.progress import Progress

ATTRIBUTES = ["a0", "a1", "a2", "a3"]


def write_store(args) -> dict:
    """Write ``rows x dim`` random latents block by block through LatentWriter."""
    gen = torch.Generator().manual_seed(0)
    block = 16384
    with Timer() as t:
        with LatentWriter(args.path, args.rows, args.dim, ATTRIBUTES, "bench") as writer:
            for lo in range(0, args.rows, block):
                n = min(block, args.rows - lo)
                mu = torch.randn(n, args.dim, generator=gen)
                sigma = 0.05 + 0.15 * torch.rand(n, args.dim, generator=gen)
                attrs = torch.rand(n, len(ATTRIBUTES), generator=gen) < 0.1
                split = (torch.rand(n, generator=gen) < 0.05).to(torch.int8)  # 5 % test rows
                writer.write(mu, sigma, attrs, split)
    return {"seconds": t.seconds, "rows_per_second": args.rows / t.seconds, "peak_rss_mib": peak_rss_mib(),
            "file_mib": Path(args.path).stat().st_size / 2**20}


def train(args, streamed: bool) -> dict:
    """Constraint training for ``--attr a0`` from the store, streamed or loaded into memory."""
    torch.manual_seed(0)
    config = ConstraintConfig(classifier_steps=args.classifier_steps, steps=args.steps, checkpoint_every=10**9)
    with LatentStore.open(args.path) as store, tempfile.TemporaryDirectory() as tmp:
        with Timer() as setup:
            if streamed:
                source = StreamingLatentSource(store, [0], seed=0, block_batch=config.batch_size)
            else:
                mu, sigma, attrs = store.load("train")
                source = LatentSource(mu, sigma, attrs[:, [0]])
            model = LatentConstraint("a0", [Target("a0", "attribute", True)], store.latent_dim, config,
                                     store.sigma_bar(), store.fingerprint)
        trainer = ConstraintTrainer(model, source, config, Path(tmp) / "checkpoint.safetensors",
                                    progress=Progress(enabled=False))
        with Timer() as t:
            trainer.train()
        if streamed:
            source.close()
    steps = args.classifier_steps + args.steps
    return {"setup_seconds": setup.seconds, "train_seconds": t.seconds, "steps_per_second": steps / t.seconds,
            "peak_rss_mib": peak_rss_mib()}


def child(args, what: str) -> dict:
    argv = [sys.executable, __file__, *sys.argv[1:], "--path", str(args.path), "--child", what]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--classifier-steps", type=int, default=50, help="attribute-critic steps per training")
    p.add_argument("--steps", type=int, default=100, help="actor steps (each after 3 realism-critic steps)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--path", help="the store's path (default: a temporary folder, deleted at the end)")
    p.add_argument("--keep", action="store_true", help="keep the store")
    p.add_argument("--name", default="latent_store_scale")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        result = write_store(args) if args.child == "write" else train(args, args.child == "stream")
        print(json.dumps(result))
        return
    tmp = None
    if not args.path:
        tmp = tempfile.TemporaryDirectory(prefix="lctk-store-")
        args.path = str(Path(tmp.name) / "latents.h5")
    try:
        written = child(args, "write")
        console.print(f"wrote {args.rows:,} x {args.dim} in {written['seconds']:.1f} s "
                      f"({written['file_mib']:.0f} MiB, peak RSS {written['peak_rss_mib']:.0f} MiB)", highlight=False)
        runs = {"memory": [], "stream": []}
        for r in range(args.repeats):
            for side in (("memory", "stream") if r % 2 == 0 else ("stream", "memory")):  # neither always goes first
                runs[side].append(child(args, side))
                console.print(f"repeat {r + 1}/{args.repeats} {side}: {runs[side][-1]['steps_per_second']:.2f} steps/s, "
                              f"peak RSS {runs[side][-1]['peak_rss_mib']:.0f} MiB", highlight=False)
    finally:
        if tmp and not args.keep:
            tmp.cleanup()
    summary = {side: {key: median([r[key] for r in rs]) for key in rs[0]} for side, rs in runs.items()}
    ratio = summary["stream"]["steps_per_second"] / summary["memory"]["steps_per_second"]
    per_repeat = [s["steps_per_second"] / m["steps_per_second"] for m, s in zip(runs["memory"], runs["stream"])]
    rows = [("write (LatentWriter)", written["seconds"], "-", "-", written["peak_rss_mib"])]
    for side in runs:
        s = summary[side]
        rows.append((f"train from {side}", s["setup_seconds"], s["train_seconds"], s["steps_per_second"], s["peak_rss_mib"]))
    show(f"{args.rows:,} latents x {args.dim}: {args.classifier_steps} classifier + {args.steps} actor steps "
         f"(median of {args.repeats} processes per side)",
         ["", "setup s", "train s", "steps/s", "peak RSS MiB"], rows)
    stream_rss = max(r["peak_rss_mib"] for r in runs["stream"])
    console.print(f"streamed/in-memory steps/s: {ratio:.3f} (per repeat {', '.join(f'{x:.3f}' for x in per_repeat)}); "
                  f"streaming peak RSS {stream_rss:.0f} MiB (target < 1024 MiB, >= 0.90)", highlight=False)
    save(args.name, {"write": written, "runs": runs, "summary": summary, "stream_over_memory_steps_per_second": ratio,
                     "per_repeat_ratio": per_repeat, "stream_peak_rss_mib_max": stream_rss,
                     "meets_rss_target": stream_rss < 1024, "meets_speed_target": ratio >= 0.9}, args)


if __name__ == "__main__":
    main()
