"""A diffusers ``AutoencoderKL`` as an lctk `Backbone`: spatial latents flattened for lctk, images in [0, 1]."""

from __future__ import annotations

import dataclasses

import torch
from einops import rearrange
from torch import Tensor, nn

from lctk.plugin_api import Backbone, BackboneConfig, Decoder, Encoder, gaussian_log_likelihood


@dataclasses.dataclass
class AutoencoderKLConfig(BackboneConfig):
    """Sizes read from the model: images (C, H, W), spatial latents (c, h, w) with latent_dim = c * h * w, and
    the config's scaling (lctk's z = (posterior - shift_factor) * scaling_factor, as diffusers scales latents)."""

    input_shape: tuple[int, ...] = (1, 28, 28)
    latent_shape: tuple[int, ...] = (4, 7, 7)
    scaling_factor: float = 1.0
    shift_factor: float = 0.0
    #: Nominal pixel sigma of the Gaussian likelihood (AutoencoderKL has none of its own; lctk never trains it).
    sigma_x: float = 0.1


class KLEncoder(Encoder):
    """The posterior ``latent_dist`` of ``ae.encode``: its mean and std, scaled and flattened."""

    def __init__(self, ae: nn.Module, config: AutoencoderKLConfig):
        super().__init__()
        self.ae, self.config = ae, config  # the whole AutoencoderKL (its decoder's weights included) lives here

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        posterior = self.ae.encode(x * 2 - 1).latent_dist  # x (B, C, H, W) in [0, 1] -> [-1, 1]
        mean = (posterior.mean - self.config.shift_factor) * self.config.scaling_factor  # (B, c, h, w)
        std = posterior.std * self.config.scaling_factor  # (B, c, h, w)
        return rearrange(mean, "b c h w -> b (c h w)"), rearrange(std, "b c h w -> b (c h w)")


class KLDecoder(Decoder):
    """``ae.decode`` of unflattened, unscaled latents; outputs mapped from [-1, 1] to [0, 1]."""

    def __init__(self, ae: nn.Module, config: AutoencoderKLConfig):
        super().__init__()
        self.config = config
        self.decode_latents = ae.decode  # a bound method: the module itself is registered once, in the encoder

    def forward(self, z: Tensor, x: Tensor | None = None) -> Tensor:
        c, h, w = self.config.latent_shape
        spatial = rearrange(z, "b (c h w) -> b c h w", c=c, h=h, w=w)  # (B, c, h, w)
        spatial = spatial / self.config.scaling_factor + self.config.shift_factor
        return (self.decode_latents(spatial).sample + 1) / 2  # (B, C, H, W)

    def log_likelihood(self, x: Tensor, params: Tensor) -> Tensor:
        return gaussian_log_likelihood(x, params, self.config.sigma_x)

    def generate(self, z: Tensor, *, temperature: float = 0.0, generator: torch.Generator | None = None) -> Tensor:
        return self.forward(z).clamp(0.0, 1.0)


class AutoencoderKLBackbone(Backbone):
    """An ``AutoencoderKL`` with a standard normal prior over its (scaled, flattened) latents."""

    config_class = AutoencoderKLConfig

    def __init__(self, config: AutoencoderKLConfig, ae: nn.Module):
        super().__init__(config)
        self.encoder = KLEncoder(ae, config)
        self.decoder = KLDecoder(ae, config)
