"""Continuous attributes: typed in the latent store with their observed range, learned over their whole range,
asked for by value (``ink=0.2``) or swept (``ink=0.1..0.3``); bad values refused with one line."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from lctk.engine.targets import Target, parse_attribute, sweep_values
from lctk.util.errors import LctkError
from lctk.latents import LatentStore, LatentWriter
from tests.test_engine_cli import TINY, one_line_error, tree_digests


def test_continuous_attributes_round_trip_through_the_store(tmp_path):
    path = tmp_path / "latents.h5"
    values = torch.tensor([[3.0, 0.5], [9.0, -0.25], [6.0, 1.0], [30.0, 0.0]])  # (4, 2)
    split = torch.tensor([0, 0, 0, 1])
    with LatentWriter(path, 4, 2, ["a"], "fp", continuous_names=["density", "contour"]) as w:
        w.write(torch.zeros(4, 2), torch.ones(4, 2), torch.ones(4, 1, dtype=torch.bool), split, values)
    with LatentStore.open(path) as store:
        assert store.continuous_names == ["density", "contour"]
        assert store.continuous_ranges == {"density": (3.0, 9.0), "contour": (-0.25, 1.0)}  # training rows only
        assert torch.equal(store.load_continuous("train"), values[:3])
        assert torch.equal(store.load_continuous("test"), values[3:])
        assert store.file["continuous"].dtype == np.float32


def test_a_store_without_continuous_attributes_still_opens(tmp_path):
    path = tmp_path / "latents.h5"
    with LatentWriter(path, 2, 2, ["a"], "fp") as w:
        w.write(torch.zeros(2, 2), torch.ones(2, 2), torch.ones(2, 1, dtype=torch.bool), torch.zeros(2))
    with h5py.File(path, "r+") as f:  # as written before continuous attributes existed
        del f.attrs["continuous_names"], f.attrs["continuous_ranges"]
    with LatentStore.open(path) as store:
        assert store.continuous_names == [] and store.continuous_ranges == {}
        assert store.load_continuous().shape == (2, 0)


def test_values_and_sweeps_parse():
    ranges = {"density": (1.0, 28.0)}
    assert parse_attribute("density=12", ["dense"], ranges) == Target("density", "continuous", 12.0, 1.0, 28.0)
    assert parse_attribute("Density", ["dense"], ranges).value is None
    assert parse_attribute("dense=0", ["dense"], ranges) == Target("dense", "attribute", False)
    assert sweep_values("density=4..16") == ("density", [float(v) for v in range(4, 17)])
    assert sweep_values("ink=0.1..0.3:3") == ("ink", [0.1, 0.2, 0.3])
    for spec, words in (("density=30", "1 to 28"), ("dense=2", "1 or 0")):
        with pytest.raises(LctkError, match=words):
            parse_attribute(spec, ["dense"], ranges)
    for spec in ("density=16..4", "density=4..4", "density=..4"):
        with pytest.raises(LctkError, match="reversed|empty|both ends"):
            sweep_values(spec)


@pytest.fixture
def ink_run(tiny_run, run_cli):
    """The tiny digits run with a constraint on the continuous pixel attribute ``ink`` and on digit 3."""
    r = run_cli("add-constraint", tiny_run, "--attr", "ink", "--attr", "3", "--name", "3+ink", *TINY)
    assert r.exit_code == 0, r
    return tiny_run


def test_continuous_constraint_samples_by_value_and_sweep(ink_run, run_cli, tmp_path):
    info = json.loads((ink_run / "constraints" / "3+ink" / "constraint.json").read_text())
    ink = next(t for t in info["targets"] if t["name"] == "ink")
    assert ink["kind"] == "continuous" and 0 <= ink["low"] < ink["high"] <= 1
    metrics = json.loads((ink_run / "constraints" / "3+ink" / "metrics.json").read_text())
    assert "ink" in metrics["attribute_critic_test_mae"]
    mid = round((ink["low"] + ink["high"]) / 2, 3)
    r = run_cli("sample", ink_run, "--attr", f"ink={mid}", "-n", "1", "--out", tmp_path / "one.png")
    assert r.exit_code == 0, r
    r = run_cli("sample", ink_run, "--attr", f"ink={ink['low'] + 0.01:.4f}..{ink['high'] - 0.01:.4f}:3", "--attr", "3",
                "-n", "5", "--out", tmp_path / "sweep.png")
    assert r.exit_code == 0, r
    one, sweep = Image.open(tmp_path / "one.png"), Image.open(tmp_path / "sweep.png")
    assert sweep.height == 3 * one.height  # three rows of five, one row per value


def test_continuous_bad_inputs_change_nothing(ink_run, run_cli, tmp_path):
    before = tree_digests(ink_run)
    for args, words in ((["--attr", "ink=1.5"], "observed range of ink"),
                        (["--attr", "3=2"], "1 or 0"),
                        (["--attr", "ink=0.3..0.1"], "reversed"),
                        (["--attr", "ink=0.2..0.2"], "empty"),
                        (["--attr", "3=0..1"], "binary attribute")):
        r = run_cli("sample", ink_run, *args, "-n", "2", "--out", tmp_path / "bad.png")
        assert words in one_line_error(r), (args, r)
    assert "observed range" in one_line_error(run_cli("add-constraint", ink_run, "--attr", "ink=7", *TINY))
    assert not (tmp_path / "bad.png").exists()
    assert tree_digests(ink_run) == before


def test_spearman_and_grid():
    from lctk.engine.evaluate import value_grid
    from lctk.util.metrics import spearman

    assert spearman(torch.tensor([1.0, 2, 3, 4]), torch.tensor([10.0, 20, 20, 40])) == pytest.approx(0.9487, abs=1e-4)
    assert spearman(torch.tensor([1.0, 2, 3]), torch.tensor([3.0, 2, 1])) == pytest.approx(-1.0)
    grid = value_grid(torch.arange(101).float())
    assert grid[0] == pytest.approx(5) and grid[-1] == pytest.approx(95) and len(grid) == 9


class PixelJudge:
    """Measures ink from the pixels (as the image evaluator does); no classifier needed here."""

    def measure(self, attribute, outputs):
        from lctk_conv.pixels import measure

        return measure(attribute, outputs)

    def evaluate(self, name, outputs, target=None, reference=None):
        return {"n_outputs": len(outputs)}


def test_evaluate_reports_spearman_and_mae_for_continuous_attributes(ink_run):
    from lctk.engine.evaluate import GRID_VALUES, continuous_control
    from lctk.engine.sampling import Sampler
    from lctk.util.progress import Progress

    sampler, rows = Sampler(ink_run), []
    try:
        out = continuous_control(sampler, PixelJudge(), 18, 0, rows, Progress(), methods=("actor",))
    finally:
        sampler.close()
    figures = out["ink"]["actor"]
    assert -1 <= figures["spearman"] <= 1 and figures["mae"] >= 0 and figures["n_outputs"] == 4 * GRID_VALUES
    assert len(figures["grid"]) == len(figures["realised_mean"]) == GRID_VALUES
    assert rows[0]["set"] == "continuous" and rows[0]["target"] == "ink"
