"""add-constraint, sample, transform and evaluate through the CLI on a tiny trained run."""

from __future__ import annotations

import hashlib
import json

import h5py
import pytest
from PIL import Image

TINY = ["--steps", "40", "--set", "classifier_steps=40", "--set", "width=32", "--set", "depth=2",
        "--set", "batch_size=64"]


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree_digests(folder) -> dict:
    return {p.relative_to(folder).as_posix(): digest(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line_error(result) -> str:
    assert result.exit_code != 0, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def test_add_constraint_leaves_backbone_bytes(tiny_run, run_cli):
    before = digest(tiny_run / "backbone.safetensors")
    latents = digest(tiny_run / "latents.h5")
    r = run_cli("add-constraint", tiny_run, "--attr", "3", "--attr", "7", *TINY)
    assert r.exit_code == 0, r
    folder = tiny_run / "constraints" / "3+7"
    info = json.loads((folder / "constraint.json").read_text())
    assert [t["name"] for t in info["targets"]] == ["3", "7"]
    assert (folder / "weights.safetensors").is_file() and (folder / "metrics.json").is_file()
    assert not (folder / "checkpoint.safetensors").exists()
    assert digest(tiny_run / "backbone.safetensors") == before
    assert digest(tiny_run / "latents.h5") == latents


def test_second_constraint_leaves_first_untouched(tiny_run, run_cli):
    assert run_cli("add-constraint", tiny_run, "--attr", "3", *TINY).exit_code == 0
    first = tree_digests(tiny_run / "constraints" / "3")
    r = run_cli("add-constraint", tiny_run, "--attr", "no-5", "--name", "five", *TINY)
    assert r.exit_code == 0, r
    assert tree_digests(tiny_run / "constraints" / "3") == first
    assert (tiny_run / "constraints" / "five" / "constraint.json").is_file()
    again = run_cli("add-constraint", tiny_run, "--attr", "3", *TINY)
    assert "already exists" in one_line_error(again)
    assert tree_digests(tiny_run / "constraints" / "3") == first


def test_sample_transform_evaluate(tiny_run, run_cli, tmp_path):
    assert run_cli("add-constraint", tiny_run, "--attr", "3", "--attr", "7", *TINY).exit_code == 0
    assert run_cli("add-constraint", tiny_run, *TINY).exit_code == 0  # realism
    for args in (["--attr", "3"], ["--attr", "7", "--method", "optimize"], [], ["--prior"], ["--attr", "no-3"]):
        out = tmp_path / f"s{len(args)}{'-'.join(args)}.png"
        r = run_cli("sample", tiny_run, *args, "-n", "16", "--out", out)
        assert r.exit_code == 0, r
        assert Image.open(out).size[0] > 0
    r = run_cli("transform", tiny_run, "--index", "1600", "--attr", "3", "--out", tmp_path / "t.png", "--steps", "20")
    assert r.exit_code == 0, r
    w, h = Image.open(tmp_path / "t.png").size
    assert w == 2 * h  # before and after side by side
    r = run_cli("evaluate", tiny_run, "-n", "40", "--json")
    assert r.exit_code == 0, r
    metrics = json.loads(r.stdout)
    assert metrics == json.loads((tiny_run / "metrics.json").read_text())
    sets = {(row["set"], row["method"], row["target"]) for row in metrics["sets"]}
    assert {("reconstruction", "-", "-"), ("prior", "-", "-"), ("conditional", "actor", "3"),
            ("conditional", "optimize", "7")} <= sets
    assert 0 <= metrics["evaluator"]["classifier_test_accuracy"] <= 1
    assert 0 <= metrics["conditional"]["actor"]["per_attribute"]["3"] <= 1
    assert metrics["transforms"]["n"] > 0
    assert all(row["frechet_distance"] >= 0 for row in metrics["sets"])
    cached = run_cli("evaluate", tiny_run, "-n", "40", "--json")
    assert json.loads(cached.stdout)["evaluator"]["classifier_cached"] is True


def test_interrupted_add_constraint_resumes_bit_identically(tiny_run, run_cli, tmp_path, monkeypatch):
    """A checkpoint taken midway, then the same command: the same weights as an uninterrupted run."""
    import shutil

    from lctk.engine.add import add_constraint
    from tests.conftest import interrupt_actor_step

    overrides = {"steps": 20, "classifier_steps": 10, "width": 16, "depth": 1, "batch_size": 32, "checkpoint_every": 5}
    other = tmp_path / "other"
    shutil.copytree(tiny_run, other)
    straight = add_constraint(tiny_run, ["3"], overrides=overrides)

    interrupt_actor_step(monkeypatch, at=8)
    with pytest.raises(Exception):
        add_constraint(other, ["3"], overrides=overrides)
    monkeypatch.undo()
    assert (other / "constraints" / ".3.partial" / "checkpoint.safetensors").is_file()
    resumed = add_constraint(other, ["3"], overrides=overrides)
    assert digest(straight / "weights.safetensors") == digest(resumed / "weights.safetensors")


def test_unknown_attribute_lists_available(tiny_run, run_cli):
    line = one_line_error(run_cli("add-constraint", tiny_run, "--attr", "smiling", *TINY))
    assert "unknown attribute 'smiling'" in line and "0, 1, 2" in line


def test_stale_latents_refused_with_reencode_command(tiny_run, run_cli):
    with h5py.File(tiny_run / "latents.h5", "a") as f:
        f.attrs["fingerprint"] = "0000000000000000"
    line = one_line_error(run_cli("add-constraint", tiny_run, "--attr", "3", *TINY))
    assert "another backbone" in line and f"lctk encode {tiny_run} --force" in line


def test_missing_constraint_and_no_constraints(tiny_run, run_cli, tmp_path):
    line = one_line_error(run_cli("sample", tiny_run, "--attr", "3", "--out", tmp_path / "x.png"))
    assert "add-constraint" in line
    assert run_cli("add-constraint", tiny_run, "--attr", "3", *TINY).exit_code == 0
    line = one_line_error(run_cli("sample", tiny_run, "--attr", "5", "--method", "actor", "--out", tmp_path / "x.png"))
    assert "no constraint" in line and "--attr 5" in line
    assert not (tmp_path / "x.png").exists()


def test_bad_transform_inputs(tiny_run, run_cli, tmp_path):
    assert run_cli("add-constraint", tiny_run, "--attr", "3", *TINY).exit_code == 0
    one_line_error(run_cli("transform", tiny_run, "--attr", "3", "--out", tmp_path / "t.png"))
    one_line_error(run_cli("transform", tiny_run, "--index", "99999", "--attr", "3", "--out", tmp_path / "t.png"))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    line = one_line_error(run_cli("transform", tiny_run, "--input", bad, "--attr", "3", "--out", tmp_path / "t.png"))
    assert "not a readable image" in line
