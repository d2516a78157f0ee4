"""Shared fixtures: tiny IDX image data from scikit-learn's digits, a tiny trained and encoded run, and a
CLI runner. Everything CPU, tiny and seeded."""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import lctk  # noqa: F401, I001  (before torch: OpenMP threads then sleep while they wait, see lctk/__init__.py)
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from lctk import plugins
from lctk.cli import cli, reset_plugin_commands

torch.set_num_threads(2)


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    """Write ``array`` (uint8) as an IDX file (gzipped when ``compress``)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def make_digits_idx(folder: Path, compress: bool = False, n_train: int = 1500) -> Path:
    """scikit-learn's 1,797 8x8 digits as the four MNIST-format files in ``folder``."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images * (255 / 16)).round().astype(np.uint8)  # (1797, 8, 8)
    labels = digits.target.astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / "train-images-idx3-ubyte", images[:n_train], compress)
    write_idx(folder / "train-labels-idx1-ubyte", labels[:n_train], compress)
    write_idx(folder / "t10k-images-idx3-ubyte", images[n_train:], compress)
    write_idx(folder / "t10k-labels-idx1-ubyte", labels[n_train:], compress)
    return folder


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory) -> Path:
    """A folder with the digits as IDX files (class names 0..9)."""
    return make_digits_idx(tmp_path_factory.mktemp("digits"))


class CliResult:
    def __init__(self, result):
        self.exit_code = result.exit_code
        self.stdout = result.stdout
        self.stderr = result.stderr
        self.output = result.output
        self.exception = result.exception

    def __repr__(self):
        return f"<exit {self.exit_code} stdout={self.stdout[-500:]!r} stderr={self.stderr[-500:]!r}>"


@pytest.fixture
def run_cli():
    """Run ``lctk ARGS`` in-process with click's CliRunner; returns exit code, stdout and stderr."""
    def invoke(*args, input=None) -> CliResult:
        result = CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=True)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        return CliResult(result)
    return invoke


TINY_VAE = ["--latent-dim", "8", "--set", "width=8", "--set", "hidden=64", "--batch-size", "64", "--lr", "3e-3"]


def train_tiny_run(out: Path, digits: Path, epochs: int = 3, extra=()) -> Path:
    """Train and encode a tiny conv VAE on the digits into ``out`` through the CLI."""
    result = CliRunner().invoke(cli, ["train-vae", "--backbone", "conv", "--data", "idx", "--data-dir", str(digits),
                                      "--out", str(out), "--epochs", str(epochs), *TINY_VAE, *extra])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(cli, ["encode", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def tiny_run_template(tmp_path_factory, digits_dir) -> Path:
    """A trained and encoded tiny run, shared read-only; use `tiny_run` for one you may change."""
    return train_tiny_run(tmp_path_factory.mktemp("template") / "run", digits_dir)


@pytest.fixture
def tiny_run(tmp_path, tiny_run_template) -> Path:
    """A private copy of the tiny trained and encoded run."""
    dest = tmp_path / "run"
    shutil.copytree(tiny_run_template, dest)
    return dest


@pytest.fixture
def fresh_plugins():
    """Reload plugins before and after the test (for tests that add or break plugins)."""
    plugins.reset()
    reset_plugin_commands()
    yield plugins
    plugins.reset()
    reset_plugin_commands()


def interrupt_actor_step(monkeypatch, at: int) -> None:
    """Make the ``at``-th actor step of constraint training raise KeyboardInterrupt, as Ctrl-C would (the
    trainer has checkpointed by then when ``checkpoint_every`` is small); ``monkeypatch.undo()`` restores it."""
    from lctk.engine.training import ConstraintTrainer

    real_step = ConstraintTrainer.actor_step
    calls = {"n": 0}

    def stop_after_some(self, gen):
        calls["n"] += 1
        if calls["n"] == at:
            raise KeyboardInterrupt
        return real_step(self, gen)

    monkeypatch.setattr(ConstraintTrainer, "actor_step", stop_after_some)
