"""Modality-free measures: Frechet distance between feature distributions, total variation of histograms."""

from __future__ import annotations

import torch
from torch import Tensor


def feature_stats(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean ``(F,)`` and covariance ``(F, F)`` (float64) of ``features (N, F)``."""
    f = features.double()
    mean = f.mean(dim=0)
    centred = f - mean
    return mean, centred.T @ centred / max(1, len(f) - 1)


def _sqrt_psd(m: Tensor) -> Tensor:
    vals, vecs = torch.linalg.eigh((m + m.T) / 2)
    return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T


def frechet_distance(stats_a: tuple[Tensor, Tensor], stats_b: tuple[Tensor, Tensor]) -> float:
    """||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2) between two Gaussians."""
    (mu_a, s_a), (mu_b, s_b) = stats_a, stats_b
    root_a = _sqrt_psd(s_a)
    cross = _sqrt_psd(root_a @ s_b @ root_a)
    return float((mu_a - mu_b).pow(2).sum() + torch.trace(s_a) + torch.trace(s_b) - 2 * torch.trace(cross))


def total_variation(p: Tensor, q: Tensor) -> float:
    """Total-variation distance between two histograms (normalised here): half the L1 distance."""
    p, q = p.double() / p.sum().clamp(min=1e-12), q.double() / q.sum().clamp(min=1e-12)
    return float(0.5 * (p - q).abs().sum())


def ranks(values: Tensor) -> Tensor:
    """``(N,)`` float64 ranks from 1 of ``values (N,)``, tied values sharing the mean of their ranks."""
    v = values.double().flatten()
    order = torch.argsort(v, stable=True)
    ranked = torch.empty_like(v)
    ranked[order] = torch.arange(1, len(v) + 1, dtype=torch.float64)
    unique, inverse = torch.unique(v, return_inverse=True)
    sums = torch.zeros(len(unique), dtype=torch.float64).scatter_add_(0, inverse, ranked)
    counts = torch.zeros(len(unique), dtype=torch.float64).scatter_add_(0, inverse, torch.ones_like(v))
    return (sums / counts)[inverse]


def spearman(a: Tensor, b: Tensor) -> float:
    """Spearman rank correlation of ``a (N,)`` and ``b (N,)`` (ties get mean ranks); 0 when either is constant."""
    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = (ra.pow(2).sum() * rb.pow(2).sum()).sqrt()
    return float((ra * rb).sum() / denom) if denom > 0 else 0.0
