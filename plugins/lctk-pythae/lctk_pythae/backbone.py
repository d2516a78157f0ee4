"""A pythae VAE as an lctk `Backbone`: pythae's networks, its weights, lctk's interfaces."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from lctk.plugin_api import Backbone, BackboneConfig, Decoder, Encoder, gaussian_log_likelihood


@dataclasses.dataclass
class PythaeConfig(BackboneConfig):
    """What model_config.json and model.pt said: the model, its networks and sizes."""

    input_shape: tuple[int, ...] = (1, 28, 28)
    model: str = "VAEConfig"
    encoder: str = "Encoder_VAE_MLP"
    decoder: str = "Decoder_AE_MLP"
    reconstruction_loss: str = "mse"


class PythaeEncoder(Encoder):
    """pythae's encoder; its ``log_covariance`` (log variance) becomes sigma."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        out = self.net(x)  # x (B, C, H, W) in [0, 1]
        mu, log_var = out["embedding"], out["log_covariance"]  # (B, D) each
        return mu, torch.exp(0.5 * log_var)


class PythaeDecoder(Decoder):
    """pythae's decoder (sigmoid outputs in [0, 1]); the likelihood pythae trained it with."""

    def __init__(self, net: nn.Module, config: PythaeConfig):
        super().__init__()
        self.net, self.config = net, config

    def forward(self, z: Tensor, x: Tensor | None = None) -> Tensor:
        c, h, w = self.config.input_shape
        out = self.net(z)["reconstruction"]  # (B, C, H, W), or (B, C*H*W) from some nets
        return rearrange(out.reshape(len(z), -1), "b (c h w) -> b c h w", c=c, h=h, w=w)

    def log_likelihood(self, x: Tensor, params: Tensor) -> Tensor:
        if self.config.reconstruction_loss == "bce":  # pythae: binary cross-entropy summed over pixels
            return -F.binary_cross_entropy(params, x, reduction="none").flatten(1).sum(dim=1)
        return gaussian_log_likelihood(x, params, 1.0)  # pythae's "mse": 0.5 * squared error, i.e. sigma 1

    def generate(self, z: Tensor, *, temperature: float = 0.0, generator: torch.Generator | None = None) -> Tensor:
        return self.forward(z).clamp(0.0, 1.0)


class PythaeVAE(Backbone):
    """A pythae VAE-family model (Gaussian posterior, standard normal prior) with its trained networks."""

    config_class = PythaeConfig

    def __init__(self, config: PythaeConfig, encoder: nn.Module, decoder: nn.Module):
        super().__init__(config)
        self.encoder = PythaeEncoder(encoder)
        self.decoder = PythaeDecoder(decoder, config)
