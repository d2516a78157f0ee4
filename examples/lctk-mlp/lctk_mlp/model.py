"""A small MLP VAE for any fixed-shape float data: examples are flattened, encoded by an MLP to a diagonal
Gaussian, and decoded by another MLP to the means of a Gaussian with fixed ``sigma_x``.

Written only against lctk's public API (`lctk.interfaces`), as any third-party backbone would be.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from einops import rearrange, unpack
from torch import Tensor, nn

from lctk.plugin_api import Backbone, BackboneConfig, Decoder, Encoder, LctkError, gaussian_log_likelihood


@dataclasses.dataclass
class MLPVAEConfig(BackboneConfig):
    """MLP VAE settings.

    ``input_shape``: shape of one example (filled from the dataset's spec); ``hidden``: width of each hidden
    layer; ``layers``: hidden layers in encoder and decoder; ``sigma_x``: decoder standard deviation;
    ``sigmoid_output``: squash decoded means into [0, 1] (right for images; turn off for unbounded data).
    """

    input_shape: tuple[int, ...] = (1, 28, 28)
    latent_dim: int = 32
    beta: float = 1.0
    hidden: int = 256
    layers: int = 2
    sigma_x: float = 0.1
    sigmoid_output: bool = True

    def __post_init__(self):
        if len(self.input_shape) < 1 or min(self.input_shape) < 1:
            raise LctkError(f"mlp backbone needs fixed-shape data, got input_shape {self.input_shape}")
        if self.sigma_x <= 0 or self.latent_dim < 1 or self.hidden < 1 or self.layers < 1:
            raise LctkError("mlp backbone: sigma_x, latent_dim, hidden and layers must be positive")

    @property
    def input_size(self) -> int:
        """Number of values in one example."""
        return math.prod(self.input_shape)


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers of the given sizes with SiLU between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class MLPEncoder(Encoder):
    """Flatten, MLP, then mu and sigma (softplus) of q(z|x)."""

    def __init__(self, config: MLPVAEConfig):
        super().__init__()
        self.net = mlp([config.input_size] + [config.hidden] * config.layers + [2 * config.latent_dim])

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        flat = rearrange(x.float(), "b ... -> b (...)")  # (B, N)
        mu, s = self.net(flat).chunk(2, dim=1)  # (B, D) each
        return mu, nn.functional.softplus(s) + 1e-5


class MLPDecoder(Decoder):
    """MLP from z to the means of a Gaussian over examples, with fixed ``sigma_x``."""

    def __init__(self, config: MLPVAEConfig):
        super().__init__()
        self.shape = tuple(config.input_shape)
        self.sigma_x = config.sigma_x
        self.sigmoid_output = config.sigmoid_output
        self.net = mlp([config.latent_dim] + [config.hidden] * config.layers + [config.input_size])

    def forward(self, z: Tensor, x: Tensor | None = None) -> Tensor:
        flat = self.net(z)  # (B, N)
        if self.sigmoid_output:
            flat = torch.sigmoid(flat)
        [mean] = unpack(flat, [self.shape], "b *")  # (B, *input_shape)
        return mean

    def log_likelihood(self, x: Tensor, params: Tensor) -> Tensor:
        return gaussian_log_likelihood(x.float(), params, self.sigma_x)  # (B,)

    def generate(self, z: Tensor, *, temperature: float = 0.0, generator: torch.Generator | None = None) -> Tensor:
        return self(z)  # the Gaussian's means: sharp outputs, as in the paper


class MLPVAE(Backbone):
    """MLP VAE for any fixed-shape float data; Gaussian decoder with fixed ``sigma_x``."""

    config_class = MLPVAEConfig

    def __init__(self, config: MLPVAEConfig):
        super().__init__(config)
        self.encoder = MLPEncoder(config)
        self.decoder = MLPDecoder(config)
