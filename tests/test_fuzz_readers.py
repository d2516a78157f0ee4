"""Fuzzing the file readers with hypothesis: whatever the bytes (random, or a valid file with bytes changed or
cut off), a reader either returns what it read or raises LctkError (one line for the user), never anything
else. Readers: IDX images, the HDF5 latent store, safetensors weights and checkpoints, JSON, PNG inputs."""

from __future__ import annotations

import gzip
import itertools
import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from lctk.util.checkpoint import load_checkpoint, save_checkpoint
from lctk.util.errors import LctkError
from lctk.util.io import load_json, load_tensors, parse_json, parse_tensors, save_tensors
from lctk.latents import LatentStore, LatentWriter

#: Examples per fuzz test. The suite runs a fixed (derandomized) sample; a longer campaign with fresh random
#: examples: ``LCTK_FUZZ_EXAMPLES=5000 pytest tests/test_fuzz_readers.py``.
EXAMPLES = int(os.environ.get("LCTK_FUZZ_EXAMPLES", "0"))
FUZZ = settings(max_examples=EXAMPLES or 150, deadline=None, derandomize=not EXAMPLES, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
_names = itertools.count()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def write(folder: Path, data: bytes, suffix: str) -> Path:
    """``data`` in a fresh file (HDF5 keeps files open by name, so never reuse one)."""
    path = folder / f"case{next(_names)}{suffix}"
    path.write_bytes(data)
    return path


def only_lctk_errors(read, *args) -> None:
    """Call ``read(*args)``; success and LctkError are fine, anything else fails the test."""
    try:
        read(*args)
    except LctkError as e:
        assert str(e).strip() and "\n" not in str(e).strip()


edits = st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=12)


def damage(data: bytes, changes, cut: float | None, head: int | None = None) -> bytes:
    """``data`` with bytes replaced at relative positions (within the first ``head`` bytes if given, where the
    structure lives) and optionally cut off at a relative length."""
    out = bytearray(data)
    span = min(len(out), head) if head else len(out)
    for where, value in changes:
        out[int(where * span)] = value
    if cut is not None:
        out = out[:int(cut * len(out))]
    return bytes(out)


# -- IDX ------------------------------------------------------------------------------------------------------


def _read_idx(path):
    from lctk_conv.idx import read_idx

    read_idx(path)


@FUZZ
@given(st.binary(max_size=300))
def test_idx_random_bytes(folder, data):
    only_lctk_errors(_read_idx, write(folder, data, ""))
    only_lctk_errors(_read_idx, write(folder, b"\x1f\x8b" + data, ".gz"))


@FUZZ
@given(code=st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x00, 0xFF]), ndim=st.integers(0, 5),
       dims=st.lists(st.integers(0, 2**32 - 1) | st.integers(0, 6), min_size=0, max_size=5),
       payload=st.binary(max_size=200), zipped=st.booleans())
def test_idx_headers(folder, code, ndim, dims, payload, zipped):
    data = bytes([0, 0, code, ndim]) + b"".join(struct.pack(">I", d) for d in dims) + payload
    only_lctk_errors(_read_idx, write(folder, gzip.compress(data) if zipped else data, ".gz" if zipped else ""))


# -- the HDF5 latent store ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_store(folder) -> bytes:
    path = folder / "good.h5"
    gen = torch.Generator().manual_seed(0)
    with LatentWriter(path, 40, 3, ["a", "b"], "0123456789abcdef") as writer:
        writer.write(torch.randn(40, 3, generator=gen), torch.rand(40, 3, generator=gen) + 0.1,
                     torch.rand(40, 2, generator=gen) > 0.5, (torch.arange(40) % 5 == 0).to(torch.int8))
    return path.read_bytes()


def _open_and_read(path):
    with LatentStore.open(path) as store:
        store.load("train")
        store.load("test")
        store.sigma_bar()
        store.check_fingerprint(store.fingerprint)


@FUZZ
@given(st.binary(max_size=3000))
def test_latent_store_random_bytes(folder, data):
    only_lctk_errors(_open_and_read, write(folder, data, ".h5"))


