"""Achieved GFLOP/s of constraint training (attribute classifier, realism critic, actor steps) against this
machine's measured fp32 peak (a large torch matmul), same process, same threads.

FLOPs are counted with torch.utils.flop_counter's per-op formulas on one step of each kind (matmuls of forward,
backward and, for the critic, the gradient penalty's double backward); elementwise work is not counted, so the
percentage is a lower bound on how busy the cores are.

Each repeat runs in a fresh process per OpenMP wait policy (read by the OpenMP runtime when torch loads):
``default`` is torch's own (worker threads spin at barriers), ``PASSIVE`` what lctk sets since this benchmark
showed the spinning collapse on shared cores. Repeats alternate the policies, so both see the same machine load.

    python benchmarks/hardware_efficiency.py                 # the full run
    python benchmarks/hardware_efficiency.py --steps 5 --repeats 2 --quick-peak   # a quick look
"""

from __future__ import annotations

import os
import sys

if "--child" in sys.argv:  # before torch loads: the OpenMP runtime reads its settings once
    _policy = sys.argv[sys.argv.index("--child") + 1]
    if _policy == "default":
        os.environ.pop("OMP_WAIT_POLICY", None)
    else:
        os.environ["OMP_WAIT_POLICY"] = _policy
    import torch  # noqa: F401  (now, before lctk's own default can apply)

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from _common import Timer, console, median, save, show
from lctk.engine.config import ConstraintConfig
from lctk.engine.constraint import LatentConstraint
from lctk.engine.targets import Target
from lctk.engine.training import ConstraintTrainer, LatentSource
from lctk.loop import step_generator


class CountFlops(TorchDispatchMode):
    """FlopCounterMode's per-op formulas without its module tracker (which refuses autograd.grad with
    create_graph, as the gradient penalty needs)."""

    def __init__(self):
        super().__init__()
        self.registry = FlopCounterMode(display=False).flop_registry
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        count = self.registry.get(func._overloadpacket)
        if count is not None:
            self.total += count(*args, **kwargs, out_val=out)
        return out


def measure_peak(n: int, repeats: int) -> float:
    """Median GFLOP/s of an ``n x n`` fp32 matmul."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)  # warm up
    times = []
    for _ in range(repeats):
        with Timer() as t:
            torch.mm(a, b)
        times.append(t.seconds)
    return 2 * n**3 / median(times) / 1e9


def make_trainer(args, folder: Path) -> ConstraintTrainer:
    """A trainer for one attribute over synthetic latents shaped like Fashion-MNIST's (60,000 x 32)."""
    gen = torch.Generator().manual_seed(0)
    mu = torch.randn(args.examples, args.latent_dim, generator=gen)
    sigma = 0.1 + 0.05 * torch.rand(args.examples, args.latent_dim, generator=gen)
    labels = (torch.rand(args.examples, 1, generator=gen) < 0.1).float()
    config = ConstraintConfig(width=args.width, depth=args.depth, batch_size=args.batch_size)
    torch.manual_seed(0)
    model = LatentConstraint("bench", [Target("sandal", "attribute", True)], args.latent_dim, config,
                             sigma.mean(dim=0), "bench")
    return ConstraintTrainer(model, LatentSource(mu, sigma, labels), config, folder / "checkpoint.safetensors")


