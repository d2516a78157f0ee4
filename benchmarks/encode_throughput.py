"""Encoding throughput of `lctk encode` on a trained Fashion-MNIST conv run: images/s with batches read ahead on a
background thread (``--prefetch 2``, the default) against none (``--prefetch 0``), each side a fresh process per
repeat, alternating; then the whole command in one process against two under torchrun (one thread each, gloo),
with a check that both stores hold bit-identical datasets; and the encoder's FLOPs per image (for the cost
estimates in docs/distributed.md).

    python benchmarks/encode_throughput.py --run runs/fashion-mnist            # a trained run (copied)
    python benchmarks/encode_throughput.py --run runs/fashion-mnist --repeats 1 --skip-torchrun   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import Timer, console, median, save, show  # noqa: I001  (first: lctk before torch)
import h5py
import numpy as np
import torch

DATASETS = ("mu", "sigma", "attributes", "split", "sigma_sum")


def child(args) -> dict:
    """One encode in this process: the run and dataset loads timed apart from the encoding loop."""
    from lctk.encode import _encode_all, _prepare  # the two halves of encode_run, to time them apart
    from lctk.util.progress import Progress
    from lctk.run import RunDir

    with Timer() as prep:
        job = _prepare(RunDir(args.child_run), args.batch_size, True, Progress(enabled=False), torch.device("cpu"),
                       args.child_prefetch)
    with Timer() as loop:
        _encode_all(job)
    with Timer() as reading:  # what the read-ahead can hide at most: reading and converting every batch alone
        for lo in range(0, job.rows, args.batch_size):
            job.dataset.fetch(torch.arange(lo, min(job.rows, lo + args.batch_size)))
    return {"prepare_seconds": prep.seconds, "encode_seconds": loop.seconds, "images": job.rows,
            "images_per_second": job.rows / loop.seconds, "fetch_seconds": reading.seconds}


def run_child(args, run: Path, prefetch: int) -> dict:
    argv = [sys.executable, __file__, "--run", args.run, "--batch-size", str(args.batch_size),
            "--child-run", str(run), "--child-prefetch", str(prefetch)]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def command(argv: list[str], env: dict | None = None) -> float:
    """Wall seconds of a whole command."""
    with Timer() as t:
        subprocess.run(argv, check=True, capture_output=True, text=True, env={**os.environ, **(env or {})})
    return t.seconds


def same_datasets(a: Path, b: Path) -> dict[str, bool]:
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        return {key: bool(np.array_equal(fa[key][...], fb[key][...])) for key in DATASETS}


def flops_per_image(run: Path) -> float:
    """FLOPs of the encoder's forward pass per image (torch.utils.flop_counter's per-op formulas)."""
    from torch.utils.flop_counter import FlopCounterMode

    from lctk.run import RunDir

    run_dir = RunDir(run)
    backbone = run_dir.load_backbone()
    x = run_dir.load_dataset().fetch(torch.arange(64))  # (64, 1, 28, 28)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        backbone.encode(x)
    return counter.get_total_flops() / len(x)


def train_flops_per_image(run: Path) -> float:
    """FLOPs of one VAE training step (forward and backward of encoder and decoder) per image."""
    from torch.utils.flop_counter import FlopCounterMode

    from lctk.run import RunDir

    run_dir = RunDir(run)
    backbone = run_dir.load_backbone()
    for weight in backbone.parameters():
        weight.requires_grad_(True)
    backbone.train()
    x = run_dir.load_dataset().fetch(torch.arange(64))  # (64, 1, 28, 28)
    with FlopCounterMode(display=False) as counter:
        backbone.elbo_terms(x, generator=torch.Generator().manual_seed(0))["loss"].backward()
    return counter.get_total_flops() / len(x)


def autoencoder_kl_flops_per_image(size: int = 256) -> float | None:
    """FLOPs of the encoder of a Stable-Diffusion-style ``AutoencoderKL`` (84 M weights, 4 x size/8 x size/8
    latents) per ``size`` x ``size`` RGB image, counted on the meta device (no weights, no arithmetic); None
    without diffusers."""
    try:
        from diffusers import AutoencoderKL
    except ImportError:
        return None
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
                            up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[128, 256, 512, 512],
                            layers_per_block=2, latent_channels=4, sample_size=size)
    with FlopCounterMode(display=False) as counter:
        vae.encode(torch.empty(1, 3, size, size, device="meta"))
    return float(counter.get_total_flops())


def flops_report(run: Path) -> dict:
    report = {"conv_encoder_flops_per_image": flops_per_image(run),
              "conv_vae_train_step_flops_per_image": train_flops_per_image(run),
              "autoencoder_kl_256_encoder_flops_per_image": autoencoder_kl_flops_per_image()}
    for key, value in report.items():
        console.print(f"{key}: {value / 1e6:,.2f} MFLOP" if value else f"{key}: not available", highlight=False)
    return report


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="a trained Fashion-MNIST conv run, copied, never written")
    p.add_argument("--batch-size", type=int, default=1024, help="lctk encode's default")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip-torchrun", action="store_true")
    p.add_argument("--flops-only", action="store_true", help="only count FLOPs per image (encode, train, AutoencoderKL)")
    p.add_argument("--name", default="encode_throughput")
    p.add_argument("--child-run", help=argparse.SUPPRESS)
    p.add_argument("--child-prefetch", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child_run:
        print(json.dumps(child(args)))
        return
    if args.flops_only:
        save(args.name + "_flops", flops_report(Path(args.run)), args)
        return
    with tempfile.TemporaryDirectory(prefix="lctk-encode-") as tmp:
        run = Path(tmp) / "run"
        run.mkdir()
        for name in ("run.json", "backbone.safetensors"):
            shutil.copy2(Path(args.run) / name, run / name)
        runs: dict[int, list[dict]] = {0: [], 2: []}
        for r in range(args.repeats):
            for prefetch in ((0, 2) if r % 2 == 0 else (2, 0)):  # neither side always goes first
                runs[prefetch].append(run_child(args, run, prefetch))
                console.print(f"repeat {r + 1}/{args.repeats} prefetch {prefetch}: "
                              f"{runs[prefetch][-1]['images_per_second']:,.0f} images/s", highlight=False)
        summary = {k: {key: median([x[key] for x in v]) for key in v[0]} for k, v in runs.items()}
        speedup = summary[2]["images_per_second"] / summary[0]["images_per_second"]
        per_repeat = [b["images_per_second"] / a["images_per_second"] for a, b in zip(runs[0], runs[2])]
        result = {"runs": {str(k): v for k, v in runs.items()}, "summary": {str(k): v for k, v in summary.items()},
                  "prefetch_speedup": speedup, "per_repeat_speedup": per_repeat,
                  "encoder_flops_per_image": flops_per_image(run)}
        rows = [(f"--prefetch {k}", s["images"], s["encode_seconds"], s["images_per_second"], s["prepare_seconds"])
                for k, s in summary.items()]
        if not args.skip_torchrun:
            threads = {"OMP_NUM_THREADS": "1"}
            one = command([sys.executable, "-m", "lctk", "encode", str(run), "--force", "--batch-size",
                           str(args.batch_size)])
            shutil.copy2(run / "latents.h5", Path(tmp) / "one.h5")
            two = command([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "lctk", "encode", str(run), "--force", "--batch-size", str(args.batch_size)],
                          {**threads, "GLOO_SOCKET_IFNAME": "lo"})
            same = same_datasets(Path(tmp) / "one.h5", run / "latents.h5")
            result.update(one_process_command_seconds=one, torchrun_2_command_seconds=two, bit_identical=same)
            images = summary[2]["images"]
            rows += [("`lctk encode` (1 process, 2 threads, whole command)", images, one, images / one, "-"),
                     ("torchrun, 2 processes x 1 thread (whole command)", images, two, images / two, "-")]
            console.print(f"datasets bit-identical between 1 and 2 processes: {same}", highlight=False)
    show(f"encode {summary[2]['images']:,} images, batch {args.batch_size} (median of {args.repeats} processes per side)",
         ["", "images", "seconds", "images/s", "load s"], rows)
    console.print(f"prefetch 2 / prefetch 0: {speedup:.3f} (per repeat {', '.join(f'{x:.3f}' for x in per_repeat)}); "
                  f"encoder {result['encoder_flops_per_image'] / 1e6:.1f} MFLOP per image", highlight=False)
    save(args.name, result, args)


if __name__ == "__main__":
    main()
