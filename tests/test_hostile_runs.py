"""A run folder from someone else cannot make lctk misbehave: latent sizes of store, backbone and constraint are
compared, NaN/inf weights and encodings are refused before anything is replaced, constraint folders are never
followed through links, a damaged one is skipped (with a warning) unless it is the one asked for, names keep
their letters, and one process at a time trains a constraint name.

Each refusal is one ``error:`` line, a non-zero exit, no traceback, every pre-existing file byte-identical, and
nothing outside the run changed. docs/reliability.md ("Hostile run folders") lists the cases.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from lctk.engine.constraint_set import folder_name
from tests.conftest import TINY_VAE
from tests.killing import digest_tree
from tests.test_bad_inputs import refused, unchanged  # noqa: F401  (unchanged: a fixture)

QUICK = ["--steps", "5", "--set", "classifier_steps=5", "--set", "width=16", "--set", "depth=1", "--set", "batch_size=32"]
ROOT = Path(__file__).resolve().parents[1]


def add_untrained(run: Path, attr: str, latent_dim: int | None = None) -> Path:
    """Save an untrained (loading is all that matters) constraint for ``attr`` into ``run``."""
    from lctk.engine.config import ConstraintConfig
    from lctk.engine.constraint import LatentConstraint
    from lctk.engine.targets import Target
    from lctk.latents import LatentStore

    with LatentStore.open(run / "latents.h5") as store:
        dim = latent_dim or store.latent_dim
        model = LatentConstraint(attr, [Target(attr, "attribute")], dim, ConstraintConfig(width=16, depth=1),
                                 torch.ones(dim), store.fingerprint)
    folder = run / "constraints" / attr
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder)
    return folder


@pytest.fixture
def outside(tmp_path) -> Path:
    """A folder beside the run whose files must never change."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "script.sh").write_text("#!/bin/sh\necho hello\n")
    return folder


def warned(result, *needles: str) -> str:
    """Assert success with exactly one ``warning:`` line on stderr (naming ``needles``), no traceback."""
    assert result.exit_code == 0, result
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, result.stderr
    assert "Traceback" not in result.output and "Traceback" not in result.stderr
    for needle in needles:
        assert needle.lower() in warnings[0].lower(), (needle, warnings[0])
    return warnings[0]


# -- latent sizes and values cross-checked -------------------------------------------------------------------


def test_a_store_of_another_latent_size_is_refused(tiny_run, run_cli, unchanged):
    path = tiny_run / "latents.h5"
    with h5py.File(path, "r") as f:
        data, attrs = {k: f[k][...] for k in f}, dict(f.attrs)
    data["mu"], data["sigma"] = np.concatenate([data["mu"]] * 2, 1), np.concatenate([data["sigma"]] * 2, 1)
    data["sigma_sum"] = np.concatenate([data["sigma_sum"]] * 2)
    path.unlink()
    with h5py.File(path, "w") as f:  # the same fingerprint: the sender's word only
        for k, v in data.items():
            f.create_dataset(k, data=v)
        f.attrs.update(attrs)
    unchanged(tiny_run)
    refused(run_cli("add-constraint", tiny_run, "--attr", "3", *QUICK), "16-dimensional", "latent size is 8",
            "lctk encode")
    assert not (tiny_run / "constraints").exists()


def test_a_constraint_of_another_latent_size_is_refused_at_sample(tiny_run, tmp_path, run_cli, unchanged):
    add_untrained(tiny_run, "3", latent_dim=16)
    unchanged(tiny_run)
    refused(run_cli("sample", tiny_run, "--attr", "3", "-n", "4", "--out", tmp_path / "s.png"),
            "constraint '3' is for 16-dimensional latents", "latent size is 8", "--force")
    assert not (tmp_path / "s.png").exists()


def test_nan_encodings_never_replace_a_good_store(tiny_run, run_cli, unchanged):
    weights = load_file(tiny_run / "backbone.safetensors")
    for name, value in weights.items():  # finite weights whose encodings overflow to inf and NaN
        if name.startswith("encoder") and value.is_floating_point():
            value.fill_(1e30)
    save_file(weights, tiny_run / "backbone.safetensors")
    before = digest_tree(tiny_run)
    refused(run_cli("encode", tiny_run, "--force"), "NaN or infinite", "latents.h5 was left as it was")
    after = digest_tree(tiny_run)
    assert {k: after.get(k) for k in before} == before  # latents.h5 above all
    assert set(after) - set(before) <= {"latents.h5.partial", "latents.h5.partial.json"}  # resumable work only


