"""Image folders: images resized to a declared size, and an image whose header declares absurd dimensions is
skipped (with the others' warning) before it is decoded."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from lctk.util.errors import LctkError
from lctk.plugins import DataRequest
from lctk.util.progress import silent
from lctk_conv.decode import MAX_PIXELS
from lctk_conv.image_folder import load_image_folder


def png(width: int, height: int, seed: int = 0) -> bytes:
    """A real RGB PNG of ``width`` x ``height`` random pixels."""
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8), "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def claiming(width: int, height: int) -> bytes:
    """A small PNG whose header claims ``width`` x ``height`` pixels (the IHDR chunk rewritten, CRC fixed)."""
    data = bytearray(png(4, 4))
    ihdr = bytes(data[12:16]) + struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(ihdr) & 0xFFFFFFFF)
    return bytes(data)


def load(root, **options):
    return load_image_folder(DataRequest(data_dir=root, options=options, progress=silent()))


def test_images_of_any_size_become_the_declared_size(tmp_path):
    root = tmp_path / "pets"
    for i, (w, h) in enumerate([(300, 200), (40, 90), (64, 64), (17, 17)]):
        (root / ("cat" if i % 2 else "dog")).mkdir(parents=True, exist_ok=True)
        (root / ("cat" if i % 2 else "dog") / f"{i}.png").write_bytes(png(w, h, i))
    assert load(root).examples.shape == (4, 3, 64, 64)  # the documented default
    ds = load(root, size="24")
    assert ds.examples.shape == (4, 3, 24, 24) and ds.spec == {"input_shape": [3, 24, 24]}
    with pytest.raises(LctkError, match="size=5000 should be at most 1024"):
        load(root, size="5000")


def test_images_declaring_absurd_dimensions_are_skipped_before_decoding(tmp_path, capsys):
    """8,000 x 6,000 is past lctk's bound but below pillow's own (so lctk's check is what stops it); 100,000 x
    100,000 is past both. Neither is decoded (each file is under 200 bytes)."""
    root = tmp_path / "pets"
    (root / "cat").mkdir(parents=True)
    (root / "dog").mkdir()
    (root / "cat" / "a.png").write_bytes(png(20, 20, 1))
    (root / "dog" / "b.png").write_bytes(png(30, 10, 2))
    assert 8000 * 6000 > MAX_PIXELS and 8000 * 6000 < Image.MAX_IMAGE_PIXELS
    (root / "cat" / "a-huge.png").write_bytes(claiming(8000, 6000))
    (root / "cat" / "z-bomb.png").write_bytes(claiming(100_000, 100_000))
    ds = load(root, size="16")
    assert len(ds) == 2 and ds.examples.shape == (2, 3, 16, 16)
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning")]
    assert len(warnings) == 1 and "skipped 2 unreadable" in warnings[0], warnings
    assert "a-huge.png" in warnings[0] and f"8000 x 6000 pixels, more than the {MAX_PIXELS:,}" in warnings[0]
