"""Bad input is refused: every case below ends with exactly one ``error:`` line on stderr (the skipped plugin:
one ``warning:`` line), a non-zero exit, no traceback, and every good file exactly as it was.

docs/reliability.md lists the cases; keep the two in step.
"""

from __future__ import annotations

import gzip
import pickle
import shutil
import struct
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from lctk import hookimpl
from lctk.interfaces import InMemoryDataset
from tests.conftest import TINY_VAE
from tests.killing import digest_tree

TINY_CONSTRAINT = ["--steps", "20", "--set", "classifier_steps=20", "--set", "width=16", "--set", "depth=1",
                   "--set", "batch_size=32"]
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def refused(result, *needles: str, strict: bool = True) -> str:
    """Assert a one-line refusal: non-zero exit, one ``error:`` line (the last one; with ``strict`` the only
    line on stderr), no traceback; return that line after checking it mentions each of ``needles``."""
    assert result.exit_code != 0, result
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    if strict:
        assert lines == errors, result.stderr
    assert "Traceback" not in result.output and "Traceback" not in result.stderr
    for needle in needles:
        assert needle.lower() in errors[0].lower(), (needle, errors[0])
    return errors[0]


@pytest.fixture
def unchanged():
    """``watch(folder)`` records every file of ``folder``; after the test each must be byte-identical, and new
    files may only be work in progress (inside a hidden ``.NAME.partial`` folder that a re-run resumes)."""
    watched: list[tuple[Path, dict]] = []

    def watch(folder: Path) -> Path:
        watched.append((folder, digest_tree(folder)))
        return folder
    yield watch
    for folder, before in watched:
        after = digest_tree(folder)
        assert {k: after.get(k) for k in before} == before, f"files in {folder} changed"
        new = [k for k in after if k not in before and not any(p.endswith(".partial") for p in k.split("/")[:-1])]
        assert not new, f"new files in {folder}: {new}"


# -- IDX image files -----------------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    dtype = {0x08: np.uint8, 0x0D: ">f4"}[code]
    return bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape) + \
        array.astype(dtype).tobytes()


def _bad_magic(d: Path):
    f = d / IDX_FILES[0]
    f.write_bytes(b"\x12\x34" + f.read_bytes()[2:])


def _truncated(d: Path):
    f = d / IDX_FILES[0]
    f.write_bytes(f.read_bytes()[:-1000])


def _truncated_header(d: Path):
    (d / IDX_FILES[0]).write_bytes(bytes([0, 0, 8, 3, 0, 0]))


def _flat_images(d: Path):
    (d / IDX_FILES[0]).write_bytes(idx_bytes(np.zeros((1500, 64))))


def _too_few_labels(d: Path):
    (d / IDX_FILES[1]).write_bytes(idx_bytes(np.zeros(1000)))


def _corrupt_gzip(d: Path):
    (d / IDX_FILES[0]).unlink()
    (d / (IDX_FILES[0] + ".gz")).write_bytes(gzip.compress(np.random.default_rng(0).bytes(5000))[:200])


def _missing_file(d: Path):
    (d / IDX_FILES[3]).unlink()


def _no_images(d: Path):
    for name, shape in zip(IDX_FILES, [(0, 8, 8), (0,), (0, 8, 8), (0,)]):
        (d / name).write_bytes(idx_bytes(np.zeros(shape)))


def _float_images(d: Path):
    images = np.full((1500, 8, 8), np.nan)
    (d / IDX_FILES[0]).write_bytes(idx_bytes(images, 0x0D))


def _sizes_differ(d: Path):
    (d / IDX_FILES[2]).write_bytes(idx_bytes(np.zeros((297, 9, 9))))


IDX_CASES = {
    "bad-magic": (_bad_magic, "not an idx file"),
    "truncated-data": (_truncated, "truncated"),
    "truncated-header": (_truncated_header, "truncated"),
    "wrong-shape-images": (_flat_images, "n x h x w"),
    "labels-do-not-match-images": (_too_few_labels, "labels"),
    "corrupt-gzip": (_corrupt_gzip, "not a readable idx"),
    "missing-file": (_missing_file, "lacks t10k-labels"),
    "empty-dataset": (_no_images, "no images"),
    "float-pixels": (_float_images, "expected unsigned bytes"),
    "train-test-sizes-differ": (_sizes_differ, "differ in size"),
}


