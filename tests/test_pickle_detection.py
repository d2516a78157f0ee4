"""Pickles are refused, lctk's own safetensors never are: a safetensors file is parsed first (no code runs), and
only a file that fails to parse and looks like a pickle is called one. A safetensors file starts with its
header length (8 bytes, little-endian); lengths 640, 896, 1152 and 1408 (mod 65536) start with the bytes of a
pickle's protocol 2-5 magic. The sweeps below cover every header length mod 65536 whose first bytes could pass
for a pickle (headers are padded to multiples of 8) and a range of real backbone configurations.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save

from lctk.util.errors import LctkError
from lctk.util.io import load_tensors, looks_like_pickle, parse_tensors, save_tensors
from tests.killing import digest_tree
from tests.test_bad_inputs import Trap

WEIGHTS = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3)}


def header_length(data: bytes) -> int:
    return int.from_bytes(data[:8], "little")


def with_header_length(length: int, tensors=WEIGHTS) -> bytes:
    """A safetensors file of ``tensors`` whose header is exactly ``length`` bytes (metadata padding)."""
    base = save(tensors, metadata={"pad": ""})
    unpadded = len(base[8:8 + header_length(base)].rstrip(b" "))
    data = save(tensors, metadata={"pad": "x" * (length - unpadded)})
    assert header_length(data) == length
    return data


def test_every_header_length_that_matters_parses_as_safetensors():
    """Header lengths are multiples of 8; of the 8,192 residues mod 65536, every one whose first bytes could
    pass for a pickle's (even with a STOP opcode at the end of the file) is built and parsed, and every 16th of
    the others."""
    first = (header_length(save(WEIGHTS, metadata={"pad": ""})) + 7) // 8 * 8
    suspicious = []
    for length in range(first, first + 65536, 8):
        risky = looks_like_pickle(length.to_bytes(8, "little"), b".")
        if not risky and length % 128 != first % 128:
            continue
        if risky:
            suspicious.append(length % 65536)
        data = with_header_length(length)
        tensors, metadata = parse_tensors(data)
        assert torch.equal(tensors["w"], WEIGHTS["w"]) and metadata["pad"] == "x" * len(metadata["pad"]), length
    assert {640, 896, 1152, 1408} <= set(suspicious) and len(suspicious) > 256  # and 3 x 256 protocol-0 look-alikes


@pytest.mark.parametrize("length", [640, 896, 1152, 1408, 640 + 65536])
def test_files_with_pickle_like_header_lengths_load(length, tmp_path):
    path = tmp_path / "w.safetensors"
    path.write_bytes(with_header_length(length))
    assert path.read_bytes()[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")
    tensors, _ = load_tensors(path)
    assert torch.equal(tensors["w"], WEIGHTS["w"])


def test_backbone_configurations_save_and_load():
    """Real 28x28 conv backbones of 72 sizes (10 of them have a header of 1408 bytes, e.g. latent 8, width 16,
    hidden 128, the configuration once refused as a pickle): every one lctk saves loads again."""
    from lctk.plugins import get_registries

    cls = get_registries().backbone("conv")
    colliding = []
    for latent in (2, 4, 8, 16, 32, 64):
        for width in (8, 16, 32):
            for hidden in (64, 128, 256, 512):
                model = cls(cls.configure({"input_shape": [1, 28, 28]},
                                          {"latent_dim": latent, "width": width, "hidden": hidden}))
                data = save(model.state_dict(), metadata={"fingerprint": "0" * 16})
                if looks_like_pickle(data[:8], data[-1:]):
                    colliding.append((latent, width, hidden))
                tensors, _ = parse_tensors(data)
                assert tensors.keys() == model.state_dict().keys()
    assert (8, 16, 128) in colliding


def test_run_whose_backbone_header_looks_like_a_pickle_still_samples(tiny_run, run_cli, tmp_path):
    """The run of a user whose backbone file happens to start with 0x80 0x02: it samples as any other."""
    path = tiny_run / "backbone.safetensors"
    tensors, metadata = load_tensors(path)
    base = len(save(tensors, metadata={**metadata, "pad": ""}))
    natural = header_length(save(tensors, metadata={**metadata, "pad": ""}))
    target = next(n for n in (640, 896, 1152, 1408, 640 + 65536) if n >= natural + 8)
    unpadded = len(save(tensors, metadata={**metadata, "pad": ""})[8:8 + natural].rstrip(b" "))
    data = save(tensors, metadata={**metadata, "pad": "x" * (target - unpadded)})
    assert header_length(data) == target and data[:2].startswith(b"\x80") and base
    path.write_bytes(data)
    r = run_cli("sample", tiny_run, "--prior", "-n", "4", "--out", tmp_path / "s.png")
    assert r.exit_code == 0, r
    assert (tmp_path / "s.png").is_file()


def _pickles(marker: Path) -> dict[str, bytes]:
    trap = {"weight": Trap(marker)}
    out = {f"protocol-{p}": pickle.dumps(trap, protocol=p) for p in range(6)}
    for name, zip_format in (("torch.save-zip", True), ("torch.save-legacy", False)):
        buf = io.BytesIO()
        torch.save(trap, buf, _use_new_zipfile_serialization=zip_format)
        out[name] = buf.getvalue()
    return out


def test_every_pickle_format_is_refused_and_never_run(tmp_path):
    marker = tmp_path / "code-ran"
    for name, data in _pickles(marker).items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(data)
        before = digest_tree(tmp_path)
        for load in (lambda: load_tensors(path), lambda: parse_tensors(data)):
            with pytest.raises(LctkError, match="is a pickle") as info:
                load()
            assert "\n" not in str(info.value), name
        assert not marker.exists() and digest_tree(tmp_path) == before, name
