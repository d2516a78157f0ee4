"""Rectified flow (flow matching) over standardised latents: ``x_t = (1 - t) x_0 + t eps`` for t in [0, 1], the
network predicts the velocity ``v = eps - x_0``; samples are integrated from noise (t = 1) to data (t = 0) with
Heun's method, under classifier-free guidance ``v = v_null + w (v_cond - v_null)``. An edit (SDEdit) starts
from the encoding noised to ``t = strength`` instead of from pure noise."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

#: ``velocity(x (B, D), t (B,)) -> (B, D)``.
Velocity = Callable[[Tensor, Tensor], Tensor]


def noised(x0: Tensor, eps: Tensor, t: Tensor) -> Tensor:
    """``x_t (B, D)`` on the straight path from data ``x0 (B, D)`` (t = 0) to noise ``eps`` (t = 1); ``t (B,)``."""
    t = t[:, None]  # (B, 1)
    return (1 - t) * x0 + t * eps


def target_velocity(x0: Tensor, eps: Tensor) -> Tensor:
    """``(B, D)`` what the network learns to predict at every t: d x_t / dt = eps - x0."""
    return eps - x0


def guided(velocity_cond: Velocity, velocity_null: Velocity, weight: float) -> Velocity:
    """Classifier-free guidance: ``v_null + weight (v_cond - v_null)`` (1: conditional; 0: unconditional; more
    than 1 pushes past the condition). Weight 1 and 0 need one network call only."""
    if weight == 1:
        return velocity_cond
    if weight == 0:
        return velocity_null

    def v(x: Tensor, t: Tensor) -> Tensor:
        null = velocity_null(x, t)
        return null + weight * (velocity_cond(x, t) - null)
    return v


def integrate(velocity: Velocity, x: Tensor, t_start: float, steps: int, solver: str = "heun") -> Tensor:
    """``x (B, D)`` at ``t_start`` carried to t = 0 in ``steps`` equal steps of Euler's or Heun's method (Heun
    takes two velocity evaluations per step, but none after the last, where t = 0)."""
    times = torch.linspace(t_start, 0.0, steps + 1)
    for i in range(steps):
        t, t_next = times[i].item(), times[i + 1].item()
        dt = t_next - t  # negative: towards the data
        tt = torch.full((len(x),), t)
        v = velocity(x, tt)
        x_euler = x + dt * v
        if solver == "heun" and t_next > 0:
            v_next = velocity(x_euler, torch.full((len(x),), t_next))
            x = x + dt * 0.5 * (v + v_next)
        else:
            x = x_euler
    return x


def sample_times(n: int, gen: torch.Generator) -> Tensor:
    """``(n,)`` training times, uniform in [0, 1]."""
    return torch.rand(n, generator=gen)


def learning_rate(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then a cosine decay to a tenth of ``peak`` at ``total`` (a function of
    the step alone, so a resumed run follows the same schedule)."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + torch.cos(torch.tensor(progress * torch.pi)).item()))