@pytest.mark.parametrize("case", list(IDX_CASES))
def test_bad_idx_files(case, tmp_path, digits_dir, run_cli, unchanged):
    data = tmp_path / "data"
    shutil.copytree(digits_dir, data)
    damage, needle = IDX_CASES[case]
    damage(data)
    unchanged(data)
    out = tmp_path / "run"
    r = run_cli("train-vae", "--backbone", "conv", "--data", "idx", "--data-dir", data, "--out", out, *TINY_VAE)
    refused(r, needle)
    assert not out.exists()


# -- the HDF5 latent store ------------------------------------------------------------------------------------


def _garbage(path: Path):
    path.write_bytes(np.random.default_rng(0).bytes(4096))


def _truncate_h5(path: Path):
    path.write_bytes(path.read_bytes()[:2000])


def _edit_h5(edit):
    def damage(path: Path):
        with h5py.File(path, "r+") as f:
            edit(f)
    return damage


def _wrong_sigma(f):
    del f["sigma"]
    f.create_dataset("sigma", data=np.ones((f["mu"].shape[0], f["mu"].shape[1] + 1), dtype="f4"))


def _nan_mu(f):
    mu = f["mu"][...]
    mu[3, 0] = np.nan
    f["mu"][...] = mu


LATENT_CASES = {
    "garbage": (_garbage, "corrupt"),
    "truncated": (_truncate_h5, "latent store"),
    "wrong-shape": (_edit_h5(_wrong_sigma), "inconsistent shapes"),
    "unfinished": (_edit_h5(lambda f: f.attrs.__setitem__("complete", False)), "incomplete"),
    "other-backbone": (_edit_h5(lambda f: f.attrs.__setitem__("fingerprint", "0123456789abcdef")),
                       "encoded by another backbone"),
    "nan-values": (_edit_h5(_nan_mu), "nan"),
    "newer-format": (_edit_h5(lambda f: f.attrs.__setitem__("format_version", 99)), "format 99"),
    "missing": (lambda path: path.unlink(), "lctk encode"),
}


@pytest.mark.parametrize("case", list(LATENT_CASES))
def test_bad_latent_store(case, tiny_run, run_cli, unchanged):
    damage, needle = LATENT_CASES[case]
    damage(tiny_run / "latents.h5")
    unchanged(tiny_run)
    refused(run_cli("add-constraint", tiny_run, "--attr", "3", *TINY_CONSTRAINT), needle)


# -- melodies: ABC and MIDI folders (the lctk-lstm readers) ---------------------------------------------------


def _has_melody_plugin() -> bool:
    from lctk.plugins import get_registries

    return "abc-folder" in get_registries().datasets and "midi-folder" in get_registries().datasets


MIDI_HEADER = b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0"
MIDI_TRACK = (b"\x00\x90\x3c\x50\x83\x60\x80\x3c\x00" * 8) + b"\x00\xff\x2f\x00"
GOOD_MIDI = MIDI_HEADER + b"MTrk" + struct.pack(">I", len(MIDI_TRACK)) + MIDI_TRACK

MELODY_CASES = {
    "abc-malformed": ("abc-folder", "tune.abc", b"X:1\nT:broken\nM:4/4\nK:C\n[CEG [ceg (3abc | ||| ]]]\n", "no 2-bar"),
    "abc-binary": ("abc-folder", "tune.abc", b"\xff\xfe\x00\x81garbage\x00\x00", "no 2-bar"),
    "abc-empty-folder": ("abc-folder", None, b"", "no abc files"),
    "midi-corrupt": ("midi-folder", "tune.mid", b"MThd this is not really midi", "no 2-bar"),
    "midi-truncated": ("midi-folder", "tune.mid", GOOD_MIDI[:30], "no 2-bar"),
    "midi-empty-folder": ("midi-folder", None, b"", "no .mid"),
}


@pytest.mark.parametrize("case", list(MELODY_CASES))
def test_bad_melody_files(case, tmp_path, run_cli, unchanged, monkeypatch):
    if not _has_melody_plugin():
        pytest.skip("the melody plugin lctk-lstm is not installed")
    monkeypatch.setenv("LCTK_CACHE", str(tmp_path / "cache"))
    dataset, name, content, needle = MELODY_CASES[case]
    data = tmp_path / "melodies"
    data.mkdir()
    if name:
        (data / name).write_bytes(content)
    unchanged(data)
    out = tmp_path / "run"
    r = run_cli("train-vae", "--backbone", "lstm", "--data", dataset, "--data-dir", data, "--out", out)
    refused(r, needle, strict=False)  # the reader reports progress and skipped files before the error
    assert not out.exists()


# -- images ---------------------------------------------------------------------------------------------------


def png_bytes() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(buf, format="PNG")
    return buf.getvalue()


