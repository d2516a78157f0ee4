"""Gradient-based optimisation of latents (no actor): maximise a differentiable log-probability of the
constraints minus a distance penalty to the start. From an encoding this is an identity-preserving edit."""

from __future__ import annotations

import dataclasses
from typing import Callable

import torch
from torch import Tensor

from lctk.engine.losses import distance_per_example


@dataclasses.dataclass
class OptimizeSettings:
    """Adam on z for ``steps`` steps at ``lr``; ``w_dist`` weighs the distance penalty to the start point."""

    steps: int = 200
    lr: float = 0.1
    w_dist: float = 0.001


#: Sampling from prior draws: there is no identity to keep, so the distance only regularises.
SAMPLE_SETTINGS = OptimizeSettings()
#: Editing an encoded input: the distance penalty keeps its identity.
TRANSFORM_SETTINGS = OptimizeSettings(steps=300, lr=0.05, w_dist=0.003)


def optimize_latents(z0: Tensor, log_prob: Callable[[Tensor], Tensor], sigma_bar: Tensor,
                     settings: OptimizeSettings | None = None) -> Tensor:
    """``z0 (B, D)`` -> ``z' (B, D)`` maximising ``log_prob(z) (B,)`` - w_dist * distance(z, z0), each
    example independently (the loss is a per-example sum, so batch size does not change the result)."""
    s = settings or OptimizeSettings()
    z0 = z0.detach()
    z = z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=s.lr)
    with torch.enable_grad():
        for _ in range(s.steps):
            loss = (-log_prob(z) + s.w_dist * distance_per_example(z, z0, sigma_bar)).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return z.detach()
