"""The training skeleton both trainers share: checkpoints by time or step count (not at every short epoch), a
progress line per phase with an ETA off a terminal, and the warning when torch was imported before lctk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

import lctk.loop
from lctk.loop import StepLoop
from lctk.util.progress import Progress


class Counting(StepLoop):
    """Two phases of plain steps; counts checkpoints."""

    def __init__(self, sizes, every=0, progress=None):
        self.sizes, self.checkpoint_every = sizes, every
        self.step, self.saved = 0, []
        self.progress = progress or Progress(enabled=False)

    def phases(self):
        return [("first", self.sizes[0]), ("second", self.sizes[1])]

    def train_step(self, step):
        return f"step {step}"

    def save(self):
        self.saved.append(self.step)


def test_checkpoints_by_steps_by_time_and_at_the_end(monkeypatch):
    loop = Counting((5, 7), every=4)
    loop.run_phases("test")
    assert loop.step == 12 and loop.saved == [4, 8, 12]

    clock = iter(range(0, 10_000, 25))  # every step takes 25 s
    monkeypatch.setattr(lctk.loop, "time", SimpleNamespace(monotonic=lambda: next(clock)))
    timed = Counting((5, 7))
    timed.run_phases("test")
    assert timed.saved == [3, 6, 9, 12]  # more than 60 s since the last save, and the end


def test_a_resumed_loop_starts_in_its_phase():
    loop = Counting((5, 7), every=100)
    loop.step = 6
    loop.run_phases("test")
    assert loop.step == 12 and loop.saved == [12]


def test_vae_checkpoints_not_every_epoch(tmp_path, digits_dir, run_cli, monkeypatch):
    import lctk.trainer

    writes = []
    real = lctk.trainer.save_checkpoint
    monkeypatch.setattr(lctk.trainer, "save_checkpoint", lambda *a, **k: (writes.append(1), real(*a, **k)))
    out = tmp_path / "run"
    r = run_cli("train-vae", "--backbone", "conv", "--data", "idx", "--data-dir", digits_dir, "--out", out,
                "--latent-dim", "4", "--set", "width=4", "--set", "hidden=16", "--batch-size", "64",
                "--max-examples", "300", "--epochs", "4")
    assert r.exit_code == 0, r
    assert len(writes) == 1  # 4 epochs of a few steps each, one checkpoint (the last) for --resume
    assert len(json.loads((out / "run.json").read_text())["history"]) == 4


def test_progress_lines_per_phase_with_an_eta(capsys, monkeypatch):
    import lctk.util.progress

    lines = []
    monkeypatch.setattr(lctk.util.progress, "console", SimpleNamespace(is_terminal=False,
                                                                 print=lambda text, **k: lines.append(text)))
    Counting((10, 20), progress=Progress()).run_phases("job")
    assert any(line.startswith("job: first: 10/10") for line in lines)
    assert any(line.startswith("job: second: 10/20") and "eta" in line for line in lines)


@pytest.mark.parametrize("first, spinning", [("torch", True), ("lctk", False)])
def test_torch_imported_first_is_said(first, spinning, tmp_path):
    order = "import torch, lctk" if first == "torch" else "import lctk, torch"
    code = (f"{order}; import warnings; torch.set_num_threads(2)\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always'); from lctk.loop import warn_thread_policy; warn_thread_policy()\n"
            "print(lctk.SPINNING_THREADS, len(w), 'import lctk first' in str(w[0].message) if w else '-')")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == (["True", "1", "True"] if spinning else ["False", "0", "-"])
    assert torch  # the suite itself imports lctk first (tests/conftest.py)