INPUT_CASES = {
    "png-garbage": (b"\x89PNG\r\n\x1a\n" + b"\x00" * 50, "not a readable image"),
    "png-truncated": (png_bytes()[:40], "not a readable image"),
    "text-posing-as-png": (b"hello, I am not a picture\n", "not a readable image"),
    "missing-file": (None, "does not exist"),
}


@pytest.mark.parametrize("case", list(INPUT_CASES))
def test_bad_transform_input(case, tmp_path, tiny_run, run_cli, unchanged):
    content, needle = INPUT_CASES[case]
    picture = tmp_path / "input.png"
    if content is not None:
        picture.write_bytes(content)
    unchanged(tiny_run)
    r = run_cli("transform", tiny_run, "--input", picture, "--attr", "3", "--out", tmp_path / "out.png")
    refused(r, needle)
    assert not (tmp_path / "out.png").exists()


def test_image_folder_of_unreadable_images(tmp_path, run_cli, unchanged):
    root = tmp_path / "images"
    (root / "cats").mkdir(parents=True)
    (root / "cats" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (root / "cats" / "b.png").write_bytes(png_bytes()[:30])
    unchanged(root)
    r = run_cli("train-vae", "--backbone", "conv", "--data", "image-folder", "--data-dir", root,
                "--out", tmp_path / "run")
    refused(r, "could be read", strict=False)  # progress lines come first when not on a terminal
    assert not (tmp_path / "run").exists()


def test_image_folder_without_images(tmp_path, run_cli):
    root = tmp_path / "images"
    (root / "cats").mkdir(parents=True)
    (root / "cats" / "notes.txt").write_text("no pictures here")
    refused(run_cli("train-vae", "--backbone", "conv", "--data", "image-folder", "--data-dir", root,
                    "--out", tmp_path / "run"), "no class sub-folders with images")


# -- data a plugin delivers: NaN, nothing ---------------------------------------------------------------------


class OddData:
    """A dataset plugin whose data is broken: NaN in one example, or no examples at all."""

    @staticmethod
    def _images(n: int) -> torch.Tensor:
        return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(0))  # (n, 1, 8, 8)

    @hookimpl
    def register_datasets(self, register):
        def nan_data(request):
            x = self._images(200)
            x[37, 0, 4, 4] = float("nan")
            return InMemoryDataset("nan-data", "image", x, torch.zeros(200, 1, dtype=torch.bool), ["a"],
                                   torch.zeros(200, dtype=torch.int8), {"input_shape": [1, 8, 8]})

        def no_data(request):
            return InMemoryDataset("no-data", "image", self._images(0), torch.zeros(0, 1, dtype=torch.bool), ["a"],
                                   torch.zeros(0, dtype=torch.int8), {"input_shape": [1, 8, 8]})

        register("nan-data", nan_data, modality="image")
        register("no-data", no_data, modality="image")


@pytest.mark.parametrize("data,needle", [("nan-data", "example 37 of dataset nan-data holds nan"),
                                         ("no-data", "has no examples")])
def test_broken_plugin_data(data, needle, tmp_path, run_cli, fresh_plugins):
    fresh_plugins.add_plugin(OddData(), "odd-data")
    out = tmp_path / "run"
    r = run_cli("train-vae", "--backbone", "conv", "--data", data, "--out", out, *TINY_VAE, "--batch-size", "200")
    refused(r, needle)
    if data == "no-data":
        assert not out.exists()
    else:  # refused at the first batch holding it: the run folder holds no checkpoint of a NaN-trained model
        assert not (out / "checkpoint.safetensors").exists() and not (out / "backbone.safetensors").exists()


# -- names that do not exist ----------------------------------------------------------------------------------


def test_unknown_attribute(tiny_run, run_cli, unchanged):
    unchanged(tiny_run)
    refused(run_cli("add-constraint", tiny_run, "--attr", "smiling", *TINY_CONSTRAINT), "smiling")


def test_unknown_rule(tiny_run, run_cli, unchanged):
    unchanged(tiny_run)
    refused(run_cli("add-constraint", tiny_run, "--rule", "sparkle=3", *TINY_CONSTRAINT), "rule")


def test_unknown_backbone(tmp_path, digits_dir, run_cli):
    r = run_cli("train-vae", "--backbone", "transformer", "--data", "idx", "--data-dir", digits_dir,
                "--out", tmp_path / "run")
    refused(r, "unknown backbone 'transformer'", "conv")
    assert not (tmp_path / "run").exists()


