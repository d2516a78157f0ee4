"""`lctk add-constraint` on a latent store too big to want in memory, through the CLI: 1,000,000 latents of size
256 (2 GiB of mu and sigma) written through lctk's latent store API into a real run folder, then the same
`lctk add-constraint RUN --attr 0 ...` command line with the default memory budget (1 GiB: the store is streamed)
against `--memory-budget` twice the store (loaded into memory). Stores below the default budget (quick runs) stream
with a budget of half their size.

Each command is its own process, so each peak RSS (``ru_maxrss`` from ``wait4``) is its own; the repeats alternate
the sides. Steps/s are the training loop's (``training`` in the constraint's metrics.json); wall seconds are the
whole command (imports, loading or the stream's one pass for the spread, training, metrics). Targets: streaming
peak RSS < 1 GiB, its steps/s >= 0.9x the in-memory side's.

    python benchmarks/latent_store_scale.py                            # 1,000,000 x 256 (2 GiB on disk)
    python benchmarks/latent_store_scale.py --rows 50000 --steps 10 --classifier-steps 10 --repeats 1   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import Timer, console, median, save, show  # noqa: I001  (first: lctk before torch)
import torch

ROOT = Path(__file__).resolve().parents[1]


def make_run(folder: Path) -> Path:
    """A real run folder with a 256-d conv backbone (one epoch on 64 of scikit-learn's digits), whose store is
    then replaced by the big one."""
    sys.path.insert(0, str(ROOT))
    from tests.conftest import make_digits_idx

    digits = make_digits_idx(folder / "digits")
    run = folder / "run"
    lctk(["train-vae", "--backbone", "conv", "--data", "idx", "--data-dir", digits, "--out", run, "--epochs", "1",
          "--max-examples", "64", "--latent-dim", "256", "--set", "width=8", "--set", "hidden=64"])
    return run


def write_store(run: Path, rows: int, dim: int) -> dict:
    """Write ``rows x dim`` random latents block by block through LatentWriter, with the run's fingerprint."""
    from lctk.latents import LatentWriter
    from lctk.run import RunDir, fingerprint

    run_dir = RunDir(run)
    info = run_dir.read()
    fp = fingerprint(run_dir.load_backbone())
    names = info["dataset"]["attribute_names"]
    gen = torch.Generator().manual_seed(0)
    block = 16384
    with Timer() as t:
        with LatentWriter(run_dir.latents_path, rows, dim, names, fp,
                          {"backbone": "conv", "dataset": "idx", "modality": "image"}) as writer:
            for lo in range(0, rows, block):
                n = min(block, rows - lo)
                mu = torch.randn(n, dim, generator=gen)
                sigma = 0.05 + 0.15 * torch.rand(n, dim, generator=gen)
                attrs = torch.rand(n, len(names), generator=gen) < 0.1
                split = (torch.rand(n, generator=gen) < 0.05).to(torch.int8)  # 5 % test rows
                writer.write(mu, sigma, attrs, split)
    return {"seconds": t.seconds, "rows_per_second": rows / t.seconds,
            "file_mib": run_dir.latents_path.stat().st_size / 2**20}


def lctk(args) -> tuple[float, float, str]:
    """Run ``python -m lctk ARGS``: (wall seconds, peak RSS MiB, stderr)."""
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("LCTK_MEMORY_BUDGET", None)
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "lctk", *map(str, args)], stdout=subprocess.DEVNULL,
                                stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"lctk {' '.join(map(str, args))} failed:\n{text[-3000:]}")
    return seconds, usage.ru_maxrss / 1024, text


