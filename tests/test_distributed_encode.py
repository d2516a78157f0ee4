"""encode under torchrun: two processes (gloo on loopback) write a store whose datasets are bit-identical to one
process's; a kill of one rank mid-way resumes to the same store; what is left behind by other requests and other
backbones is never taken for this one's work.

Both sides run with one thread per process (torchrun's default): the same batches through the same kernels.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from lctk.encode import encode_run
from lctk.latents import LatentWriter
from lctk.util.progress import Progress
from lctk.run import RunDir
from lctk.shards import shard_meta, shard_path
from tests.killing import THREADS_ENV, digest_tree

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="torch.distributed with gloo is not available")

DATASETS = ("mu", "sigma", "attributes", "split", "sigma_sum")


def torchrun(*args, nproc: int = 2) -> subprocess.Popen:
    """``torchrun --standalone --nproc_per_node N -m lctk ARGS`` with one thread per process, on loopback."""
    env = {**os.environ, **THREADS_ENV, "NO_COLOR": "1"}
    if Path("/sys/class/net/lo").exists():
        env["GLOO_SOCKET_IFNAME"] = "lo"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           "-m", "lctk", *map(str, args)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err


def reference(run: Path, dest: Path, batch_size: int) -> dict[str, np.ndarray]:
    """The datasets one process writes (one thread, like each torchrun rank)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        encode_run(RunDir(run), batch_size=batch_size, force=True, progress=Progress(enabled=False))
    finally:
        torch.set_num_threads(before)
    (run / "latents.h5").rename(dest)
    return datasets(dest)


def datasets(path: Path) -> dict[str, np.ndarray]:
    """Every dataset of a store (mu, sigma, attributes, split, sigma_sum, continuous values if any) and its
    attributes."""
    with h5py.File(path, "r") as f:
        assert set(DATASETS) <= set(f)
        return {key: f[key][...] for key in f} | {"attrs": {k: f.attrs[k] for k in f.attrs}}


def assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a.keys() - {"attrs"}:
        assert a[key].dtype == b[key].dtype and np.array_equal(a[key], b[key]), key
    assert a["attrs"] == b["attrs"]


def rank_pid(root: int, rank: int) -> int | None:
    """The pid of the worker of ``rank`` that torchrun (pid ``root``) started."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            env = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        if ppid == root and f"RANK={rank}".encode() in env:
            return int(entry.name)
    return None


def test_two_processes_write_one_process_store_and_resume_after_a_rank_is_killed(tiny_run):
    (tiny_run / "latents.h5").rename(tiny_run.parent / "old.h5")
    expected = reference(tiny_run, tiny_run.parent / "one-process.h5", batch_size=16)  # 113 batches
    # a good store from an earlier encode (made distinct), and rank 1's partial shard from another request
    # (another backbone and batch size, garbage values): the first must stay untouched until the new store is
    # whole, the second be started over, never resumed
    (tiny_run.parent / "old.h5").rename(tiny_run / "latents.h5")
    with h5py.File(tiny_run / "latents.h5", "r+") as f:
        f["mu"][0, 0] += 1
    good = digest_tree(tiny_run)["latents.h5"]
    info = json.loads((tiny_run / "run.json").read_text())
    meta = {"backbone": info["backbone"], "dataset": info["dataset"]["name"], "modality": "image"}
    foreign = shard_path(RunDir(tiny_run), 1, 2)
    with pytest.raises(RuntimeError):
        with LatentWriter(foreign, 900, 8, info["dataset"]["attribute_names"], "otherbackbone0000",
                          shard_meta(meta, 1797, 32, 1, 2)) as w:
            w.write(torch.full((64, 8), 7.0), torch.ones(64, 8), torch.zeros(64, 10, dtype=torch.bool),
                    torch.zeros(64, dtype=torch.int8))
            raise RuntimeError("killed")
    assert foreign.with_name(foreign.name + ".partial").is_file()

    args = ("encode", tiny_run, "--batch-size", 16, "--force")
    proc = torchrun(*args)
    progress = foreign.with_name(foreign.name + ".partial.json")
    killed = False
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            record = json.loads(progress.read_text())
        except (OSError, ValueError):
            record = {}
        if record.get("fingerprint") != "otherbackbone0000" and 48 <= record.get("rows_written", 0) < 800:
            pid = rank_pid(proc.pid, 1)
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                killed = True
                break
        time.sleep(0.005)
    code, err = finish(proc)
    assert killed and code != 0, err[-3000:]
    assert digest_tree(tiny_run)["latents.h5"] == good  # the old store is still whole
    done = json.loads(progress.read_text())["rows_written"]
    assert 48 <= done < 899

    code, err = finish(torchrun(*args))
    assert code == 0, err[-3000:]
    assert "encode: 1797/1797" in err and err.count("latents: 1797 x 8") == 1, err[-3000:]
    assert_same(datasets(tiny_run / "latents.h5"), expected)
    assert not list(tiny_run.glob("latents.h5.*")), list(tiny_run.glob("latents.h5.*"))  # no shard left


def test_more_processes_than_batches_and_a_store_of_another_backbone(tiny_run):
    expected = reference(tiny_run, tiny_run.parent / "one-process.h5", batch_size=4096)  # a single batch
    code, err = finish(torchrun("encode", tiny_run, "--batch-size", 4096))  # rank 1 has nothing to encode
    assert code == 0, err[-3000:]
    assert_same(datasets(tiny_run / "latents.h5"), expected)

    with h5py.File(tiny_run / "latents.h5", "r+") as f:  # as if another backbone had written it
        f.attrs["fingerprint"] = "0123456789abcdef"
    before = digest_tree(tiny_run)
    code, err = finish(torchrun("encode", tiny_run))
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code != 0 and len(errors) == 1 and "does not match the backbone" in errors[0] and "--force" in errors[0], err
    assert err.count("Traceback") == err.count("ChildFailedError:") == 1  # torchrun's own report of the failure
    assert digest_tree(tiny_run) == before