def test_unknown_dataset(tmp_path, run_cli):
    r = run_cli("train-vae", "--backbone", "conv", "--data", "imagenet", "--out", tmp_path / "run")
    refused(r, "unknown dataset 'imagenet'", "fashion-mnist")
    assert not (tmp_path / "run").exists()


def test_unknown_constraint_setting(tiny_run, run_cli, unchanged):
    unchanged(tiny_run)
    refused(run_cli("add-constraint", tiny_run, "--attr", "3", "--set", "wdith=3"), "wdith")


def test_missing_constraint(tiny_run, run_cli, tmp_path, unchanged):
    unchanged(tiny_run)
    refused(run_cli("sample", tiny_run, "--attr", "3", "--out", tmp_path / "s.png"), "add-constraint")
    assert not (tmp_path / "s.png").exists()


# -- run folders: foreign, damaged, from other versions -------------------------------------------------------


def _set_format(version):
    def damage(run: Path):
        import json

        info = json.loads((run / "run.json").read_text())
        info["format_version"] = version
        (run / "run.json").write_text(json.dumps(info))
    return damage


RUN_CASES = {
    "from-newer-lctk": (_set_format(2), "upgrade lctk"),
    "from-older-lctk": (_set_format(0), "version that wrote it"),
    "run-json-not-json": (lambda run: (run / "run.json").write_text('{"backbone": "conv", '), "not valid json"),
    "run-json-not-utf8": (lambda run: (run / "run.json").write_bytes(b"\xff\xfe{}"), "not valid json"),
    "weights-truncated": (lambda run: (run / "backbone.safetensors").write_bytes(
        (run / "backbone.safetensors").read_bytes()[:300]), "corrupt or not safetensors"),
    "weights-do-not-fit": (lambda run: _set_config(run, "latent_dim", 9), "do not fit"),
    "not-a-run": (lambda run: (run / "run.json").unlink(), "not an lctk run"),
}


def _set_config(run: Path, key, value):
    import json

    info = json.loads((run / "run.json").read_text())
    info["backbone_config"][key] = value
    (run / "run.json").write_text(json.dumps(info))


@pytest.mark.parametrize("case", list(RUN_CASES))
def test_bad_run_folder(case, tiny_run, run_cli, tmp_path, unchanged):
    damage, needle = RUN_CASES[case]
    damage(tiny_run)
    unchanged(tiny_run)
    refused(run_cli("sample", tiny_run, "--prior", "-n", "4", "--out", tmp_path / "s.png"), needle)
    assert not (tmp_path / "s.png").exists()


def test_run_folder_does_not_exist(tmp_path, run_cli):
    refused(run_cli("encode", tmp_path / "nowhere"), "does not exist", "train-vae")
    assert not (tmp_path / "nowhere").exists()


def test_resume_with_other_settings(tiny_run, run_cli, unchanged):
    unchanged(tiny_run)
    refused(run_cli("train-vae", "--out", tiny_run, "--resume", "--latent-dim", "16"), "differs")


def test_damaged_constraint_description(tiny_run, run_cli, tmp_path):
    assert run_cli("add-constraint", tiny_run, "--attr", "3", *TINY_CONSTRAINT).exit_code == 0
    (tiny_run / "constraints" / "3" / "constraint.json").write_text('{"name": "3", "format_version": 1}')
    with_constraint = digest_tree(tiny_run)
    refused(run_cli("sample", tiny_run, "--attr", "3", "--out", tmp_path / "s.png"), "damaged")
    assert digest_tree(tiny_run) == with_constraint


# -- pickles posing as weights: refused, never run ------------------------------------------------------------


