"""The typed run record: run.json validated on read (one error line naming the field), old run folders still
open, unknown keys kept, the backbone's providing distribution recorded and checked, and a resume with a
damaged run.json refused before anything is written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lctk import hookimpl
from lctk.util.errors import LctkError
from lctk.record import RECORD_VERSION, RunRecord
from lctk.run import RunDir

#: run.json as written by lctk before the record was typed (no record_version, no backbone_provider).
OLD_RUN_JSON = {
    "lctk_version": "0.1.0", "format_version": 1, "backbone": "conv",
    "backbone_config": {"latent_dim": 32, "beta": 1.0, "input_shape": [1, 28, 28], "sigma_x": 0.1, "width": 32,
                        "hidden": 512},
    "dataset": {"name": "fashion-mnist", "data_dir": None, "options": {}, "max_examples": None, "seed": 0,
                "modality": "image", "spec": {"input_shape": [1, 28, 28]}, "attribute_names": ["tshirt", "trouser"]},
    "training": {"epochs": 8, "batch_size": 128, "lr": 0.001, "seed": 0, "checkpoint_every": 0},
    "status": "trained",
    "history": [{"epoch": 1, "loss": -70.2, "reconstruction": -131.9, "kl": 61.7, "seconds": 60.4,
                 "examples_per_second": 992.1}],
}


def write_run(folder: Path, info: dict) -> RunDir:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run.json").write_text(json.dumps(info))
    return RunDir(folder)


def test_old_run_folders_open(tmp_path):
    run = write_run(tmp_path / "run", OLD_RUN_JSON)
    record = run.record
    assert record.record_version == 1 and record.backbone_provider is None
    assert record.modality == "image" and record.dataset.name == "fashion-mnist"
    assert run.read() == {**OLD_RUN_JSON, "record_version": RECORD_VERSION, "backbone_provider": None, "source": None}
    run.write(record)
    again = json.loads(run.config_path.read_text())
    assert again["record_version"] == RECORD_VERSION and again["history"] == OLD_RUN_JSON["history"]


def test_round_trip_keeps_unknown_keys(tmp_path):
    run = write_run(tmp_path / "run", {**OLD_RUN_JSON, "labeler": {"name": "cnn", "sha256": "ab"}})
    assert run.record.extra == {"labeler": {"name": "cnn", "sha256": "ab"}}
    run.write(run.record)
    assert json.loads(run.config_path.read_text())["labeler"] == {"name": "cnn", "sha256": "ab"}
    assert RunRecord.from_dict(run.record.to_dict()) == run.record


def _with(path: str, value):
    info = json.loads(json.dumps(OLD_RUN_JSON))
    *parents, last = path.split(".")
    target = info
    for key in parents:
        target = target[key]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return info


DAMAGE = {
    "backbone-not-text": ("backbone", 5, "backbone should be text, not 5"),
    "dataset-not-object": ("dataset", [1], "dataset should be an object, not [1]"),
    "max-examples-text": ("dataset.max_examples", "ten", "dataset.max_examples should be a whole number or null"),
    "seed-float": ("dataset.seed", 1.5, "dataset.seed should be a whole number"),
    "attribute-not-text": ("dataset.attribute_names", ["a", 3], "dataset.attribute_names[1] should be text"),
    "history-not-list": ("history", {"epoch": 1}, "history should be a list"),
    "loss-text": ("history", [{"loss": "low"}], "history[0].loss should be a number"),
    "provider-wrong": ("backbone_provider", "lctk-conv", "backbone_provider should be an object or null"),
    "missing-dataset": ("dataset", KeyError, "lacks 'dataset'"),
    "missing-dataset-name": ("dataset.name", KeyError, "lacks 'dataset.name'"),
    "unknown-dataset-key": ("dataset.colour", "red", "unknown key dataset.colour"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_record_is_one_line(case, tmp_path):
    path, value, needle = DAMAGE[case]
    run = write_run(tmp_path / "run", _with(path, value))
    with pytest.raises(LctkError) as e:
        run.record
    assert needle in str(e.value) and "\n" not in str(e.value) and str(run.config_path) in str(e.value)


def test_wrong_types_in_the_cli_are_one_error_line(tiny_run, run_cli, tmp_path):
    info = json.loads((tiny_run / "run.json").read_text())
    info["dataset"]["attribute_names"] = "0,1,2"
    (tiny_run / "run.json").write_text(json.dumps(info))
    result = run_cli("sample", tiny_run, "--prior", "-n", "4", "--out", tmp_path / "s.png")
    assert result.exit_code != 0 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: ") and "dataset.attribute_names should be a list" in result.stderr
    assert not (tmp_path / "s.png").exists()


def test_resume_with_a_damaged_record_writes_nothing(tiny_run, run_cli):
    info = json.loads((tiny_run / "run.json").read_text())
    info["training"]["epochs"] = "many"
    (tiny_run / "run.json").write_text(json.dumps(info))
    before = {p.name: p.read_bytes() for p in tiny_run.iterdir() if p.is_file()}
    result = run_cli("train-vae", "--out", tiny_run, "--resume", "--epochs", "4")
    assert result.exit_code != 0 and "training.epochs should be a number" in result.stderr
    assert result.stderr.count("\n") == 1
    assert {p.name: p.read_bytes() for p in tiny_run.iterdir() if p.is_file()} == before


def test_the_backbone_provider_is_recorded_and_checked(tiny_run, run_cli, tmp_path):
    info = json.loads((tiny_run / "run.json").read_text())
    assert info["backbone_provider"]["distribution"] == "lctk-conv" and info["record_version"] == RECORD_VERSION
    info["backbone_provider"] = {"distribution": "lctk-elsewhere", "version": "2.0"}
    (tiny_run / "run.json").write_text(json.dumps(info))
    result = run_cli("sample", tiny_run, "--prior", "-n", "4", "--out", tmp_path / "s.png")
    assert result.exit_code != 0 and "from lctk-elsewhere 2.0, but 'conv' now comes from lctk-conv" in result.stderr
    assert "install lctk-elsewhere again" in result.stderr


class Twin:
    @hookimpl
    def register_backbones(self, register):
        register("conv", "lctk_conv.model:ConvVAE", help="the conv VAE again, from another distribution")


def test_a_run_never_loads_a_duplicate_name_from_another_plugin(tiny_run, fresh_plugins, run_cli, tmp_path):
    reg = fresh_plugins.add_plugin(Twin(), "lctk-twin")
    entry = reg.backbones["conv"]
    loser = entry.also[0]
    info = json.loads((tiny_run / "run.json").read_text())
    info["backbone_provider"] = {"distribution": loser, "version": ""}
    (tiny_run / "run.json").write_text(json.dumps(info))
    result = run_cli("sample", tiny_run, "--prior", "-n", "4", "--out", tmp_path / "s.png")
    assert result.exit_code != 0 and f"now comes from {entry.plugin}" in result.stderr
    assert f"uninstall {entry.plugin}, or list the distributions to load without it in LCTK_PLUGINS" in result.stderr


def test_an_incompatible_backbone_leaves_no_run_folder(fresh_plugins, run_cli, tmp_path, digits_dir):
    from tests.test_plugins import FakePlugin

    fresh_plugins.add_plugin(FakePlugin(), "fake-plugin")
    out = tmp_path / "run"
    result = run_cli("train-vae", "--backbone", "fake-linear", "--data", "idx", "--data-dir", digits_dir, "--out", out,
                     "--epochs", "1")
    assert result.exit_code != 0 and result.stderr.count("\n") == 1
    assert "backbone fake-linear cannot train on dataset idx (modality image" in result.stderr
    assert "Traceback" not in result.stderr and not out.exists()
    result = run_cli("train-vae", "--backbone", "conv", "--data", "fake-vectors", "--out", out, "--epochs", "1")
    assert result.exit_code != 0 and "conv backbone needs image data" in result.stderr
    assert not out.exists()
    assert run_cli("train-vae", "--backbone", "fake-linear", "--data", "fake-vectors", "--out", out, "--epochs", "1",
                   "--batch-size", "16").exit_code == 0
    shutil.rmtree(out)
