"""A convolutional VAE for images of any size and channel count, with a Gaussian decoder of small fixed
sigma_x (0.1 by default) so reconstructions are sharp.

The spatial size is halved by stride-2 convolutions while it stays even and above 4 (28 -> 14 -> 7,
64 -> 32 -> 16 -> 8 -> 4); the decoder mirrors the encoder with transposed convolutions.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import torch
from einops import rearrange
from torch import Tensor, nn

from lctk.plugin_api import Backbone, BackboneConfig, Decoder, Encoder, LctkError, Range, gaussian_log_likelihood


@dataclasses.dataclass
class ConvVAEConfig(BackboneConfig):
    """Conv VAE settings. ``input_shape`` is (channels, height, width); ``width`` the channels of the first
    conv stage (doubled per stage up to 8 x width); ``hidden`` the fully connected layer's size."""

    LIMITS: ClassVar[dict[str, Range]] = {**BackboneConfig.LIMITS, "input_shape": Range(1, 4096),
                                          "sigma_x": Range(0, 1e3, low_open=True), "width": Range(1, 4096),
                                          "hidden": Range(1, 65536)}
    input_shape: tuple[int, int, int] = (1, 28, 28)
    latent_dim: int = 32
    sigma_x: float = 0.1
    beta: float = 1.0
    width: int = 32
    hidden: int = 512

    def __post_init__(self):
        if len(self.input_shape) != 3 or min(self.input_shape) < 1:
            raise LctkError(f"conv backbone needs image data (channels, height, width), got shape {self.input_shape}")
        if self.sigma_x <= 0 or self.latent_dim < 1 or self.width < 1 or self.hidden < 1:
            raise LctkError("conv backbone: sigma_x, latent_dim, width and hidden must be positive")


def _stages(height: int, width: int) -> int:
    n = 0
    while height % 2 == 0 and width % 2 == 0 and min(height, width) > 4:
        height, width, n = height // 2, width // 2, n + 1
    return n


def _channels(config: ConvVAEConfig) -> list[int]:
    c, h, w = config.input_shape
    return [c] + [config.width * min(2**i, 8) for i in range(_stages(h, w))]


class ConvEncoder(Encoder):
    """Stride-2 convolutions, then a fully connected layer to mu and sigma (softplus)."""

    def __init__(self, config: ConvVAEConfig):
        super().__init__()
        chans = _channels(config)
        layers: list[nn.Module] = []
        for cin, cout in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(cin, cout, 4, stride=2, padding=1), nn.SiLU()]
        self.convs = nn.Sequential(*layers)
        _, h, w = config.input_shape
        n = len(chans) - 1
        flat = chans[-1] * (h >> n) * (w >> n)
        self.fc = nn.Sequential(nn.Linear(flat, config.hidden), nn.SiLU(), nn.Linear(config.hidden, 2 * config.latent_dim))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = rearrange(self.convs(x), "b c h w -> b (c h w)")
        mu, s = self.fc(h).chunk(2, dim=1)  # (B, D) each
        return mu, nn.functional.softplus(s) + 1e-5


class ConvDecoder(Decoder):
    """A fully connected layer to a feature map, then transposed convolutions to pixel means in [0, 1]."""

    def __init__(self, config: ConvVAEConfig):
        super().__init__()
        self.sigma_x = config.sigma_x
        chans = _channels(config)
        _, h, w = config.input_shape
        n = len(chans) - 1
        self.h0, self.w0, self.c0 = h >> n, w >> n, chans[-1]
        self.fc = nn.Sequential(nn.Linear(config.latent_dim, config.hidden), nn.SiLU(),
                                nn.Linear(config.hidden, self.c0 * self.h0 * self.w0), nn.SiLU())
        rev = chans[::-1]
        layers: list[nn.Module] = []
        for i, (cin, cout) in enumerate(zip(rev[:-1], rev[1:])):
            layers.append(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1))
            if i < len(rev) - 2:
                layers.append(nn.SiLU())
        if not layers:  # images too small to downsample: a 1x1 conv to the output channels
            layers = [nn.Conv2d(rev[0], rev[-1], 1)]
        self.deconvs = nn.Sequential(*layers)

    def forward(self, z: Tensor, x: Tensor | None = None) -> Tensor:
        h = rearrange(self.fc(z), "b (c h w) -> b c h w", c=self.c0, h=self.h0, w=self.w0)
        return torch.sigmoid(self.deconvs(h))  # (B, C, H, W) pixel means

    def log_likelihood(self, x: Tensor, params: Tensor) -> Tensor:
        return gaussian_log_likelihood(x, params, self.sigma_x)

    def generate(self, z: Tensor, *, temperature: float = 0.0, generator: torch.Generator | None = None) -> Tensor:
        return self(z)


class ConvVAE(Backbone):
    """Convolutional VAE for images; Gaussian decoder with fixed ``sigma_x``."""

    config_class = ConvVAEConfig

    def __init__(self, config: ConvVAEConfig):
        super().__init__(config)
        self.encoder = ConvEncoder(config)
        self.decoder = ConvDecoder(config)
