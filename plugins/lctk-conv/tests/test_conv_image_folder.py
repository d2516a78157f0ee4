"""The image-folder loader: classes from sub-folders, sizes and channels, a stable split, unreadable files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lctk.util.errors import LctkError
from lctk.plugins import DataRequest
from lctk.util.progress import silent
from lctk_conv.image_folder import load_image_folder


def save(path: Path, size=(12, 10), mode="RGB", seed=0) -> None:
    """An image of ``size`` (width, height) with random pixels."""
    rng = np.random.default_rng(seed)
    shape = (size[1], size[0]) + ((3,) if mode == "RGB" else ())
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8), mode).save(path)


def make_folder(root: Path, mode="RGB", size=(12, 10)) -> Path:
    for i in range(4):
        save(root / "Cat" / f"cat{i}.png", size, mode, seed=i)
    for i in range(5):
        save(root / "Golden Retriever" / f"dog{i}.jpg", size, mode, seed=10 + i)
    save(root / "Golden Retriever" / "puppies" / "small.bmp", size, mode, seed=20)  # nested: still a retriever
    save(root / ".thumbnails" / "x.png", size, mode)  # hidden: ignored
    (root / "Cat" / "notes.txt").write_text("not an image")
    return root


def load(root, **kwargs):
    return load_image_folder(DataRequest(data_dir=root, progress=silent(), **kwargs))


def test_classes_shapes_and_attributes(tmp_path):
    ds = load(make_folder(tmp_path / "pets"))
    assert ds.name == "image-folder" and ds.modality == "image"
    assert ds.attribute_names == ["cat", "golden-retriever"]
    assert ds.examples.shape == (10, 3, 64, 64) and ds.examples.dtype == torch.uint8  # the declared size (default)
    assert ds.spec == {"input_shape": [3, 64, 64]}
    assert ds.attributes.sum(dim=0).tolist() == [4, 6] and ds.attributes.sum(dim=1).tolist() == [1] * 10
    assert ds.split.dtype == torch.int8
    x = ds.fetch(torch.arange(3))
    assert x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1


def test_greyscale_mixed_sizes_and_options(tmp_path):
    root = make_folder(tmp_path / "grey", mode="L")
    save(root / "Cat" / "big.png", (40, 30), "L")
    ds = load(root)
    assert ds.examples.shape == (11, 1, 64, 64)  # the default size; all grey: one channel
    ds = load(root, options={"size": "16", "channels": "3"})
    assert ds.examples.shape == (11, 3, 16, 16) and ds.spec == {"input_shape": [3, 16, 16]}
    with pytest.raises(LctkError, match="channels=2 should be 1 or 3"):
        load(root, options={"channels": "2"})
    with pytest.raises(LctkError, match="test_fraction=1.5"):
        load(root, options={"test_fraction": "1.5"})


def test_split_is_a_stable_hash_of_the_path(tmp_path):
    root = make_folder(tmp_path / "pets")
    options = {"test_fraction": "0.5"}
    first = load(root, options=options)
    assert 0 < int((first.split == 1).sum()) < 10
    split_of = dict(zip(first.meta["files"], first.split.tolist()))
    assert split_of == dict(zip(load(root, options=options).meta["files"], load(root, options=options).split.tolist()))
    for i in range(5):  # more images never move the old ones
        save(root / "Cat" / f"new{i}.png", seed=100 + i)
    grown = load(root, options=options)
    assert len(grown) == 15
    assert all(split_of[f] == s for f, s in zip(grown.meta["files"], grown.split.tolist()) if f in split_of)


def test_max_examples(tmp_path):
    ds = load(make_folder(tmp_path / "pets"), max_examples=5, seed=1)
    assert len(ds) == 5 and ds.examples.shape == (5, 3, 64, 64)


def test_unreadable_files_are_skipped_with_one_warning(tmp_path, capsys):
    root = make_folder(tmp_path / "pets")
    (root / "Cat" / "broken.png").write_bytes(b"\x89PNG not really")
    good = (root / "Cat" / "cat0.png").read_bytes()
    (root / "Cat" / "truncated.png").write_bytes(good[: len(good) // 2])
    ds = load(root)
    assert len(ds) == 10
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning")]
    assert len(warnings) == 1 and "skipped 2 unreadable" in warnings[0]


def test_nothing_readable_or_no_classes_is_an_error(tmp_path):
    root = tmp_path / "junk"
    (root / "a").mkdir(parents=True)
    (root / "a" / "x.png").write_bytes(b"nope")
    with pytest.raises(LctkError, match="none of the 1 image files"):
        load(root)
    (tmp_path / "empty").mkdir()
    with pytest.raises(LctkError, match="no class sub-folders with images"):
        load(tmp_path / "empty")
    with pytest.raises(LctkError, match="does not exist"):
        load(tmp_path / "missing")


def test_train_through_the_cli(tmp_path, run_cli):
    root = make_folder(tmp_path / "pets", size=(16, 16))
    r = run_cli("train-vae", "--backbone", "conv", "--data", "image-folder", "--data-dir", root, "--out",
                tmp_path / "run", "--epochs", "1", "--latent-dim", "4", "--set", "width=4", "--set", "hidden=16",
                "--batch-size", "4")
    assert r.exit_code == 0, r
