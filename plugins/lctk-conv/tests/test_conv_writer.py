"""The PNG writer: grid sizes, before/after pairs, row labels, reading a user's image back."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lctk.util.errors import LctkError
from lctk_conv.writer import PAD, PNGWriter, grid


def test_grid_layout():
    images = torch.rand(10, 3, 8, 6)  # (B, C, H, W)
    mosaic = grid(images, columns=4)
    assert mosaic.shape == (3 * (8 + PAD), 4 * (6 + PAD), 3) and mosaic.dtype == np.uint8
    assert (mosaic[-(8 + PAD):, -(6 + PAD):] == 255).all()  # the two missing cells stay white


def test_batch_png_size(tmp_path):
    paths = PNGWriter().write_batch(torch.rand(10, 1, 8, 8), tmp_path / "grid.png", columns=5)
    assert paths == [tmp_path / "grid.png"]
    with Image.open(paths[0]) as img:
        scale = 96 // 8
        assert img.size == (5 * (8 + PAD) * scale, 2 * (8 + PAD) * scale) and img.mode == "L"
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, nothing left over


def test_labelled_rows_widen_the_image(tmp_path):
    writer = PNGWriter()
    plain = writer.write_batch(torch.rand(4, 3, 16, 16), tmp_path / "plain.png", columns=2)[0]
    labelled = writer.write_batch(torch.rand(4, 3, 16, 16), tmp_path / "labelled.png", columns=2,
                                  labels=["smiling", "eyeglasses"])[0]
    with Image.open(plain) as a, Image.open(labelled) as b:
        assert b.height == a.height and b.width > a.width and b.mode == "RGB"


def test_pairs_image(tmp_path):
    before, after = torch.zeros(4, 3, 8, 8), torch.ones(4, 3, 8, 8)
    path = PNGWriter().write_pairs(before, after, tmp_path / "pairs.png")[0]
    with Image.open(path) as img:
        scale = 96 // 8
        pixels = np.asarray(img)
    assert pixels.shape == (2 * (8 + PAD) * scale, 4 * (8 + PAD) * scale, 3)  # 2 pairs per row, 2 rows
    cell = (8 + PAD) * scale
    inner = slice(PAD * scale, cell - PAD * scale)
    assert (pixels[inner, inner] == 0).all()  # "before" first
    assert (pixels[inner, cell:][:, inner] == 255).all()  # then "after"


def test_read_input_round_trip(tmp_path):
    Image.fromarray(np.full((20, 30, 3), 200, dtype=np.uint8)).save(tmp_path / "face.png")
    x = PNGWriter().read_input(tmp_path / "face.png", {"input_shape": [3, 16, 16]})
    assert x.shape == (1, 3, 16, 16) and torch.allclose(x, torch.full_like(x, 200 / 255))
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(LctkError, match="not a readable image"):
        PNGWriter().read_input(tmp_path / "bad.png", {"input_shape": [1, 8, 8]})
