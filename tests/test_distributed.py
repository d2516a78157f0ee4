"""train-vae under torchrun: two processes (gloo on loopback) train what one process trains, up to the order of
floating-point sums, and a checkpoint resumes with another number of processes.

Why the difference is small and bounded: each process takes its contiguous half of every global batch and its
half of the noise drawn for the whole batch, and DistributedDataParallel averages the two halves' gradients,
which is the gradient of the full batch's mean loss summed in another order (see docs/distributed.md).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed

from lctk.cli import cli
from lctk.util.io import load_tensors
from lctk.run import RunDir
from tests.conftest import TINY_VAE
from tests.killing import THREADS_ENV

#: Largest absolute difference allowed between any weight of a two-process and a one-process run after ten
#: steps (measured: about 1e-5; float32 sums in another order).
TOLERANCE = 1e-4

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")


def torchrun(*args, nproc: int = 2, cwd: Path) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node N -m lctk ARGS`` with one thread per process, on loopback."""
    env = {**os.environ, **THREADS_ENV, "NO_COLOR": "1"}
    if Path("/sys/class/net/lo").exists():
        env["GLOO_SOCKET_IFNAME"] = "lo"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           "-m", "lctk", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def in_process(*args) -> None:
    from click.testing import CliRunner

    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output


def max_difference(a: Path, b: Path) -> float:
    ta, _ = load_tensors(a / "backbone.safetensors")
    tb, _ = load_tensors(b / "backbone.safetensors")
    assert ta.keys() == tb.keys()
    return max((ta[k].float() - tb[k].float()).abs().max().item() for k in ta)


def test_two_processes_match_one_and_resume_across_world_sizes(tmp_path, digits_dir, one_thread):
    common = ["train-vae", "--backbone", "conv", "--data", "idx", "--data-dir", digits_dir, *TINY_VAE,
              "--max-examples", "400", "--checkpoint-every", "2", "--device", "cpu"]  # 5 steps of 64 per epoch
    one_1, one_2 = tmp_path / "one-1-epoch", tmp_path / "one-2-epochs"
    in_process(*common, "--out", one_1, "--epochs", "1")
    in_process(*common, "--out", one_2, "--epochs", "2")

    # two processes, one epoch: same weights as one process, rank 0 alone reports and writes
    two = tmp_path / "two"
    result = torchrun(*common, "--out", two, "--epochs", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("trained conv on idx") == 1, result.stderr
    assert result.stderr.count("train-vae: 5/5") == 1, result.stderr  # one progress display
    assert sorted(p.name for p in two.iterdir()) == ["backbone.safetensors", "checkpoint.safetensors",
                                                     "prior-samples.png", "reconstructions.png", "run.json"]
    assert RunDir(two).read()["status"] == "trained"
    assert max_difference(one_1, two) < TOLERANCE

    # the two-process checkpoint continues in one process
    in_process("train-vae", "--out", two, "--epochs", "2", "--resume")
    assert max_difference(one_2, two) < TOLERANCE
    assert len(RunDir(two).read()["history"]) == 2

    # a one-process checkpoint continues in two processes
    one_then_two = tmp_path / "one-then-two"
    shutil.copytree(one_1, one_then_two)
    result = torchrun("train-vae", "--out", one_then_two, "--epochs", "2", "--resume", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert max_difference(one_2, one_then_two) < TOLERANCE
    assert [h["epoch"] for h in RunDir(one_then_two).read()["history"]] == [1, 2]


def test_an_error_every_rank_meets_is_printed_once(tmp_path, digits_dir):
    out = tmp_path / "run"
    result = torchrun("train-vae", "--backbone", "conv", "--data", "idx", "--data-dir", digits_dir, *TINY_VAE,
                      "--batch-size", "63", "--max-examples", "400", "--device", "cpu", "--out", out, cwd=tmp_path)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "not divisible by the 2 processes" in errors[0], result.stderr[-3000:]
    assert not out.exists()  # refused before anything was written
