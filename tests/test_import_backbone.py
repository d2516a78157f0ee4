"""`lctk import-backbone` with an in-process importer plugin (register_importers): format detection, the
run folder it makes, the commands after it, and the guard against source files that change."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from lctk import hookimpl
from lctk.interfaces import Backbone, BackboneConfig, Decoder, Encoder, Importer, gaussian_log_likelihood
from lctk.util.io import load_tensors, save_json, save_tensors
from tests.importing_helpers import refused, run_the_pipeline, tree_digests


@dataclasses.dataclass
class FlatConfig(BackboneConfig):
    input_shape: tuple[int, ...] = (1, 8, 8)
    latent_dim: int = 3


class FlatEncoder(Encoder):
    def __init__(self, c: FlatConfig):
        super().__init__()
        self.net = nn.Linear(64, 2 * c.latent_dim)

    def forward(self, x):
        mu, s = self.net(x.flatten(1)).chunk(2, dim=1)  # (B, D) each
        return mu, torch.nn.functional.softplus(s) + 1e-3


class FlatDecoder(Decoder):
    def __init__(self, c: FlatConfig):
        super().__init__()
        self.net, self.shape = nn.Linear(c.latent_dim, 64), tuple(c.input_shape)

    def forward(self, z, x=None):
        return torch.sigmoid(self.net(z)).reshape(len(z), *self.shape)  # (B, 1, 8, 8)

    def log_likelihood(self, x, params):
        return gaussian_log_likelihood(x, params, 0.1)

    def generate(self, z, *, temperature=0.0, generator=None):
        return self.forward(z)


class FlatVAE(Backbone):
    config_class = FlatConfig

    def __init__(self, config):
        super().__init__(config)
        self.encoder, self.decoder = FlatEncoder(config), FlatDecoder(config)


class FlatImporter(Importer):
    """flat.json + flat.safetensors."""

    def detect(self, path: Path) -> bool:
        return (path / "flat.json").is_file()

    def files(self, path: Path) -> list[Path]:
        return [path / "flat.json", path / "flat.safetensors"]

    def load(self, path: Path, data_spec) -> Backbone:
        config = FlatConfig(**json.loads((path / "flat.json").read_text()))
        model = FlatVAE(config)
        model.load_state_dict(load_tensors(path / "flat.safetensors", what="flat weights")[0])
        return model


class OtherImporter(Importer):
    """Claims folders holding other.txt."""

    def detect(self, path: Path) -> bool:
        return (path / "other.txt").is_file()

    def load(self, path: Path, data_spec) -> Backbone:
        raise AssertionError("never loaded in these tests")


class ImporterPlugin:
    @hookimpl
    def register_importers(self, register):
        register("flat", FlatImporter(), help="flat.json + flat.safetensors")
        register("other", OtherImporter(), help="other.txt")


@pytest.fixture
def importer_plugin(fresh_plugins):
    fresh_plugins.add_plugin(ImporterPlugin(), "importer-plugin")
    yield fresh_plugins
    fresh_plugins.remove_plugin("importer-plugin")


def write_flat(folder: Path, latent_dim: int = 3, shape=(1, 8, 8)) -> Path:
    folder.mkdir(parents=True)
    torch.manual_seed(0)
    model = FlatVAE(FlatConfig(latent_dim=latent_dim, input_shape=shape))
    save_json(folder / "flat.json", {"latent_dim": latent_dim, "input_shape": list(shape)})
    save_tensors(folder / "flat.safetensors", model.state_dict())
    return folder


def test_import_then_every_command(importer_plugin, digits_dir, tmp_path, run_cli):
    model = write_flat(tmp_path / "model")
    before = tree_digests(model)
    run = tmp_path / "run"
    r = run_cli("import-backbone", model, "--data", "idx", "--data-dir", digits_dir, "--out", run)
    assert r.exit_code == 0, r
    info = json.loads((run / "run.json").read_text())
    assert info["source"]["format"] == "flat" and info["source"]["path"] == str(model.absolute())
    assert set(info["source"]["files"]) == {"flat.json", "flat.safetensors"}
    assert info["backbone_config"]["latent_dim"] == 3 and not (run / "backbone.safetensors").exists()
    assert (run / "reconstructions.png").is_file() and (run / "prior-samples.png").is_file()
    run_the_pipeline(run_cli, run, tmp_path, "3")
    assert tree_digests(model) == before
    # the imported model cannot be "resumed": lctk never trains it
    refused(run_cli("train-vae", "--out", run, "--resume"), "imported", "nothing to resume")


def test_a_changed_or_missing_source_file_stops_every_command(importer_plugin, digits_dir, tmp_path, run_cli):
    model = write_flat(tmp_path / "model")
    run = tmp_path / "run"
    assert run_cli("import-backbone", model, "--data", "idx", "--data-dir", digits_dir, "--out", run).exit_code == 0
    weights = model / "flat.safetensors"
    tensors = load_tensors(weights)[0]
    tensors["encoder.net.bias"] = tensors["encoder.net.bias"] + 1
    save_tensors(weights, tensors)
    state = tree_digests(run)
    refused(run_cli("encode", run), "flat.safetensors", "changed since the import", "import the model again")
    refused(run_cli("sample", run, "--prior", "-n", "2", "--out", tmp_path / "p.png"), "changed since the import")
    weights.unlink()
    refused(run_cli("encode", run), "flat.safetensors", "gone")
    assert tree_digests(run) == state and not (tmp_path / "p.png").exists()


def test_format_detection_and_its_errors(importer_plugin, digits_dir, tmp_path, run_cli):
    empty = tmp_path / "empty"
    empty.mkdir()
    line = refused(run_cli("import-backbone", empty, "--data", "idx", "--data-dir", digits_dir, "--out", tmp_path / "r"),
                   "no known model format", "flat (flat.json + flat.safetensors)", "other", "--format")
    assert "\n" not in line
    both = write_flat(tmp_path / "both")
    (both / "other.txt").write_text("x")
    refused(run_cli("import-backbone", both, "--data", "idx", "--data-dir", digits_dir, "--out", tmp_path / "r"),
            "several formats", "flat, other", "--format")
    assert run_cli("import-backbone", both, "--format", "flat", "--data", "idx", "--data-dir", digits_dir,
                   "--out", tmp_path / "r").exit_code == 0
    refused(run_cli("import-backbone", both, "--format", "nope", "--data", "idx", "--data-dir", digits_dir,
                    "--out", tmp_path / "r2"), "unknown model format 'nope'", "flat, other")
    refused(run_cli("import-backbone", tmp_path / "missing", "--data", "idx", "--out", tmp_path / "r3"), "does not exist")
    refused(run_cli("import-backbone", both, "--out", tmp_path / "r4"), "--data")
    refused(run_cli("import-backbone", both, "--data", "idx", "--data-dir", digits_dir, "--out", tmp_path / "r"),
            "already exists")
    assert not any((tmp_path / name).exists() for name in ("r2", "r3", "r4"))


def test_a_model_for_other_data_is_refused_before_any_file_is_written(importer_plugin, digits_dir, tmp_path, run_cli):
    model = write_flat(tmp_path / "model", shape=(1, 4, 16))
    before = tree_digests(model)
    refused(run_cli("import-backbone", model, "--data", "idx", "--data-dir", digits_dir, "--out", tmp_path / "run"),
            "outputs examples of shape (1, 4, 16)", "(1, 8, 8)")
    assert not (tmp_path / "run").exists() and tree_digests(model) == before


def test_plugins_lists_importers(importer_plugin, run_cli):
    rows = {row["name"]: row for row in json.loads(run_cli("plugins", "--json").stdout)}
    assert rows["importer-plugin"]["provides"]["importers"] == ["flat", "other"]
