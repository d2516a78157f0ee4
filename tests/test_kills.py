"""SIGKILL at random moments during train-vae and add-constraint (and one SIGTERM): every resume succeeds, no
file in the run folder is ever corrupt or half-written, and the final weights equal an uninterrupted run's
bit for bit on CPU. The soak script (benchmarks/soak.py) does the same with many more kills."""

from __future__ import annotations

import random
import re
import shutil
import signal

import pytest
import torch

from lctk.cli import cli
from tests.conftest import TINY_VAE
from tests.killing import changed, check_folder, checkpoint_step, kill_after, run_to_end, same_weights

KILLS = 3


@pytest.fixture
def one_thread():
    """Compute in-process with one thread, as the killed subprocesses do (same arithmetic, bit for bit)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def in_process(args) -> None:
    from click.testing import CliRunner

    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output


def assert_whole(folder) -> None:
    problems, _ = check_folder(folder)
    assert not problems, problems


def test_train_vae_survives_kills(tmp_path, digits_dir, one_thread):
    rng = random.Random(20240611)
    common = ["train-vae", "--backbone", "conv", "--data", "idx", "--data-dir", digits_dir, *TINY_VAE,
              "--epochs", "5", "--checkpoint-every", "1", "--device", "cpu"]
    in_process([*common, "--out", tmp_path / "straight"])

    run = tmp_path / "killed"
    checkpoint = run / "checkpoint.safetensors"
    resume = ["train-vae", "--out", run, "--resume"]
    killed = 0
    for i in range(KILLS):
        args = common + ["--out", run] if i == 0 else resume
        sent, code, err = kill_after(args, rng.uniform(0.0, 0.4), ready=changed(checkpoint))
        assert code in (0, -signal.SIGKILL), err
        killed += sent
        assert_whole(run)
    assert killed >= 2, "the runs ended before they could be killed; make them longer"

    # a polite stop: SIGTERM ends at the next step boundary with a checkpoint of exactly that step
    sent, code, err = kill_after(resume, rng.uniform(0.0, 0.1), ready=changed(checkpoint), sig=signal.SIGTERM)
    if code == 2:
        lines = err.strip().splitlines()
        assert lines[-1].startswith("error: interrupted at step") and "--resume" in lines[-1], err
        assert checkpoint_step(checkpoint) == int(re.search(r"at step (\d+)", lines[-1]).group(1))
    else:  # the signal came after the training loop (default handling) or the run had ended
        assert code in (0, -signal.SIGTERM), err
    assert_whole(run)

    code, err = run_to_end(resume)
    assert code == 0, err
    problems, temps = check_folder(run)
    assert not problems and not temps, (problems, temps)
    assert same_weights(tmp_path / "straight" / "backbone.safetensors", run / "backbone.safetensors")


def test_add_constraint_survives_kills(tmp_path, tiny_run, one_thread):
    rng = random.Random(7)
    straight = tmp_path / "straight"
    shutil.copytree(tiny_run, straight)
    settings = ["--attr", "3", "--steps", "150", "--set", "classifier_steps=40", "--set", "width=32",
                "--set", "depth=2", "--set", "batch_size=64", "--set", "checkpoint_every=3"]
    in_process(["add-constraint", straight, *settings])

    args = ["add-constraint", tiny_run, *settings]
    partial_checkpoint = tiny_run / "constraints" / ".3.partial" / "checkpoint.safetensors"
    killed = 0
    for _ in range(KILLS):
        sent, code, err = kill_after(args, rng.uniform(0.0, 0.5), ready=changed(partial_checkpoint))
        assert code in (0, -signal.SIGKILL), err
        killed += sent
        assert_whole(tiny_run)
        if not sent:
            break
    assert killed >= 2, "the runs ended before they could be killed; make them longer"
    if not (tiny_run / "constraints" / "3").exists():  # else the last kill came after it was installed
        code, err = run_to_end(args)
        assert code == 0, err
    problems, temps = check_folder(tiny_run)
    assert not problems and not temps, (problems, temps)
    assert not (tiny_run / "constraints" / ".3.partial").exists()
    assert same_weights(straight / "constraints" / "3" / "weights.safetensors",
                        tiny_run / "constraints" / "3" / "weights.safetensors")


def test_latent_store_resumes_exactly_when_the_file_ran_ahead_of_its_record(tmp_path):
    """A kill between HDF5 writing a block and lctk recording it: the resumed store equals an uninterrupted one
    (the block is written again; nothing is counted twice)."""
    import h5py
    import numpy as np

    from lctk.latents import LatentWriter

    gen = torch.Generator().manual_seed(0)
    blocks = [(torch.randn(7, 3, generator=gen), torch.rand(7, 3, generator=gen) + 0.1,
               torch.rand(7, 2, generator=gen) > 0.5, (torch.arange(7) % 3 == 0).to(torch.int8)) for _ in range(6)]

    def write(path, blocks):
        with LatentWriter(path, 42, 3, ["a", "b"], "f" * 16) as writer:
            for block in blocks[writer.rows_done // 7:]:
                writer.write(*block)

    write(tmp_path / "straight.h5", blocks)

    class Killed(Exception):
        pass

    calls = {"n": 0}
    real = LatentWriter._record

    def record(self, rows_done):
        calls["n"] += 1
        if calls["n"] == 5:  # block 4 is in the file, its record never written
            raise Killed
        real(self, rows_done)

    LatentWriter._record = record
    try:
        with pytest.raises(Killed):
            write(tmp_path / "resumed.h5", blocks)
    finally:
        LatentWriter._record = real
    assert (tmp_path / "resumed.h5.partial").is_file() and not (tmp_path / "resumed.h5").exists()
    write(tmp_path / "resumed.h5", blocks)
    with h5py.File(tmp_path / "straight.h5") as a, h5py.File(tmp_path / "resumed.h5") as b:
        for key in ("mu", "sigma", "attributes", "split", "sigma_sum"):
            assert np.array_equal(a[key][...], b[key][...]), key
        assert a.attrs["train_rows"] == b.attrs["train_rows"]
    assert not (tmp_path / "resumed.h5.partial.json").exists()
