"""The CelebA loader on a generated 30-image fixture: shapes, attributes, split, cache, errors, CLI."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

import lctk_conv.celeba as celeba_module
import lctk_conv.decode as decode_module
from conv_fixtures import CELEBA_ATTRIBUTES, SMILING, celeba_table, write_celeba_lists
from lctk.util.errors import LctkError
from lctk.plugins import DataRequest
from lctk.util.progress import silent
from lctk_conv.celeba import load_celeba


def load(root, **kwargs):
    return load_celeba(DataRequest(data_dir=root, progress=silent(), **kwargs))


def one_line_error(root, match, **kwargs) -> str:
    with pytest.raises(LctkError, match=match) as info:
        load(root, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_shapes_names_split_and_attributes(celeba_dir):
    ds = load(celeba_dir)
    assert ds.name == "celeba" and ds.modality == "image"
    assert ds.examples.shape == (30, 3, 64, 64) and ds.examples.dtype == torch.uint8
    assert ds.spec == {"input_shape": [3, 64, 64]}
    assert len(ds.attribute_names) == 40
    assert ds.attribute_names[0] == "5-o-clock-shadow" and "smiling" in ds.attribute_names
    assert ds.attribute_names[CELEBA_ATTRIBUTES.index("Wearing_Necktie")] == "wearing-necktie"
    smiling = ds.attributes[:, ds.attribute_names.index("smiling")]
    assert smiling.tolist() == [i % 2 == 0 for i in range(30)]
    assert torch.equal(ds.attributes, torch.from_numpy(celeba_table(30) == 1))
    assert ds.split.dtype == torch.int8 and ds.split.tolist() == [0] * 20 + [1] * 10  # valid and test count as test
    x = ds.fetch(torch.arange(4))
    assert x.dtype == torch.float32 and x.shape == (4, 3, 64, 64) and 0 <= x.min() and x.max() <= 1


def test_size_and_crop_options(celeba_dir):
    ds = load(celeba_dir, options={"size": "32", "crop": "100"})
    assert ds.examples.shape == (30, 3, 32, 32) and ds.spec == {"input_shape": [3, 32, 32]}
    one_line_error(celeba_dir, "size=0", options={"size": "0"})
    one_line_error(celeba_dir, "no option colour", options={"colour": "1"})


def test_second_load_reads_the_cache(celeba_dir, monkeypatch):
    first = load(celeba_dir)
    caches = list((celeba_dir / "lctk-cache").glob("celeba-64px-crop128-*.h5"))
    assert len(caches) == 1
    with h5py.File(caches[0], "r") as f:
        assert f["images"].shape == (30, 3, 64, 64)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(celeba_module, "decode_images", no_decoding)
    second = load(celeba_dir)
    assert torch.equal(first.examples, second.examples)
    subset = load(celeba_dir, max_examples=10)  # served from the full cache too
    assert len(subset) == 10


def test_changed_file_set_invalidates_the_cache(celeba_dir):
    load(celeba_dir)
    old = {p.name for p in (celeba_dir / "lctk-cache").iterdir()}
    (celeba_dir / "img_align_celeba" / "000030.jpg").unlink()
    names = [f"{i + 1:06d}.jpg" for i in range(29)]
    write_celeba_lists(celeba_dir, names, celeba_table(30)[:29], [0] * 20 + [2] * 9)
    ds = load(celeba_dir)
    assert ds.examples.shape == (29, 3, 64, 64)
    new = {p.name for p in (celeba_dir / "lctk-cache").iterdir()}
    assert len(new) == 1 and not (new & old)  # rebuilt, and the stale cache removed


def test_max_examples_decodes_and_caches_only_those_rows(celeba_dir):
    ds = load(celeba_dir, max_examples=10, seed=3)
    assert ds.examples.shape == (10, 3, 64, 64)
    assert (ds.split == 0).sum() == 7 and (ds.split == 1).sum() == 3  # proportions of 20 train / 10 test
    again = load(celeba_dir, max_examples=10, seed=3)
    assert torch.equal(ds.examples, again.examples) and torch.equal(ds.attributes, again.attributes)
    full = load(celeba_dir)
    rows = [next(i for i in range(30) if torch.equal(full.examples[i], e)) for e in ds.examples]
    assert torch.equal(full.attributes[rows], ds.attributes)


def test_cache_falls_back_to_user_cache(celeba_dir, tmp_path, monkeypatch):
    real = celeba_module.ArrayCache.__init__

    def unwritable_local(self, *args):
        real(self, *args)
        self.folders[0] = tmp_path / "no" / "such"
        (tmp_path / "no").write_text("a file, so no folder can be made here")

    monkeypatch.setattr(celeba_module.ArrayCache, "__init__", unwritable_local)
    load(celeba_dir)
    assert not (celeba_dir / "lctk-cache").exists()
    assert len(list((tmp_path / "user-cache" / "celeba").rglob("*.h5"))) == 1


def test_parallel_decoding_matches_serial(celeba_dir, monkeypatch):
    serial = load(celeba_dir, max_examples=12)
    monkeypatch.setattr(decode_module, "MIN_PARALLEL", 0)
    monkeypatch.setattr(decode_module, "CHUNK", 4)
    parallel = load(celeba_dir, max_examples=12, seed=1, options={"workers": "2"})
    reference = load(celeba_dir)  # full set, decoded serially
    rows = [next(i for i in range(30) if torch.equal(reference.attributes[i], a) and
                 torch.equal(reference.split[i], s)) for a, s in zip(parallel.attributes, parallel.split)]
    assert torch.equal(parallel.examples, reference.examples[rows])
    assert len(serial) == 12


def test_missing_files_are_named(celeba_dir):
    (celeba_dir / "list_eval_partition.txt").unlink()
    message = one_line_error(celeba_dir, "list_eval_partition.txt is missing")
    assert "downloaded" in message and "img_align_celeba" in message
    one_line_error(celeba_dir / "nowhere", "does not exist")
    with pytest.raises(LctkError, match="needs --data-dir"):
        load(None)


def test_missing_image_is_named(celeba_dir):
    (celeba_dir / "img_align_celeba" / "000007.jpg").unlink()
    one_line_error(celeba_dir, r"000007\.jpg is missing.*downloaded")


def test_corrupt_jpeg_is_named(celeba_dir):
    (celeba_dir / "img_align_celeba" / "000005.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    one_line_error(celeba_dir, r"000005\.jpg is unreadable")
    assert not list((celeba_dir / "lctk-cache").glob("*.h5"))  # no half-built cache left behind


def test_malformed_attribute_line_is_named(celeba_dir):
    path = celeba_dir / "list_attr_celeba.txt"
    original = path.read_text().splitlines()
    lines = list(original)
    lines[6] = lines[6].rsplit(" ", 1)[0]  # one value short
    path.write_text("\n".join(lines) + "\n")
    one_line_error(celeba_dir, r"list_attr_celeba.txt line 7 is malformed")
    lines[6] = lines[5].replace("-1", " 7", 1).replace("000004", "000005")
    path.write_text("\n".join(lines) + "\n")
    one_line_error(celeba_dir, r"line 7 is malformed: value '7'")
    path.write_text("\n".join(original[:10]) + "\n")
    one_line_error(celeba_dir, "says 30 images on line 1 but lists 8")


def test_malformed_partition_line_is_named(celeba_dir):
    path = celeba_dir / "list_eval_partition.txt"
    lines = path.read_text().splitlines()
    lines[2] = "000003.jpg train"
    path.write_text("\n".join(lines) + "\n")
    one_line_error(celeba_dir, r"list_eval_partition.txt line 3 is malformed")
    path.write_text("\n".join(lines[:2]) + "\n")
    one_line_error(celeba_dir, r"no partition for 000003.jpg")


def test_train_encode_and_constrain_smiling_through_the_cli(celeba_dir, tmp_path, run_cli):
    out = tmp_path / "run"
    r = run_cli("train-vae", "--backbone", "conv", "--data", "celeba", "--data-dir", celeba_dir, "--out", out,
                "--epochs", "1", "--latent-dim", "8", "--set", "width=8", "--set", "hidden=32", "--batch-size", "8")
    assert r.exit_code == 0, r
    assert (out / "reconstructions.png").is_file() and (out / "prior-samples.png").is_file()
    r = run_cli("encode", out)
    assert r.exit_code == 0, r
    with h5py.File(out / "latents.h5", "r") as f:
        names = json.loads(f.attrs["attribute_names"])
        assert f["mu"].shape == (30, 8) and f["attributes"].shape == (30, 40)
        assert names[SMILING] == "smiling" and len(names) == 40
        assert f["attributes"][:, SMILING].tolist() == [1, 0] * 15
        assert np.array_equal(f["split"][...], [0] * 20 + [1] * 10)
    backbone = (out / "backbone.safetensors").read_bytes()
    tiny = ["--steps", "10", "--set", "classifier_steps=10", "--set", "width=16", "--set", "depth=1",
            "--set", "batch_size=16"]
    r = run_cli("add-constraint", out, "--attr", "smiling", *tiny)
    assert r.exit_code == 0, r
    info = json.loads((out / "constraints" / "smiling" / "constraint.json").read_text())
    assert [t["name"] for t in info["targets"]] == ["smiling"]
    for args in (["--attr", "Smiling"], ["--attr", "no-smiling"], ["--attr", "smiling=0", "--method", "optimize"]):
        r = run_cli("sample", out, *args, "-n", "4", "--out", tmp_path / "s.png")
        assert r.exit_code == 0, r
    r = run_cli("transform", out, "--index", "1", "--attr", "smiling", "--steps", "5", "--out", tmp_path / "t.png")
    assert r.exit_code == 0, r
    assert (out / "backbone.safetensors").read_bytes() == backbone


def test_read_rows_in_blocks(tmp_path, monkeypatch):
    import lctk_conv.cache as cache_module

    monkeypatch.setattr(cache_module, "READ_BLOCK", 4)
    data = np.arange(30 * 2, dtype=np.uint8).reshape(30, 2)
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["images"] = data
    rows = np.array([0, 1, 5, 6, 7, 8, 15, 28, 29])
    with h5py.File(tmp_path / "x.h5", "r") as f:
        assert np.array_equal(cache_module.read_rows(f["images"], rows), data[rows])


def test_centre_crop_and_channel_order(celeba_dir):
    from PIL import Image

    pixels = np.zeros((218, 178, 3), dtype=np.uint8)  # (H, W, RGB)
    top, left = (218 - 128) // 2, (178 - 128) // 2
    pixels[top:top + 128, left:left + 128] = (255, 0, 0)  # a red centre square, black around it
    Image.fromarray(pixels).save(celeba_dir / "img_align_celeba" / "000001.jpg", quality=100)
    image = load(celeba_dir).examples[0].int()  # (3, 64, 64)
    assert (image[0, 1:-1, 1:-1] > 230).all() and (image[1:, 1:-1, 1:-1] < 25).all()
