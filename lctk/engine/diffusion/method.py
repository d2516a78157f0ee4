"""The constraint method ``diffusion``: a conditional flow-matching denoiser over a run's latents, conditioned on
the same columns as the actor (binary attributes 0/1, continuous ones scaled to [0, 1] over their observed
range, rules as labelled by checking them on the decoded training latents: no human labels), with a null token
per column for classifier-free guidance. Samples integrate prior draws (the noise) to latents; edits noise an
encoding part-way and integrate it back under the condition (SDEdit).

Saved as ``RUN/constraints/NAME/{constraint.json (method: diffusion), weights.safetensors, metrics.json}``; the
weights are the moving average of the training weights, with the per-dimension mean and spread the latents
were standardised by.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar, Sequence

import torch
from torch import Tensor, nn

from lctk.engine.diffusion.config import DiffusionConfig
from lctk.engine.diffusion.network import Denoiser
from lctk.engine.diffusion.schedule import guided, integrate, noised
from lctk.engine.diffusion.training import DiffusionTrainer
from lctk.engine.method import TargetColumns, TrainingData, describe, load_weights, read_description
from lctk.engine.targets import Target
from lctk.interfaces import Constraint
from lctk.util.config import check_parameters
from lctk.util.errors import LctkError
from lctk.util.io import save_json, save_tensors

#: Rows decoded at a time when rules label the training latents.
LABEL_CHUNK = 4096


class DiffusionConstraint(TargetColumns, Constraint, nn.Module):
    """A conditional denoiser for a list of targets over a ``latent_dim``-dimensional latent space."""

    method: ClassVar[str] = "diffusion"
    settings_class: ClassVar[type] = DiffusionConfig
    guided: ClassVar[bool] = True

    def __init__(self, name: str, targets: Sequence[Target], latent_dim: int, config: DiffusionConfig,
                 fingerprint: str):
        nn.Module.__init__(self)
        self.name, self.config, self.fingerprint = name, config, fingerprint
        self.set_targets(targets)
        self.net = Denoiser(latent_dim, len(self.targets), config.width, config.depth, config.embed_dim)
        self.register_buffer("mean", torch.zeros(latent_dim))  # (D,) the latents are standardised by these
        self.register_buffer("std", torch.ones(latent_dim))  # (D,)
        self.register_buffer("sigma_bar", torch.ones(latent_dim))  # (D,) mean posterior spread (edit distances)

    # -- training ------------------------------------------------------------------------------------------
    @classmethod
    def create(cls, name: str, targets: Sequence[Target], latent_dim: int, settings: DiffusionConfig,
               data: TrainingData) -> "DiffusionConstraint":
        """A new, untrained diffusion constraint over the latents of ``data.store``."""
        check_parameters(lambda: Denoiser(latent_dim, len(targets), settings.width, settings.depth, settings.embed_dim),
                         f"this constraint (a denoiser of {settings.depth} blocks x width {settings.width})")
        model = cls(name, targets, latent_dim, settings, data.store.fingerprint)
        model.sigma_bar.copy_(data.store.sigma_bar())
        return model

    def fit(self, data: TrainingData) -> dict[str, Any]:
        """Label the training latents, standardise them and train the denoiser (resuming if asked)."""
        c = self.config
        mu, sigma, labels = data.labelled()  # (N, D), (N, D), (N, K_a)
        gen = torch.Generator().manual_seed(c.seed + 7)
        spread = None
        if self.rule_cols and c.rule_rows and c.rule_rows < len(mu):
            keep = torch.randperm(len(mu), generator=gen)[:c.rule_rows]
            mu, sigma, labels = mu[keep], sigma[keep], labels[keep]
        if self.rule_cols:  # fixed points, so that each one's rule labels are exact
            points = mu + c.encoding_noise * sigma * torch.randn(mu.shape, generator=gen)
            labels = torch.cat([labels, self._rule_labels(points, data)], dim=1)
        else:
            points = mu
        self.mean.copy_(points.mean(dim=0))
        self.std.copy_(points.std(dim=0).clamp(min=1e-6) if len(points) > 1 else torch.ones(points.shape[1]))
        x = (points - self.mean) / self.std  # (N, D)
        if not self.rule_cols and c.encoding_noise > 0:
            spread = c.encoding_noise * sigma / self.std
        metrics: dict[str, Any] = {}
        for j, i in enumerate(self.rule_cols):
            rate = labels[:, len(self.attr_cols) + j].mean().item()
            if rate == 0:
                raise LctkError(f"rule {self.targets[i]!r} holds for none of the {len(points)} decoded training "
                                "latents; the denoiser would have nothing to learn from: relax the rule")
            metrics[f"rule {self.targets[i]}"] = {"data_satisfied": round(rate, 4)}
        trainer = DiffusionTrainer(self.net, x, labels, spread, c, data.checkpoint, data.progress,
                                   f"add-constraint {self.name}")
        try:
            trainer.train(resume=data.resume)
        except KeyboardInterrupt:
            raise LctkError("interrupted; run the same `lctk add-constraint` command again to resume") from None
        self.net.load_state_dict(trainer.ema.state_dict())
        self.eval()
        if self.rule_cols and data.label_rules is not None:
            for key, figures in self._rule_check(data).items():
                metrics[key].update(figures)
        return {"losses": trainer.last, **metrics,
                "training": {"latents": "memory", "rows": len(points), "steps": trainer.total}}

    def _rule_labels(self, points: Tensor, data: TrainingData) -> Tensor:
        """``(N, K_r)`` float: the rules checked on the decoded ``points``."""
        cols = []
        chunks = math.ceil(len(points) / LABEL_CHUNK)
        with data.progress.task(f"add-constraint {self.name}: rule labels of the training latents", total=chunks) as bar:
            for i in range(0, len(points), LABEL_CHUNK):
                cols.append(data.label_rules(points[i:i + LABEL_CHUNK]).float())
                bar.advance(1)
        return torch.cat(cols)

    def _rule_check(self, data: TrainingData, n: int = 512) -> dict[str, Any]:
        """How many of ``n`` samples (each rule enforced alone, default guidance) and prior draws satisfy it."""
        gen = torch.Generator().manual_seed(self.config.seed + 12345)
        z = torch.randn(n, self.mean.numel(), generator=gen)
        out, prior = {}, data.label_rules(z)
        for j, i in enumerate(self.rule_cols):
            y, known = torch.zeros(n, len(self.targets)), torch.zeros(n, len(self.targets), dtype=torch.bool)
            y[:, i], known[:, i] = 1.0, True
            got = data.label_rules(self.sample(z, y, known))[:, j]
            out[f"rule {self.targets[i]}"] = {"prior_satisfied": round(prior[:, j].mean().item(), 4),
                                              "diffusion_satisfied": round(got.mean().item(), 4)}
        return out

    # -- sampling and editing ------------------------------------------------------------------------------
    def _velocity(self, y: Tensor, known: Tensor, guidance: float | None):
        """The guided velocity for conditions ``y`` where ``known`` (standardised space)."""
        weight = self.config.sample_guidance if guidance is None else float(guidance)
        y = torch.where(known, y, torch.zeros_like(y))
        null = torch.zeros_like(known)

        def cond(x: Tensor, t: Tensor) -> Tensor:
            return self.net(x, t, y, known)

        def uncond(x: Tensor, t: Tensor) -> Tensor:
            return self.net(x, t, y, null)

        return guided(cond, uncond, weight if bool(known.any()) else 1.0)

    def sample(self, z: Tensor, y: Tensor, known: Tensor, *, guidance: float | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        """``z' (B, D)``: prior draws ``z`` (the noise at t = 1) integrated to latents under ``y`` where ``known``."""
        with torch.no_grad():
            x = integrate(self._velocity(y, known, guidance), z, 1.0, self.config.sample_steps, self.config.solver)
        return x * self.std + self.mean

    def transform(self, z: Tensor, y: Tensor, known: Tensor, *, strength: float | None = None,
                  guidance: float | None = None, generator: torch.Generator | None = None) -> Tensor:
        """Encodings ``z (B, D)`` noised to t = ``strength`` and integrated back to t = 0 under the condition."""
        s = self.config.edit_strength if strength is None else float(strength)
        eps = torch.randn(z.shape, generator=generator)
        steps = max(1, math.ceil(self.config.sample_steps * s))
        with torch.no_grad():
            x = noised((z - self.mean) / self.std, eps, torch.full((len(z),), s))
            x = integrate(self._velocity(y, known, guidance), x, s, steps, self.config.solver)
        return x * self.std + self.mean

    # -- persistence ---------------------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """Write constraint.json and weights.safetensors into ``folder`` (each atomically)."""
        save_tensors(folder / "weights.safetensors", self.state_dict())
        save_json(folder / "constraint.json", describe(self, self.config, self.mean.numel()))

    @classmethod
    def load(cls, folder: Path) -> "DiffusionConstraint":
        """Rebuild a diffusion constraint from ``folder``; one-line errors for missing or damaged files."""
        info, targets, latent_dim, config = read_description(folder, DiffusionConfig)
        check_parameters(lambda: Denoiser(latent_dim, len(targets), config.width, config.depth, config.embed_dim),
                         f"constraint {folder / 'constraint.json'}")
        return load_weights(cls(info["name"], targets, latent_dim, config, info["fingerprint"]), folder)