def measure(args) -> dict:
    """One process's figures: FLOPs per step of each kind, median seconds per step, the peak."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(args, Path(tmp))
        kinds = {"classifier": lambda s: trainer.classifier_step(step_generator(0, 1, s)),
                 "critic": lambda s: trainer.critic_step(step_generator(0, 3, s)),
                 "actor": lambda s: trainer.actor_step(step_generator(0, 4, s))}
        flops = {}
        for kind, fn in kinds.items():
            fn(0)  # warm up
            with CountFlops() as counter:
                fn(1)
            flops[kind] = counter.total
        peak_n = 1024 if args.quick_peak else args.peak_size
        seconds, peaks = {}, {}
        for kind, fn in kinds.items():  # each kind between two peak measurements: the machine's load drifts
            before = measure_peak(peak_n, 3)
            with Timer() as t:
                for s in range(args.steps):
                    fn(2 + s)
            seconds[kind] = t.seconds / args.steps
            peaks[kind] = (before + measure_peak(peak_n, 3)) / 2
        peak = max(peaks.values())
    return {"flops": flops, "seconds": seconds, "peaks": peaks, "peak": peak, "peak_n": peak_n}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--steps", type=int, default=30, help="steps of each kind per timing")
    p.add_argument("--repeats", type=int, default=5, help="processes per policy")
    p.add_argument("--policies", default="default,PASSIVE", help="OpenMP wait policies to compare")
    p.add_argument("--width", type=int, default=ConstraintConfig.width)
    p.add_argument("--depth", type=int, default=ConstraintConfig.depth)
    p.add_argument("--batch-size", type=int, default=ConstraintConfig.batch_size)
    p.add_argument("--latent-dim", type=int, default=32)
    p.add_argument("--examples", type=int, default=60000)
    p.add_argument("--peak-size", type=int, default=4096)
    p.add_argument("--quick-peak", action="store_true", help="a 1024 matmul for the peak (a quick look only)")
    p.add_argument("--name", default="hardware_efficiency")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(measure(args)))
        return
    policies = args.policies.split(",")
    runs: dict[str, list[dict]] = {pol: [] for pol in policies}
    for r in range(args.repeats):
        for pol in policies:
            argv = [a for a in sys.argv[1:]]
            out = subprocess.run([sys.executable, __file__, *argv, "--child", pol], check=True, capture_output=True,
                                 text=True).stdout
            runs[pol].append(json.loads(out.strip().splitlines()[-1]))
            console.print(f"repeat {r + 1}/{args.repeats} policy {pol}: critic "
                          f"{runs[pol][-1]['seconds']['critic'] * 1e3:.1f} ms/step", highlight=False)
    c = ConstraintConfig.critic_steps
    result: dict = {"policies": {}}
    for pol in policies:
        flops = dict(runs[pol][0]["flops"])
        flops["loop"] = c * flops["critic"] + flops["actor"]
        for run in runs[pol]:
            run["seconds"]["loop"] = c * run["seconds"]["critic"] + run["seconds"]["actor"]
            run["peaks"]["loop"] = (c * run["peaks"]["critic"] + run["peaks"]["actor"]) / (c + 1)
        peak = median([run["peak"] for run in runs[pol]])
        rows, entry = [], {"peak_gflops_median": round(peak, 2), "peak_matmul_size": runs[pol][0]["peak_n"], "kinds": {}}
        for kind in ("classifier", "critic", "actor", "loop"):
            step = median([run["seconds"][kind] for run in runs[pol]])
            gflops = flops[kind] / step / 1e9
            # each process's achieved rate over the peak measured around it, then the median over processes
            fractions = [flops[kind] / run["seconds"][kind] / 1e9 / run["peaks"][kind] for run in runs[pol]]
            fraction = median(fractions)
            entry["kinds"][kind] = {"gflop_per_step": round(flops[kind] / 1e9, 4), "ms_per_step": round(step * 1e3, 3),
                                    "gflops": round(gflops, 2), "fraction_of_peak": round(fraction, 4),
                                    "fraction_of_peak_all": [round(f, 4) for f in fractions],
                                    "ms_per_step_all": [round(run["seconds"][kind] * 1e3, 3) for run in runs[pol]]}
            label = f"{c} critic + 1 actor" if kind == "loop" else kind
            rows.append((label, flops[kind] / 1e9, step * 1e3, gflops, f"{fraction:.1%}",
                         " ".join(f"{f:.0%}" for f in fractions)))
        n = entry["peak_matmul_size"]
        rows.append((f"peak: {n}^2 fp32 matmul", 2 * n**3 / 1e9, 2 * n**3 / peak / 1e6, peak, "100%", ""))
        result["policies"][pol] = entry
        show(f"OMP_WAIT_POLICY {pol}: constraint training, {args.width}x{args.depth} MLPs, batch {args.batch_size}, "
             f"{args.threads} threads (median of {args.repeats} processes)",
             ["step", "GFLOP/step", "ms/step", "GFLOP/s", "of peak", "each process"], rows)
    if len(policies) > 1:
        base, new = policies[0], policies[-1]
        speed = {k: round(result["policies"][base]["kinds"][k]["ms_per_step"] /
                          result["policies"][new]["kinds"][k]["ms_per_step"], 2) for k in ("classifier", "critic", "actor", "loop")}
        result["speedup_" + new + "_over_" + base] = speed
        console.print(f"speed-up of {new} over {base}: {speed}", highlight=False)
    save(args.name, result, args)


if __name__ == "__main__":
    main()