@pytest.mark.parametrize("target", ["backbone.safetensors", "constraints/3/weights.safetensors"])
def test_nan_weights_are_refused_on_load(target, tiny_run, tmp_path, run_cli, unchanged):
    add_untrained(tiny_run, "3")
    path = tiny_run / target
    weights = load_file(path)
    name = next(k for k, v in weights.items() if v.is_floating_point() and v.numel() > 1)
    weights[name][0] = float("nan")
    save_file(weights, path)
    unchanged(tiny_run)
    refused(run_cli("sample", tiny_run, "--attr", "3", "-n", "4", "--out", tmp_path / "s.png"),
            "NaN or infinite", target.split("/")[-1])
    assert not (tmp_path / "s.png").exists()


# -- names -----------------------------------------------------------------------------------------------------


def test_folder_names_keep_letters_of_every_script():
    assert folder_name("Zürich") == "zürich"
    assert folder_name("日本") == "日本"
    assert folder_name("golden retriever") == "golden-retriever"
    assert folder_name("density>=8") == "density-ge-8"  # ASCII names: the folders of older runs
    assert folder_name("") == "realism"
    symbols = {folder_name(n) for n in ("★", "☆", "♫")}
    assert len(symbols) == 3 and "realism" not in symbols and all(s.startswith("c-") for s in symbols)


def test_a_non_ascii_name_is_its_own_folder(tiny_run, run_cli):
    assert run_cli("add-constraint", tiny_run, "--attr", "3", "--name", "Größe", *QUICK).exit_code == 0
    assert run_cli("add-constraint", tiny_run, "--attr", "5", "--name", "日本", *QUICK).exit_code == 0
    assert sorted(p.name for p in (tiny_run / "constraints").iterdir()) == ["größe", "日本"]


def test_columns_that_normalise_to_one_name_are_refused(tmp_path, digits_dir, run_cli):
    out = tmp_path / "run"
    classes = "zero,one,two,three,four,five,six,seven,Big_Lips,big lips"
    refused(run_cli("train-vae", "--backbone", "conv", "--data", "idx", "--data-dir", digits_dir,
                    "--data-option", f"classes={classes}", "--out", out, "--epochs", "1", *TINY_VAE),
            "names two attributes 'big-lips' (once normalised)", "rename one")
    assert not out.exists()


# -- damaged and linked constraint folders ------------------------------------------------------------------


def _bad_json(folder: Path, outside: Path):
    (folder / "constraint.json").write_text('{"name": "5", ')


def _no_weights(folder: Path, outside: Path):
    (folder / "weights.safetensors").unlink()


def _link(folder: Path, outside: Path):
    shutil.move(folder, outside / "5")
    folder.symlink_to(outside / "5", target_is_directory=True)


DAMAGE = {"bad-json": (_bad_json, "not valid json"), "no-weights": (_no_weights, "does not exist"),
          "symlink": (_link, "symbolic link")}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_constraint_is_skipped_unless_asked_for(case, tiny_run, tmp_path, outside, run_cli, unchanged):
    add_untrained(tiny_run, "3")
    damage, needle = DAMAGE[case]
    damage(add_untrained(tiny_run, "5"), outside)
    unchanged(tiny_run)
    unchanged(outside)
    warned(run_cli("sample", tiny_run, "--attr", "3", "-n", "4", "--out", tmp_path / "s3.png"),
           "skipped a damaged constraint", needle)
    assert (tmp_path / "s3.png").is_file()
    refused(run_cli("sample", tiny_run, "--attr", "5", "-n", "4", "--out", tmp_path / "s5.png"), needle)
    assert not (tmp_path / "s5.png").exists()


def test_sampling_without_targets_skips_a_damaged_first_constraint(tiny_run, tmp_path, run_cli, unchanged):
    _bad_json(add_untrained(tiny_run, "3"), tmp_path)
    add_untrained(tiny_run, "5")
    unchanged(tiny_run)
    warned(run_cli("sample", tiny_run, "-n", "4", "--out", tmp_path / "s.png"), "skipped a damaged constraint",
           "constraints/3/constraint.json")
    assert (tmp_path / "s.png").is_file()


