"""Critics and actors: MLPs over latents, conditions entering through a linear embedding concatenated with z."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lctk.interfaces import Actor, Critic


def mlp(in_dim: int, width: int, depth: int, out_dim: int) -> nn.Sequential:
    """``depth`` hidden ReLU layers of ``width`` units, then a linear output of ``out_dim``."""
    layers: list[nn.Module] = []
    d = in_dim
    for _ in range(depth):
        layers += [nn.Linear(d, width), nn.ReLU()]
        d = width
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


class _Conditioned(nn.Module):
    """Concatenates z with a linear embedding of the condition y (when there is one)."""

    def __init__(self, latent_dim: int, cond_dim: int, embed_dim: int):
        super().__init__()
        self.cond_dim = cond_dim
        self.embed = nn.Linear(cond_dim, embed_dim) if cond_dim else None
        self.in_dim = latent_dim + (embed_dim if cond_dim else 0)

    def join(self, z: Tensor, y: Tensor | None) -> Tensor:
        if self.embed is None:
            return z
        return torch.cat([z, self.embed(y)], dim=1)  # (B, D + E)


class LatentCritic(Critic):
    """D(z) or D(z, y): ``out_dim`` logits for latents ``z (B, D)`` and conditions ``y (B, K)``.

    With ``out_dim = 1`` a realism critic (real encodings vs prior draws and actor outputs); with ``cond_dim = 0``
    and ``out_dim = K`` a multi-label attribute/rule critic D_attr(z).
    """

    def __init__(self, latent_dim: int, cond_dim: int = 0, out_dim: int = 1, width: int = 512, depth: int = 4,
                 embed_dim: int = 64):
        super().__init__()
        self.cond = _Conditioned(latent_dim, cond_dim, embed_dim)
        self.net = mlp(self.cond.in_dim, width, depth, out_dim)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return self.net(self.cond.join(z, y))  # (B, out_dim)


class GatedActor(Actor):
    """G(z, y): an MLP proposes ``dz`` and gate logits ``g``; z' = (1 - sigmoid(g)) * z + sigmoid(g) * dz.

    The gates let the actor keep each dimension of z where that already satisfies the critics.
    """

    def __init__(self, latent_dim: int, cond_dim: int = 0, width: int = 512, depth: int = 4, embed_dim: int = 64,
                 gate_bias: float = -1.0):
        super().__init__()
        self.cond = _Conditioned(latent_dim, cond_dim, embed_dim)
        self.net = mlp(self.cond.in_dim, width, depth, 2 * latent_dim)
        with torch.no_grad():
            self.net[-1].bias[latent_dim:].fill_(gate_bias)  # start close to the identity

    def gated(self, z: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``z' (B, D)`` and the gates ``sigmoid(g) (B, D)``."""
        dz, g = self.net(self.cond.join(z, y)).chunk(2, dim=1)  # (B, D) each
        gate = torch.sigmoid(g)
        return (1 - gate) * z + gate * dz, gate

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        return self.gated(z, y)[0]
