"""The IDX (MNIST-format) loader: plain and gzipped files, and corrupt files reported in one line."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from lctk.util.errors import LctkError
from lctk.plugins import DataRequest
from lctk.util.progress import silent
from lctk_conv.idx import read_idx
from lctk_conv.mnist_like import load_idx
from tests.conftest import make_digits_idx, write_idx


def load(folder, **kwargs):
    return load_idx(DataRequest(data_dir=folder, progress=silent(), **kwargs))


@pytest.mark.parametrize("compress", [False, True])
def test_digits_load(tmp_path, compress):
    folder = make_digits_idx(tmp_path / "digits", compress=compress)
    assert (folder / "train-images-idx3-ubyte.gz").exists() == compress
    ds = load(folder)
    assert ds.examples.shape == (1797, 1, 8, 8) and ds.examples.dtype == torch.uint8
    assert ds.spec == {"input_shape": [1, 8, 8]} and ds.modality == "image"
    assert ds.attribute_names == [str(i) for i in range(10)]
    assert ds.attributes.shape == (1797, 10) and ds.attributes.sum(dim=1).eq(1).all()
    assert (ds.split == 0).sum() == 1500 and (ds.split == 1).sum() == 297
    x = ds.fetch(torch.arange(5))
    assert x.dtype == torch.float32 and x.min() >= 0 and x.max() <= 1


def test_max_examples_and_class_names(tmp_path):
    folder = make_digits_idx(tmp_path / "digits")
    ds = load(folder, max_examples=100, options={"classes": "Zero,one,two,three,four,five,six,seven,eight,Nine"})
    assert len(ds) == 100 and ds.attribute_names[0] == "zero" and ds.attribute_names[-1] == "nine"
    assert (ds.split == 0).sum() == round(100 * 1500 / 1797)


def one_line(path, match):
    with pytest.raises(LctkError, match=match) as info:
        read_idx(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_bad_magic(tmp_path):
    path = tmp_path / "x-idx3-ubyte"
    path.write_bytes(b"\x12\x34\x08\x03" + bytes(100))
    one_line(path, "bad magic")
    gz = tmp_path / "y-idx3-ubyte.gz"
    gz.write_bytes(gzip.compress(b"PK\x03\x04 something else"))
    one_line(gz, "bad magic")
    broken_gzip = tmp_path / "z-idx3-ubyte.gz"
    broken_gzip.write_bytes(b"\x1f\x8b" + bytes(20))
    one_line(broken_gzip, "not a readable IDX file")


def test_truncated_data(tmp_path):
    path = write_idx(tmp_path / "t-idx3-ubyte", np.zeros((10, 8, 8), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-7])
    one_line(path, "truncated")
    head = tmp_path / "h-idx3-ubyte"
    head.write_bytes(b"\x00\x00\x08\x03\x00\x00")
    one_line(head, "incomplete header")


def test_wrong_shaped_labels(tmp_path):
    folder = make_digits_idx(tmp_path / "digits")
    write_idx(folder / "train-labels-idx1-ubyte", np.zeros((1500, 2), dtype=np.uint8))
    with pytest.raises(LctkError, match="should hold 1500 labels, got shape") as info:
        load(folder)
    assert "train-labels-idx1-ubyte" in str(info.value) and "\n" not in str(info.value)
    write_idx(folder / "train-labels-idx1-ubyte", np.zeros(1499, dtype=np.uint8))
    with pytest.raises(LctkError, match="should hold 1500 labels"):
        load(folder)


def test_missing_files(tmp_path):
    folder = make_digits_idx(tmp_path / "digits")
    (folder / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(LctkError, match="lacks t10k-labels-idx1-ubyte"):
        load(folder)
    with pytest.raises(LctkError, match="needs --data-dir"):
        load(None)
