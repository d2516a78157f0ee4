"""Every input is bounded and validated before work: constraint settings (``--set`` and constraint.json), backbone
configs (flags and run.json), names, ``--out`` paths, read-only run folders, ``LCTK_CACHE`` and ``sample -n``.

Each case ends with exactly one ``error:`` line naming the setting (and its allowed range), a non-zero exit, no
traceback, and every file that existed byte-identical. docs/reliability.md ("Inputs bounded") lists the cases.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import TINY_VAE
from tests.test_bad_inputs import refused, unchanged  # noqa: F401  (unchanged: a fixture)

QUICK = ["--steps", "5", "--set", "classifier_steps=5", "--set", "width=16", "--set", "depth=1", "--set", "batch_size=32"]


# -- constraint settings given with --set ----------------------------------------------------------------------


@pytest.mark.parametrize("setting, needles", [
    ("lr=-0.001", ["lr=-0.001", "above 0 up to 1"]),
    ("steps=0", ["steps=0", "1 to 1,000,000,000"]),
    ("steps=-5", ["steps=-5", "1 to"]),
    ("critic_steps=-1", ["critic_steps=-1", "1 to 1,000"]),
    ("classifier_steps=-3", ["classifier_steps=-3", "0 to"]),
    ("width=0", ["width=0", "1 to 16,384"]),
    ("width=1000000", ["width=1000000", "1 to 16,384"]),
    ("depth=-1", ["depth=-1", "0 to 64"]),
    ("batch_size=0", ["batch_size=0", "1 to 65,536"]),
    ("lambda_attr=nan", ["lambda_attr=nan", "not a finite number"]),
    ("gp_weight=inf", ["gp_weight=inf", "not a finite number"]),
    ("lambda_dist=-1", ["lambda_dist=-1", "0 to 1,000,000"]),
    ("prior_fraction=1.5", ["prior_fraction=1.5", "0 to 1"]),
    ("lr=1e999", ["lr=inf", "not a finite number"]),
    ("width=many", ["width", "whole number"]),
])
def test_constraint_settings_out_of_range(tiny_run, run_cli, unchanged, setting, needles):
    unchanged(tiny_run)
    refused(run_cli("add-constraint", tiny_run, "--attr", "3", "--set", setting), "constraint setting", *needles)
    assert not (tiny_run / "constraints").exists()


def test_constraint_networks_too_large_to_build(tiny_run, run_cli, unchanged):
    unchanged(tiny_run)
    refused(run_cli("add-constraint", tiny_run, "--attr", "3", "--set", "width=16384", "--set", "depth=64"),
            "depth 64 x width 16384", "parameters", "LCTK_MAX_PARAMETERS")


# -- a constraint.json with wrong types or absurd values -------------------------------------------------------


@pytest.fixture(scope="module")
def constrained_run(tmp_path_factory, tiny_run_template) -> Path:
    """The tiny run with an (untrained, which is all loading needs) constraint for attribute 3; read-only."""
    from lctk.engine.config import ConstraintConfig
    from lctk.engine.constraint import LatentConstraint
    from lctk.engine.targets import Target
    from lctk.latents import LatentStore

    run = tmp_path_factory.mktemp("constrained") / "run"
    shutil.copytree(tiny_run_template, run)
    with LatentStore.open(run / "latents.h5") as store:
        model = LatentConstraint("3", [Target("3", "attribute")], store.latent_dim, ConstraintConfig(width=16, depth=1),
                                 store.sigma_bar(), store.fingerprint)
    (run / "constraints" / "3").mkdir(parents=True)
    model.save(run / "constraints" / "3")
    return run


@pytest.mark.parametrize("change, needles", [
    (lambda d: d.update(latent_dim=10 ** 9), ["latent_dim should be a whole number from 1 to 65536"]),
    (lambda d: d.update(latent_dim="8"), ["latent_dim should be"]),
    (lambda d: d.update(name=["x"]), ["name should be"]),
    (lambda d: d.update(targets="3"), ["targets should be"]),
    (lambda d: d["targets"][0].update(kind="spell"), ["targets should be"]),
    (lambda d: d.update(config=[1, 2]), ["config should be"]),
    (lambda d: d["config"].update(width=10 ** 7), ["width=10000000", "1 to 16,384"]),
    (lambda d: d["config"].update(width=16384, depth=64), ["parameters"]),
    (lambda d: d["config"].update(lr=float("nan")), ["lr=nan", "not a finite number"]),
    (lambda d: d["config"].update(steps="many"), ["steps", "whole number"]),
    (lambda d: d["config"].update(depth=-2), ["depth=-2", "0 to 64"]),
])
def test_constraint_json_is_checked_before_it_is_built(constrained_run, tmp_path, run_cli, unchanged, change, needles):
    run = tmp_path / "run"
    shutil.copytree(constrained_run, run)
    description = run / "constraints" / "3" / "constraint.json"
    info = json.loads(description.read_text())
    change(info)
    description.write_text(json.dumps(info))
    unchanged(run)
    refused(run_cli("sample", run, "--attr", "3", "-n", "4"), "constraint.json", *needles)


# -- backbone configs: flags and run.json ----------------------------------------------------------------------


@pytest.mark.parametrize("flags, needles", [
    (["--latent-dim", "1000000000"], ["latent_dim=1000000000", "1 to 65,536"]),
    (["--set", "width=100000"], ["width=100000", "1 to 4,096"]),
    (["--set", "hidden=0"], ["hidden=0", "1 to 65,536"]),
    (["--set", "sigma_x=nan"], ["sigma_x=nan", "not a finite number"]),
    (["--set", "input_shape=1,100000,100000"], ["input_shape=1,100000,100000", "1 to 4,096"]),
    (["--set", "width=4096", "--set", "hidden=65536"], ["backbone conv would have", "parameters"]),
    (["--lr", "nan"], ["lr=nan", "not a finite number"]),
])
def test_backbone_settings_out_of_range_are_refused_before_training(tmp_path, digits_dir, run_cli, flags, needles):
    out = tmp_path / "run"
    refused(run_cli("train-vae", "--backbone", "conv", "--data", "idx", "--data-dir", digits_dir, "--out", out,
                    "--epochs", "1", *TINY_VAE, *flags), *needles)
    assert not out.exists()


@pytest.mark.parametrize("change, needles", [
    (lambda c: c.update(latent_dim=10 ** 9), ["latent_dim=1000000000", "1 to 65,536"]),
    (lambda c: c.update(input_shape=[1, 10 ** 6, 10 ** 6]), ["input_shape", "1 to 4,096"]),
    (lambda c: c.update(width=10 ** 6), ["width=1000000"]),
    (lambda c: c.update(width=4096, hidden=65536), ["would have", "parameters"]),
])
def test_absurd_backbone_config_in_run_json(tiny_run, run_cli, unchanged, change, needles):
    config_path = tiny_run / "run.json"
    info = json.loads(config_path.read_text())
    change(info["backbone_config"])
    config_path.write_text(json.dumps(info))
    unchanged(tiny_run)
    refused(run_cli("sample", tiny_run, "--prior", "-n", "4"), *needles)


# -- names and paths -------------------------------------------------------------------------------------------


def test_a_300_character_name(tiny_run, run_cli, unchanged):
    unchanged(tiny_run)
    refused(run_cli("add-constraint", tiny_run, "--attr", "3", "--name", "n" * 300, *QUICK),
            "--name is 300 characters long", "at most 100")


def test_a_long_automatic_name_is_shortened():
    """Targets whose joined name is longer than a folder name get a short name with a digest."""
    from lctk.util.outputs import MAX_NAME, default_name

    names = [f"attribute-number-{i}" for i in range(40)]
    short = default_name(names, "realism")
    assert len(short) <= MAX_NAME and short.startswith("attribute-number-0+") and short != default_name(names[:-1], "x")
    assert default_name(["3", "no-4"], "realism") == "3+no-4" and default_name([], "realism") == "realism"


def _out_cases(tmp_path: Path) -> dict[str, Path]:
    tmp_path.mkdir(parents=True)
    (tmp_path / "plain").write_bytes(b"keep me")
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "folder.png" / "inside.txt").write_text("keep me too")
    return {"device": Path("/dev/full"), "file without suffix": tmp_path / "plain",
            "folder where a file goes": tmp_path / "folder.png", "under a file": tmp_path / "plain" / "x.png",
            "name too long": tmp_path / ("x" * 300 + ".png")}


@pytest.mark.parametrize("case, needles", [
    ("device", ["/dev/full", "not a folder"]),
    ("file without suffix", ["plain is a file", "ending in .png"]),
    ("folder where a file goes", ["folder.png is a folder", "ending in .png"]),
    ("under a file", ["plain is a file, not a folder"]),
    ("name too long", ["304 characters", "at most 255"]),
])
def test_sample_out_paths_that_cannot_be_written(tiny_run, tmp_path, run_cli, unchanged, case, needles):
    out = _out_cases(tmp_path / "outs")
    unchanged(tmp_path / "outs")
    unchanged(tiny_run)
    refused(run_cli("sample", tiny_run, "--prior", "-n", "4", "--out", out[case]), "--out", *needles)


def test_transform_out_at_a_folder_where_a_file_goes(tiny_run, tmp_path, run_cli, unchanged):
    out = _out_cases(tmp_path / "outs")
    unchanged(tmp_path / "outs")
    refused(run_cli("transform", tiny_run, "--index", "0", "--attr", "3", "--out", out["folder where a file goes"]),
            "folder.png is a folder")


def test_train_vae_out_under_a_file(tmp_path, digits_dir, run_cli, unchanged):
    (tmp_path / "outs").mkdir()
    (tmp_path / "outs" / "plain").write_bytes(b"keep me")
    unchanged(tmp_path / "outs")
    refused(run_cli("train-vae", "--backbone", "conv", "--data", "idx", "--data-dir", digits_dir,
                    "--out", tmp_path / "outs" / "plain" / "run", "--epochs", "1", *TINY_VAE), "plain is a file")


@pytest.fixture
def read_only(tmp_path):
    """``make(folder)`` makes ``folder`` read-only (a read-only bind mount as root, who ignores permissions;
    else permission bits); undone afterwards. Returns the read-only path."""
    mounts, chmods = [], []

    def make(folder: Path) -> Path:
        if os.geteuid() != 0:
            os.chmod(folder, 0o555)
            chmods.append(folder)
            return folder
        view = tmp_path / f"{folder.name}-read-only"
        view.mkdir()
        for args in (["mount", "--bind", str(folder), str(view)], ["mount", "-o", "remount,bind,ro", str(view)]):
            if subprocess.run(args, capture_output=True).returncode != 0:
                pytest.skip("cannot make a read-only mount here (root without mount rights)")
            mounts.append(view) if args[1] == "--bind" else None
        return view
    yield make
    for view in mounts:
        subprocess.run(["umount", str(view)], check=True)
    for folder in chmods:
        os.chmod(folder, 0o755)


def test_add_constraint_in_a_read_only_run_folder(tiny_run, run_cli, unchanged, read_only):
    unchanged(tiny_run)
    view = read_only(tiny_run)
    refused(run_cli("add-constraint", view, "--attr", "3", *QUICK), "read-only", "copy it somewhere writable")
    refused(run_cli("sample", view, "--prior", "-n", "4"), "read-only")


@pytest.mark.parametrize("where", ["file", "under a file"])
def test_lctk_cache_that_is_not_a_folder(tmp_path, run_cli, unchanged, monkeypatch, where):
    data = tmp_path / "abc"
    data.mkdir()
    (data / "tune.abc").write_text("X:1\nT:t\nM:4/4\nL:1/4\nK:C\nE E F G | G F E D | C C D E | E3/2 D/2 D2 |\n")
    (tmp_path / "cache").write_bytes(b"not a folder")
    unchanged(tmp_path)
    monkeypatch.setenv("LCTK_CACHE", str(tmp_path / "cache" if where == "file" else tmp_path / "cache" / "sub"))
    refused(run_cli("train-vae", "--backbone", "lstm", "--data", "abc-folder", "--data-dir", data,
                    "--out", tmp_path / "run", "--epochs", "1"), "LCTK_CACHE=", "point LCTK_CACHE at a folder")


def test_lctk_cache_that_is_not_a_folder_when_encoding(tiny_run, tmp_path, run_cli, unchanged, monkeypatch):
    """encode keeps its writer's key there: refused before any file is made (no partial store left)."""
    (tmp_path / "cache").write_bytes(b"not a folder")
    unchanged(tiny_run)
    monkeypatch.setenv("LCTK_CACHE", str(tmp_path / "cache"))
    refused(run_cli("encode", tiny_run, "--force"), "LCTK_CACHE=", "point LCTK_CACHE at a folder")


# -- how many samples one output holds -------------------------------------------------------------------------


def test_sample_n_past_what_one_picture_holds(tiny_run, run_cli, unchanged):
    unchanged(tiny_run)
    refused(run_cli("sample", tiny_run, "--prior", "-n", "200000"), "-n 200000", "at most 10,000")