def test_a_constraint_in_a_folder_of_another_name_is_found(tiny_run, tmp_path, run_cli):
    """As an older lctk named folders (``Zürich`` -> ``z-rich``), or a folder renamed by hand."""
    add_untrained(tiny_run, "3").rename(tiny_run / "constraints" / "digit-three")
    result = run_cli("sample", tiny_run, "--attr", "3", "-n", "4", "--out", tmp_path / "s.png")
    assert result.exit_code == 0 and "warning" not in result.stderr and "error" not in result.stderr, result
    assert (tmp_path / "s.png").is_file()


def test_a_linked_constraint_folder_is_replaced_never_followed(tiny_run, outside, run_cli, unchanged):
    _link(add_untrained(tiny_run, "5"), outside)
    unchanged(outside)
    before = digest_tree(tiny_run)
    refused(run_cli("add-constraint", tiny_run, "--attr", "5", *QUICK), "symbolic link", "--force")
    assert digest_tree(tiny_run) == before
    result = run_cli("add-constraint", tiny_run, "--attr", "5", "--force", *QUICK)
    assert result.exit_code == 0, result
    folder = tiny_run / "constraints" / "5"
    assert folder.is_dir() and not folder.is_symlink() and (folder / "weights.safetensors").is_file()
    assert sorted(p.name for p in folder.parent.iterdir()) == ["5"]  # no .5.old, no .5.partial


def test_force_leaves_no_old_folder(tiny_run, run_cli):
    assert run_cli("add-constraint", tiny_run, "--attr", "3", *QUICK).exit_code == 0
    assert run_cli("add-constraint", tiny_run, "--attr", "3", "--force", *QUICK).exit_code == 0
    assert sorted(p.name for p in (tiny_run / "constraints").iterdir()) == ["3"]


def test_a_linked_partial_folder_is_never_written_through(tiny_run, outside, run_cli, unchanged):
    """A shipped ``.3.partial`` link to a folder outside, holding a checkpoint and a matching-looking request."""
    (outside / "request.json").write_text("{}")
    (outside / "checkpoint.safetensors").write_bytes(b"x")
    (tiny_run / "constraints").mkdir()
    (tiny_run / "constraints" / ".3.partial").symlink_to(outside, target_is_directory=True)
    unchanged(outside)
    assert run_cli("add-constraint", tiny_run, "--attr", "3", *QUICK).exit_code == 0
    assert sorted(p.name for p in (tiny_run / "constraints").iterdir()) == ["3"]


def test_a_linked_constraints_folder_is_refused(tiny_run, outside, run_cli, unchanged):
    (tiny_run / "constraints").symlink_to(outside, target_is_directory=True)
    unchanged(tiny_run)
    unchanged(outside)
    refused(run_cli("add-constraint", tiny_run, "--attr", "3", *QUICK), "symbolic link")


# -- one writer per constraint name ----------------------------------------------------------------------------


def _lctk(*args) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *(str(ROOT / "plugins" / p) for p in ("lctk-conv", "lctk-lstm")), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "lctk", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def test_a_second_writer_of_one_constraint_name_fails_at_once(tiny_run):
    slow = ["--steps", "1000000", "--set", "classifier_steps=5", "--set", "width=16", "--set", "depth=1"]
    first = _lctk("add-constraint", tiny_run, "--attr", "3", *slow)
    pid_file = tiny_run / "constraints" / ".3.partial" / "writer.pid"
    try:
        deadline = time.monotonic() + 120
        while not (pid_file.is_file() and pid_file.read_text() == str(first.pid)):
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read() if first.poll() else "slow"
            time.sleep(0.2)
        started = time.monotonic()
        second = _lctk("add-constraint", tiny_run, "--attr", "3", "--force", *QUICK)
        out, err = second.communicate(timeout=120)
        assert second.returncode != 0, (out, err)
        lines = err.strip().splitlines()
        assert lines == [f"error: another add-constraint is writing constraint '3' (pid {first.pid}) in {tiny_run}; "
                         "wait for it to finish, or stop it and run this again"], err
        assert time.monotonic() - started < 60  # at once: no training, no waiting
        assert first.poll() is None  # the first goes on undisturbed
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)
    assert not (tiny_run / "constraints" / "3").exists()
    assert (tiny_run / "constraints" / ".3.partial" / "request.json").is_file()  # the first one's, resumable
