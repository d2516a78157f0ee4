"""A conditional VAE baseline (Sohn et al. 2015) built from the conv backbone's own encoder and decoder: the
one-hot label ``y`` enters the encoder's fully connected layer (beside the conv features) and the decoder's
(beside ``z``). It exists to measure what the latent-constraints method saves: a CVAE must be retrained from
scratch for every new attribute (benchmarks/new_attribute_vs_retrain.py). Not registered as a backbone.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn

from lctk.plugin_api import gaussian_log_likelihood
from lctk_conv.model import ConvDecoder, ConvEncoder, ConvVAEConfig


class ConditionalConvVAE(nn.Module):
    """ConvVAE's encoder and decoder with ``n_classes`` label inputs; q(z|x, y), p(x|z, y), prior N(0, I)."""

    def __init__(self, config: ConvVAEConfig, n_classes: int):
        super().__init__()
        self.config, self.n_classes = config, n_classes
        self.encoder, self.decoder = ConvEncoder(config), ConvDecoder(config)
        first = self.encoder.fc[0]  # the conv features -> hidden layer: widened by the label
        self.encoder.fc[0] = nn.Linear(first.in_features + n_classes, first.out_features)
        first = self.decoder.fc[0]  # z -> hidden layer: widened by the label
        self.decoder.fc[0] = nn.Linear(first.in_features + n_classes, first.out_features)

    def encode(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """``x (B, C, H, W)``, one-hot ``y (B, K)`` -> ``mu, sigma (B, D)``."""
        h = rearrange(self.encoder.convs(x), "b c h w -> b (c h w)")
        mu, s = self.encoder.fc(torch.cat([h, y], dim=1)).chunk(2, dim=1)  # (B, D) each
        return mu, nn.functional.softplus(s) + 1e-5

    def decode(self, z: Tensor, y: Tensor) -> Tensor:
        """``z (B, D)``, one-hot ``y (B, K)`` -> pixel means ``(B, C, H, W)`` in [0, 1]."""
        d = self.decoder
        h = rearrange(d.fc(torch.cat([z, y], dim=1)), "b (c h w) -> b c h w", c=d.c0, h=d.h0, w=d.w0)
        return torch.sigmoid(d.deconvs(h))

    def elbo_terms(self, x: Tensor, y: Tensor, eps: Tensor | None = None) -> dict[str, Tensor]:
        """The same loss as `Backbone.elbo_terms` (Gaussian decoder of fixed sigma_x, beta * KL), given labels."""
        mu, sigma = self.encode(x, y)
        eps = torch.randn_like(mu) if eps is None else eps
        reconstruction = -gaussian_log_likelihood(x, self.decode(mu + sigma * eps, y), self.config.sigma_x)  # (B,)
        kl = 0.5 * (mu.pow(2) + sigma.pow(2) - 1.0 - 2.0 * torch.log(sigma)).sum(dim=1)  # (B,)
        return {"loss": (reconstruction + self.config.beta * kl).mean(), "reconstruction": reconstruction, "kl": kl}

    def sample(self, y: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Images decoded from prior draws, one per label row of ``y (B, K)``."""
        z = torch.randn(len(y), self.config.latent_dim, generator=generator)
        return self.decode(z, y)