class Trap:
    """Unpickling this creates a file: proof that a pickle was loaded (and code run)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("how", ["pickle", "torch.save"])
@pytest.mark.parametrize("target", ["backbone.safetensors", "checkpoint.safetensors"])
def test_pickle_posing_as_weights(how, target, tiny_run, run_cli, tmp_path, unchanged):
    marker = tmp_path / "code-ran"
    path = tiny_run / target
    if how == "pickle":
        path.write_bytes(pickle.dumps({"weight": Trap(marker)}, protocol=4))
    else:
        torch.save({"weight": Trap(marker)}, path)
    unchanged(tiny_run)
    if target == "backbone.safetensors":
        r = run_cli("sample", tiny_run, "--prior", "-n", "4", "--out", tmp_path / "s.png")
    else:
        r = run_cli("train-vae", "--out", tiny_run, "--resume", "--epochs", "4")
    refused(r, "pickle", "never loads")
    assert not marker.exists()


# -- plugins that break ---------------------------------------------------------------------------------------


def test_plugin_that_raises_on_import_is_skipped(tmp_path, run_cli, fresh_plugins, monkeypatch):
    from importlib import metadata

    (tmp_path / "lctk_explodes.py").write_text("raise RuntimeError('this plugin is broken on purpose')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    real = metadata.entry_points

    def entry_points(**kwargs):
        found = list(real(**kwargs))
        if kwargs.get("group") == "lctk":
            found.append(metadata.EntryPoint("lctk-explodes", "lctk_explodes", "lctk"))
        return found

    monkeypatch.setattr("lctk.plugins.metadata.entry_points", entry_points)
    r = run_cli("plugins")
    assert r.exit_code == 0, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: plugin lctk-explodes failed to load"), r.stderr
    assert "skipped" in lines[0] and "Traceback" not in r.output
    assert "lctk-conv" in r.stdout  # everything else still works


# -- a full disk while writing: the previous good file stays --------------------------------------------------


def _full_disk_after(monkeypatch, target: str, keep: int = 100):
    """Make lctk's safetensors writes of files named ``target`` write ``keep`` bytes, then fail with ENOSPC."""
    import errno

    import lctk.util.io

    real = lctk.util.io.save_file

    def save_file(tensors, filename, metadata=None):
        if Path(filename).name.startswith(f".{target}."):
            real(tensors, filename, metadata=metadata)
            data = Path(filename).read_bytes()
            Path(filename).write_bytes(data[:keep])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(tensors, filename, metadata=metadata)

    monkeypatch.setattr(lctk.util.io, "save_file", save_file)


def test_full_disk_while_retraining_a_constraint(tiny_run, run_cli, monkeypatch):
    assert run_cli("add-constraint", tiny_run, "--attr", "3", *TINY_CONSTRAINT).exit_code == 0
    good = digest_tree(tiny_run / "constraints" / "3")
    backbone = digest_tree(tiny_run)["backbone.safetensors"]
    _full_disk_after(monkeypatch, "weights.safetensors")
    r = run_cli("add-constraint", tiny_run, "--attr", "3", *TINY_CONSTRAINT, "--seed", "1", "--force")
    refused(r, "disk full", "previous file was kept", strict=False)  # after the progress lines
    assert digest_tree(tiny_run / "constraints" / "3") == good
    assert digest_tree(tiny_run)["backbone.safetensors"] == backbone
    assert not [p for p in (tiny_run / "constraints").rglob("*.tmp")]


def test_full_disk_while_checkpointing(tiny_run, run_cli, monkeypatch):
    before = digest_tree(tiny_run)
    _full_disk_after(monkeypatch, "checkpoint.safetensors")
    r = run_cli("train-vae", "--out", tiny_run, "--resume", "--epochs", "4", "--checkpoint-every", "1")
    refused(r, "disk full", strict=False)  # after the progress lines
    after = digest_tree(tiny_run)
    for name in ("checkpoint.safetensors", "backbone.safetensors", "latents.h5"):
        assert after[name] == before[name], name
    assert not list(tiny_run.glob(".*.tmp"))


def test_full_disk_while_encoding(tiny_run, run_cli, monkeypatch):
    import errno

    from lctk.latents import LatentWriter

    before = digest_tree(tiny_run)

    def write(self, *args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(LatentWriter, "write", write)
    refused(run_cli("encode", tiny_run, "--force"), "disk full", "latents.h5 was left as it was")
    assert digest_tree(tiny_run)["latents.h5"] == before["latents.h5"]


# -- a one-process command started under torchrun --------------------------------------------------------------


def test_one_process_command_under_torchrun(tiny_run, run_cli, monkeypatch, unchanged):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    unchanged(tiny_run)
    refused(run_cli("add-constraint", tiny_run, "--attr", "3"), "runs in one process", "without torchrun")


def test_no_source_file_unpickles():
    """lctk and its plugins never unpickle: torch.load only with weights_only=True, no pickle/dill/joblib
    loads, no numpy allow_pickle (tests may build pickles to prove they are refused)."""
    import re

    root = Path(__file__).resolve().parents[1]
    sources = [p for folder in ("lctk", "plugins", "examples") for p in (root / folder).rglob("*.py")
               if "tests" not in p.relative_to(root).parts]
    offenders = []
    for path in sources:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            code = line.split("#")[0]
            if (re.search(r"\btorch\.load\(", code) and "weights_only=True" not in code) \
                    or re.search(r"\b(c?[Pp]ickle|dill|joblib|shelve)\.(loads?|open|Unpickler)\b", code) \
                    or "allow_pickle=True" in code:
                offenders.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    assert sources and not offenders, offenders
