"""The denoiser: an MLP over standardised latents with residual blocks, a sinusoidal time embedding, and a
condition embedding with a learned null token per target (classifier-free guidance; a target left out of a
request is null, so one network serves any subset of its targets)."""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import Tensor, nn


def sinusoidal(t: Tensor, dim: int) -> Tensor:
    """``(B, dim)`` sin/cos features of times ``t (B,)`` in [0, 1] at geometrically spaced frequencies."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000) * torch.arange(half, dtype=torch.float32) / max(1, half))  # (half,)
    angles = 1000 * t[:, None].float() * freqs[None]  # (B, half)
    out = torch.cat([angles.sin(), angles.cos()], dim=1)
    return nn.functional.pad(out, (0, dim - 2 * half))


class ConditionEmbedding(nn.Module):
    """``y (B, K)``, ``known (B, K)`` -> ``(B, E)``: each known column's value through its own feature map
    ``silu(y_k a_k + b_k)`` (E features), each unknown column its learned null token; concatenated and mixed."""

    def __init__(self, n_targets: int, embed_dim: int):
        super().__init__()
        self.scale = nn.Parameter(torch.randn(n_targets, embed_dim) * 3)  # (K, E)
        self.shift = nn.Parameter(torch.randn(n_targets, embed_dim))  # (K, E)
        self.null = nn.Parameter(torch.randn(n_targets, embed_dim) * 0.5)  # (K, E)
        self.mix = nn.Linear(n_targets * embed_dim, embed_dim)

    def forward(self, y: Tensor, known: Tensor) -> Tensor:
        features = nn.functional.silu(y[:, :, None] * self.scale + self.shift)  # (B, K, E)
        features = torch.where(known[:, :, None], features, self.null.expand_as(features))
        return self.mix(rearrange(features, "b k e -> b (k e)"))  # (B, E)


class ResidualBlock(nn.Module):
    """``h + W2 silu(W1 norm(h) + P e)``: the embedding ``e`` enters every block; W2 starts at zero."""

    def __init__(self, width: int, embed_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.inner = nn.Linear(width, width)
        self.embed = nn.Linear(embed_dim, width)
        self.outer = nn.Linear(width, width)
        nn.init.zeros_(self.outer.weight)
        nn.init.zeros_(self.outer.bias)

    def forward(self, h: Tensor, e: Tensor) -> Tensor:
        return h + self.outer(nn.functional.silu(self.inner(self.norm(h)) + self.embed(e)))  # (B, W)


class Denoiser(nn.Module):
    """``v(x (B, D), t (B,), y (B, K), known (B, K)) -> (B, D)``: the velocity of the flow at ``x`` and ``t``."""

    def __init__(self, latent_dim: int, n_targets: int, width: int = 512, depth: int = 4, embed_dim: int = 128):
        super().__init__()
        self.embed_dim = embed_dim
        self.time = nn.Sequential(nn.Linear(embed_dim, embed_dim), nn.SiLU(), nn.Linear(embed_dim, embed_dim))
        self.condition = ConditionEmbedding(n_targets, embed_dim) if n_targets else None
        self.inp = nn.Linear(latent_dim, width)
        self.blocks = nn.ModuleList(ResidualBlock(width, embed_dim) for _ in range(depth))
        self.out_norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, latent_dim)

    def forward(self, x: Tensor, t: Tensor, y: Tensor, known: Tensor) -> Tensor:
        e = self.time(sinusoidal(t, self.embed_dim))  # (B, E)
        if self.condition is not None:
            e = e + self.condition(y, known)
        e = nn.functional.silu(e)
        h = self.inp(x)  # (B, W)
        for block in self.blocks:
            h = block(h, e)
        return self.out(self.out_norm(h))  # (B, D)