@FUZZ
@given(changes=edits, cut=st.none() | st.floats(0, 1), head=st.sampled_from([None, 2048]))
def test_latent_store_damaged(folder, good_store, changes, cut, head):
    path = write(folder, damage(good_store, changes, cut, head), ".h5")
    only_lctk_errors(_open_and_read, path)
    path.unlink()


# -- safetensors, checkpoints ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_weights(folder) -> bytes:
    path = folder / "good.safetensors"
    save_tensors(path, {"w": torch.arange(12.0).reshape(3, 4), "b": torch.ones(4, dtype=torch.int64)}, {"k": "v"})
    return path.read_bytes()


@FUZZ
@given(st.binary(max_size=400))
def test_safetensors_random_bytes(folder, data):
    only_lctk_errors(load_tensors, write(folder, data, ".safetensors"))
    only_lctk_errors(parse_tensors, data)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=12)


@FUZZ
@given(header=json_values, payload=st.binary(max_size=64), length_delta=st.integers(-4, 4))
def test_safetensors_headers(folder, header, payload, length_delta):
    text = json.dumps(header).encode()
    data = struct.pack("<Q", max(0, len(text) + length_delta)) + text + payload
    only_lctk_errors(load_tensors, write(folder, data, ".safetensors"))


@FUZZ
@given(changes=edits, cut=st.none() | st.floats(0, 1), head=st.sampled_from([None, 200]))
def test_safetensors_damaged(folder, good_weights, changes, cut, head):
    only_lctk_errors(load_tensors, write(folder, damage(good_weights, changes, cut, head), ".safetensors"))


@FUZZ
@given(meta=st.text(max_size=60) | json_values.map(json.dumps))
def test_checkpoint_metadata(folder, meta):
    path = folder / f"ckpt{next(_names)}.safetensors"
    save_tensors(path, {"module.net.weight": torch.zeros(2, 2), "rng.__torch__": torch.get_rng_state()},
                 {"lctk": meta})
    net = torch.nn.Linear(2, 2, bias=False)
    state = torch.get_rng_state()
    try:
        only_lctk_errors(lambda: load_checkpoint(path, modules={"net": net},
                                                 optimizers={"adam": torch.optim.Adam(net.parameters())}))
    finally:
        torch.set_rng_state(state)


def test_checkpoint_round_trip_still_works(folder):
    net = torch.nn.Linear(2, 2)
    opt = torch.optim.Adam(net.parameters())
    net(torch.ones(1, 2)).sum().backward()
    opt.step()
    save_checkpoint(folder / "ok.safetensors", modules={"net": net}, optimizers={"adam": opt}, meta={"step": 3})
    assert load_checkpoint(folder / "ok.safetensors", modules={"net": net}, optimizers={"adam": opt}) == {"step": 3}


# -- JSON -----------------------------------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode) | json_values.map(lambda v: json.dumps(v).encode()))
def test_json_random(folder, data):
    only_lctk_errors(load_json, write(folder, data, ".json"))
    only_lctk_errors(parse_json, data)


@pytest.mark.parametrize("data", [b"[" * 100_000, b'{"a":' * 50_000, b"1" * 5000, b"", b"\xef\xbb\xbf{}", b"NaN"])
def test_json_pathological(folder, data):
    only_lctk_errors(load_json, write(folder, data, ".json"))


# -- PNG inputs (lctk transform --input) ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def good_png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16)).save(buf, format="PNG")
    return buf.getvalue()


def _read_png(path, channels):
    from lctk_conv.writer import PNGWriter

    x = PNGWriter().read_input(path, {"input_shape": [channels, 8, 8]})
    assert x.shape == (1, channels, 8, 8) and torch.isfinite(x).all()


@FUZZ
@given(changes=edits, cut=st.none() | st.floats(0, 1), channels=st.sampled_from([1, 3]))
def test_png_damaged(folder, good_png, changes, cut, channels):
    only_lctk_errors(_read_png, write(folder, damage(good_png, changes, cut), ".png"), channels)


@FUZZ
@given(st.binary(max_size=300))
def test_png_random_bytes(folder, data):
    only_lctk_errors(_read_png, write(folder, b"\x89PNG\r\n\x1a\n" + data, ".png"), 1)
