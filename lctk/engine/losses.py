"""The losses of the method, each small enough to check by hand."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lctk.interfaces import Critic


def distance_per_example(z_new: Tensor, z: Tensor, sigma_bar: Tensor) -> Tensor:
    """``(B,)`` mean over dimensions of log(1 + (z' - z)^2) / sigma_bar^2; ``sigma_bar (D,)`` is the
    per-dimension mean encoder sigma, so moves are measured in units of the posterior's own spread."""
    return (torch.log1p((z_new - z).pow(2)) / sigma_bar.pow(2)).mean(dim=1)


def distance_penalty(z_new: Tensor, z: Tensor, sigma_bar: Tensor) -> Tensor:
    """The distance penalty of the actor loss: `distance_per_example` averaged over the batch."""
    return distance_per_example(z_new, z, sigma_bar).mean()


def sigmoid_ce(logits: Tensor, target: Tensor | float) -> Tensor:
    """Mean sigmoid cross-entropy of ``logits`` against 0/1 ``target`` (a tensor of the same shape or a number)."""
    if not torch.is_tensor(target):
        target = torch.full_like(logits, float(target))
    return F.binary_cross_entropy_with_logits(logits, target)


def masked_sigmoid_ce(logits: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Sigmoid cross-entropy averaged over entries where ``mask`` is 1 (0 if none): "don't care" columns skip."""
    per = F.binary_cross_entropy_with_logits(logits, target, reduction="none") * mask
    return per.sum() / mask.sum().clamp(min=1)


def gradient_penalty(critic: Critic, real: Tensor, fake: Tensor, y: Tensor | None = None,
                     generator: torch.Generator | None = None) -> Tensor:
    """mean (||grad_z D(z_hat, y)|| - 1)^2 at random interpolates z_hat of ``real`` and ``fake`` latents."""
    alpha = torch.rand(len(real), 1, generator=generator, device=real.device)  # (B, 1)
    z_hat = (alpha * real + (1 - alpha) * fake).detach().requires_grad_(True)
    out = critic(z_hat, y).sum()
    (grad,) = torch.autograd.grad(out, z_hat, create_graph=True)  # (B, D)
    return (grad.norm(dim=1) - 1).pow(2).mean()


def sigma_weighted_shift(z_new: Tensor, z: Tensor, sigma_bar: Tensor) -> Tensor:
    """``(B,)`` mean over dimensions of |z' - z| / sigma_bar: how far each latent moved, in posterior sigmas."""
    return ((z_new - z).abs() / sigma_bar).mean(dim=1)
