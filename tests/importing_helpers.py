"""Helpers of the import tests (core and importer plugins): 28x28 digits as IDX files, folder digests, a pickle
whose loading would leave a marker file."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from tests.conftest import write_idx
from tests.test_bad_inputs import refused  # noqa: F401  (re-exported: one-line refusal check)
from tests.test_engine_cli import tree_digests  # noqa: F401  (re-exported: {file: sha256} of a folder)


def make_digits28_idx(folder: Path, n_train: int = 300, n_test: int = 100) -> Path:
    """scikit-learn's 8x8 digits scaled up to 28x28, as the four MNIST-format files in ``folder``."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    small = torch.tensor(digits.images[:n_train + n_test], dtype=torch.float32)[:, None]  # (N, 1, 8, 8)
    big = torch.nn.functional.interpolate(small, size=(28, 28), mode="bilinear", align_corners=False)[:, 0]
    images = (big * (255 / 16)).clamp(0, 255).round().to(torch.uint8).numpy()  # (N, 28, 28)
    labels = digits.target[:n_train + n_test].astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / "train-images-idx3-ubyte", images[:n_train])
    write_idx(folder / "train-labels-idx1-ubyte", labels[:n_train])
    write_idx(folder / "t10k-images-idx3-ubyte", images[n_train:])
    write_idx(folder / "t10k-labels-idx1-ubyte", labels[n_train:])
    return folder


class Marker:
    """Unpickling this object creates the file ``path`` (proof that a loader ran the pickle's code)."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))



#: add-constraint settings for a few-second constraint.
TINY_CONSTRAINT = ["--steps", "20", "--set", "classifier_steps=20", "--set", "width=16", "--set", "depth=1",
                   "--set", "critic_steps=1", "--set", "batch_size=64"]


def run_the_pipeline(run_cli, run: Path, out: Path, attr: str) -> None:
    """encode, add-constraint (few steps), sample and transform on an imported run; each must succeed."""
    for args in (("encode", run), ("add-constraint", run, "--attr", attr, *TINY_CONSTRAINT),
                 ("sample", run, "--attr", attr, "-n", "4", "--out", out / "s.png"),
                 ("transform", run, "--index", "1", "--attr", attr, "--out", out / "t.png")):
        result = run_cli(*args)
        assert result.exit_code == 0, (args, result)
    assert (run / "latents.h5").is_file() and (out / "s.png").is_file() and (out / "t.png").is_file()


def refused_unchanged(run_cli, folder: Path, data_dir: Path, tmp_path: Path, *needles: str) -> str:
    """Import ``folder`` for the idx data in ``data_dir``: a one-line refusal mentioning ``needles``, the folder
    byte-identical afterwards and no run folder made. Returns the error line."""
    before = tree_digests(folder)
    line = refused(run_cli("import-backbone", folder, "--data", "idx", "--data-dir", data_dir, "--out", tmp_path / "run"),
                   *needles)
    assert tree_digests(folder) == before and not (tmp_path / "run").exists()
    return line
