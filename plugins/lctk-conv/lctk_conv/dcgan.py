"""A DCGAN generator for images (Radford et al., 2016) as a generator-only lctk backbone, and its file format.

The generator maps z ~ N(0, I) through a linear layer to a small feature map, then doubles the spatial size with
transposed convolutions (batch norm and ReLU between them) up to the image size: 28 -> (7, 14, 28),
64 -> (4, 8, 16, 32, 64). Its last layer is ``tanh`` (images in [-1, 1], DCGAN's usual range) or ``sigmoid``
(images in [0, 1]); lctk always sees [0, 1].

The format (``--format dcgan``) is a folder holding ``config.json`` (``{"architecture": "dcgan", "input_shape":
[C, H, W], "latent_dim": D, "width": W, "output": "tanh"}``) and ``model.safetensors`` (the generator's state
dict, names as in `DCGANGenerator`). Nothing is unpickled.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

import torch
from einops import rearrange
from torch import Tensor, nn

from lctk.plugin_api import (BackboneConfig, Generator, Importer, LctkError, from_dict, load_json, load_tensors,
                             save_json, save_tensors, state_dict_problem, to_dict)
from lctk_conv.model import _stages as upsamplings  # halvings while both sides are even and above 4

CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"
ARCHITECTURE = "dcgan"


@dataclasses.dataclass
class DCGANConfig(BackboneConfig):
    """``input_shape`` (channels, height, width); ``width`` the channels of the last upsampling stage (doubled
    per stage towards the first); ``output`` the last activation, ``tanh`` or ``sigmoid``."""

    input_shape: tuple[int, int, int] = (1, 28, 28)
    latent_dim: int = 64
    width: int = 64
    output: str = "tanh"

    def __post_init__(self):
        if len(self.input_shape) != 3 or min(self.input_shape) < 1:
            raise LctkError(f"dcgan needs image data (channels, height, width), got shape {self.input_shape}")
        if self.latent_dim < 1 or self.width < 1:
            raise LctkError("dcgan: latent_dim and width must be positive")
        if self.output not in ("tanh", "sigmoid"):
            raise LctkError(f"dcgan: output should be tanh or sigmoid, got {self.output!r}")
        if upsamplings(*self.input_shape[1:]) == 0:
            raise LctkError(f"dcgan: image size {self.input_shape[1]}x{self.input_shape[2]} cannot be reached by "
                            "doubling a smaller feature map; use an even size such as 28, 32 or 64")


class DCGANGenerator(Generator):
    """DCGAN generator: ``z (B, D)`` -> images ``(B, C, H, W)`` in [0, 1]."""

    config_class = DCGANConfig

    def __init__(self, config: DCGANConfig):
        super().__init__(config)
        c, h, w = config.input_shape
        n = upsamplings(h, w)
        self.h0, self.w0 = h >> n, w >> n
        chans = [config.width * 2 ** (n - 1 - i) for i in range(n)] + [c]  # e.g. [128, 64, 1] for 28x28
        self.c0 = chans[0]
        self.project = nn.Sequential(nn.Linear(config.latent_dim, self.c0 * self.h0 * self.w0, bias=False),
                                     nn.BatchNorm1d(self.c0 * self.h0 * self.w0), nn.ReLU())
        layers: list[nn.Module] = []
        for i, (cin, cout) in enumerate(zip(chans[:-1], chans[1:])):
            last = i == n - 1
            layers.append(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=last))
            if not last:
                layers += [nn.BatchNorm2d(cout), nn.ReLU()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        """Raw outputs before mapping to [0, 1]: ``(B, C, H, W)`` in [-1, 1] (tanh) or [0, 1] (sigmoid)."""
        h = rearrange(self.project(z), "b (c h w) -> b c h w", c=self.c0, h=self.h0, w=self.w0)
        h = self.net(h)  # (B, C, H, W) logits
        return torch.tanh(h) if self.config.output == "tanh" else torch.sigmoid(h)

    def generate(self, z: Tensor) -> Tensor:
        out = self(z)
        return (out + 1) / 2 if self.config.output == "tanh" else out  # (B, C, H, W) in [0, 1]


def detect(path: Path) -> bool:
    """True for a folder in the dcgan format (its config.json names the architecture)."""
    config = path / CONFIG_FILE
    if not (path.is_dir() and config.is_file() and (path / WEIGHTS_FILE).is_file()):
        return False
    try:
        return load_json(config, "dcgan config").get("architecture") == ARCHITECTURE
    except LctkError:
        return False


def read_config(path: Path) -> DCGANConfig:
    """The `DCGANConfig` of a dcgan folder; one-line errors for a missing, damaged or foreign config."""
    info = load_json(path / CONFIG_FILE, "dcgan config")
    if info.get("architecture") != ARCHITECTURE:
        raise LctkError(f"{path / CONFIG_FILE} does not describe a dcgan generator (architecture "
                        f"{info.get('architecture')!r}); write \"architecture\": \"dcgan\" in it")
    return from_dict(DCGANConfig, {k: v for k, v in info.items() if k != "architecture"}, "dcgan config")


def load_dcgan(path: str | Path) -> DCGANGenerator:
    """The generator saved in dcgan folder ``path``, in eval mode; weights that do not fit the config are refused."""
    path = Path(path)
    model = DCGANGenerator(read_config(path))
    tensors, _ = load_tensors(path / WEIGHTS_FILE, "dcgan weights")
    try:
        model.load_state_dict(tensors)
    except RuntimeError as e:
        raise LctkError(f"dcgan weights {path / WEIGHTS_FILE} do not fit {path / CONFIG_FILE} "
                        f"({state_dict_problem(e)})") from None
    return model.eval()


def save_dcgan(model: DCGANGenerator, path: str | Path) -> Path:
    """Write ``model`` as a dcgan folder at ``path`` (config.json + model.safetensors), each atomically."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_tensors(path / WEIGHTS_FILE, model.state_dict())
    save_json(path / CONFIG_FILE, {"architecture": ARCHITECTURE, **to_dict(model.config)})
    return path


class DCGANImporter(Importer):
    """The ``dcgan`` format: ``config.json`` naming the architecture, and ``model.safetensors``."""

    def detect(self, path: Path) -> bool:
        return detect(path)

    def load(self, path: Path, data_spec: Mapping[str, Any]) -> DCGANGenerator:
        model = load_dcgan(path)
        want = data_spec.get("input_shape")
        if want is not None and list(model.config.input_shape) != list(want):
            shape = "x".join(map(str, model.config.input_shape))
            raise LctkError(f"the dcgan generator in {path} makes {shape} images (channels x height x width) but the "
                            f"data has {'x'.join(map(str, want))}; use data of the generator's size")
        return model

    def files(self, path: Path) -> list[Path]:
        return [path / CONFIG_FILE, path / WEIGHTS_FILE]
