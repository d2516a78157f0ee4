"""Fixtures of the diffusers importer's tests: a randomly initialised tiny AutoencoderKL saved with
save_pretrained, and 28x28 digits. (Not a conftest.py: the plugins' test folders share the module name
``conftest``; test modules import these fixtures instead.)"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

try:
    import tests.conftest  # noqa: F401  (the repository root is on sys.path under `python -m pytest`)
except ModuleNotFoundError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from tests.importing_helpers import make_digits28_idx  # noqa: E402

TINY_KL = dict(in_channels=1, out_channels=1, down_block_types=("DownEncoderBlock2D",) * 3,
               up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(8, 16, 16), layers_per_block=1,
               latent_channels=2, norm_num_groups=8, sample_size=28, scaling_factor=0.5)


def save_autoencoder(folder: Path, safe: bool = True, **changes) -> Path:
    """A random tiny AutoencoderKL (seed 0) saved with save_pretrained into ``folder``."""
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    AutoencoderKL(**{**TINY_KL, **changes}).save_pretrained(str(folder), safe_serialization=safe)
    return folder


@pytest.fixture(scope="session")
def digits28(tmp_path_factory) -> Path:
    """300 training + 100 test digits at 28x28 as IDX files."""
    return make_digits28_idx(tmp_path_factory.mktemp("digits28"))


@pytest.fixture(scope="session")
def autoencoder(tmp_path_factory) -> Path:
    """A tiny AutoencoderKL folder: config.json + diffusion_pytorch_model.safetensors."""
    return save_autoencoder(tmp_path_factory.mktemp("diffusers") / "tiny-kl")