def add_constraint(args, run: Path, side: str) -> dict:
    from lctk.engine.sources import DEFAULT_MEMORY_BUDGET

    store_bytes = args.rows * args.dim * 8
    if side == "memory":
        budget = ["--memory-budget", str(2 * store_bytes)]
    elif store_bytes > DEFAULT_MEMORY_BUDGET:
        budget = []  # the same command line as a user's: the default budget streams this store
    else:
        budget = ["--memory-budget", str(store_bytes // 2)]  # quick runs: a store below the default budget
    seconds, rss, err = lctk(["add-constraint", run, "--attr", "0", "--force", *budget, "--steps", args.steps,
                              "--set", f"classifier_steps={args.classifier_steps}", "--set", "checkpoint_every=1000000"])
    training = json.loads((run / "constraints" / "0" / "metrics.json").read_text())["training"]
    assert training["latents"] == side, (training, err[-2000:])
    return {"wall_seconds": seconds, "train_seconds": training["seconds"],
            "steps_per_second": training["steps"] / training["seconds"], "peak_rss_mib": rss}


def interleaved(args, run: Path) -> dict:
    """Both sources in one process, their adversarial steps (3 critic + 1 actor) alternating one by one: a
    per-step comparison that a shared machine's changing load cannot tilt. The in-memory side holds the first
    ``--memory-rows`` training rows (the whole store with 0); the streamed side reads the whole store."""
    import statistics

    from lctk.engine.config import ConstraintConfig
    from lctk.engine.constraint import LatentConstraint
    from lctk.engine.targets import Target
    from lctk.engine.training import ConstraintTrainer, LatentSource, StreamingLatentSource, step_generator
    from lctk.latents import LatentStore
    from lctk.util.progress import Progress

    config = ConstraintConfig(checkpoint_every=10**9)
    times: dict[str, list[float]] = {"memory": [], "stream": []}
    with LatentStore.open(run / "latents.h5") as store, tempfile.TemporaryDirectory() as tmp:
        mu, sigma, attrs = store.load("train", limit=args.memory_rows or None)
        sources = {"memory": LatentSource(mu, sigma, attrs[:, [0]]),
                   "stream": StreamingLatentSource(store, [0], seed=0, block_batch=config.batch_size)}
        trainers = {}
        for side, source in sources.items():
            torch.manual_seed(0)
            model = LatentConstraint("0", [Target(store.attribute_names[0], "attribute", True)], store.latent_dim,
                                     config, store.sigma_bar(), store.fingerprint)
            trainers[side] = ConstraintTrainer(model, source, config, Path(tmp) / f"{side}.safetensors",
                                               progress=Progress(enabled=False))
        for step in range(args.interleaved):
            for side in (("memory", "stream") if step % 2 == 0 else ("stream", "memory")):
                with Timer() as t:
                    for k in range(config.critic_steps):
                        trainers[side].critic_step(step_generator(0, 3, step * config.critic_steps + k))
                    trainers[side].actor_step(step_generator(0, 4, step))
                times[side].append(t.seconds)
        sources["stream"].close()
    medians = {side: statistics.median(v) for side, v in times.items()}
    ratio = medians["memory"] / medians["stream"]
    console.print(f"interleaved, {args.interleaved} steps a side: median s/step memory {medians['memory']:.3f}, "
                  f"stream {medians['stream']:.3f}; streamed/in-memory steps/s {ratio:.3f}", highlight=False)
    return {"seconds_per_step": times, "median_seconds_per_step": medians, "stream_over_memory_steps_per_second": ratio}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=256, help="latent size (the backbone is built with it)")
    p.add_argument("--classifier-steps", type=int, default=50, help="attribute-critic steps per training")
    p.add_argument("--steps", type=int, default=150, help="actor steps (each after 3 realism-critic steps)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--workdir", help="folder for the run (default: a temporary one, deleted at the end)")
    p.add_argument("--name", default="latent_store_scale")
    p.add_argument("--interleaved", type=int, default=0, help="instead: N adversarial steps a side, alternating in "
                   "one process, on the store in --workdir")
    p.add_argument("--memory-rows", type=int, default=0, help="with --interleaved: training rows the in-memory "
                   "side holds (0: all)")
    args = p.parse_args()
    if args.interleaved:
        run = Path(args.workdir) / "run"
        save(args.name + "_interleaved", interleaved(args, run), args)
        return
    tmp = None
    if not args.workdir:
        tmp = tempfile.TemporaryDirectory(prefix="lctk-store-")
        args.workdir = tmp.name
    try:
        run = Path(args.workdir) / "run"
        if not (run / "backbone.safetensors").is_file():
            run = make_run(Path(args.workdir))
        written = write_store(run, args.rows, args.dim)
        console.print(f"wrote {args.rows:,} x {args.dim} in {written['seconds']:.1f} s ({written['file_mib']:.0f} MiB)",
                      highlight=False)
        runs = {"memory": [], "stream": []}
        for r in range(args.repeats):
            for side in (("memory", "stream") if r % 2 == 0 else ("stream", "memory")):  # neither always goes first
                runs[side].append(add_constraint(args, run, side))
                got = runs[side][-1]
                console.print(f"repeat {r + 1}/{args.repeats} {side}: {got['steps_per_second']:.2f} steps/s, "
                              f"{got['wall_seconds']:.1f} s in all, peak RSS {got['peak_rss_mib']:.0f} MiB", highlight=False)
    finally:
        if tmp:
            tmp.cleanup()
    summary = {side: {key: median([r[key] for r in rs]) for key in rs[0]} for side, rs in runs.items()}
    ratio = summary["stream"]["steps_per_second"] / summary["memory"]["steps_per_second"]
    per_repeat = [s["steps_per_second"] / m["steps_per_second"] for m, s in zip(runs["memory"], runs["stream"])]
    rows = []
    for side, label in (("memory", "loaded (`--memory-budget` 2x the store)"), ("stream", "streamed")):
        s = summary[side]
        rows.append((label, s["wall_seconds"], s["train_seconds"], s["steps_per_second"], s["peak_rss_mib"]))
    show(f"lctk add-constraint on {args.rows:,} latents x {args.dim}: {args.classifier_steps} classifier + {args.steps} "
         f"actor steps (median of {args.repeats} processes per side)",
         ["", "wall s", "train s", "steps/s", "peak RSS MiB"], rows)
    stream_rss = max(r["peak_rss_mib"] for r in runs["stream"])
    console.print(f"streamed/in-memory steps/s: {ratio:.3f} (per repeat {', '.join(f'{x:.3f}' for x in per_repeat)}); "
                  f"streaming peak RSS {stream_rss:.0f} MiB (target < 1024 MiB, >= 0.90)", highlight=False)
    save(args.name, {"write": written, "runs": runs, "summary": summary, "stream_over_memory_steps_per_second": ratio,
                     "per_repeat_ratio": per_repeat, "stream_peak_rss_mib_max": stream_rss,
                     "meets_rss_target": stream_rss < 1024, "meets_speed_target": ratio >= 0.9}, args)


if __name__ == "__main__":
    main()
