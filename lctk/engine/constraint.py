"""A trained constraint: its targets, realism critic, attribute and rule critics, and actor, saved as
``RUN/constraints/NAME/{constraint.json, weights.safetensors, metrics.json}``.

The condition ``y (B, K)`` has one column per target, attributes first: for a binary attribute the wanted
value (0 or 1); for a continuous attribute the wanted value scaled to [0, 1] over its observed range (the
attribute critic regresses it through a sigmoid); for a rule an "enforce" bit (1: must hold, 0: don't care).
Constraints of generator-only backbones have no realism critic (``realism=False``): their prior samples are
already the model's data distribution.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lctk.util.config import check_parameters
from lctk.engine.config import ConstraintConfig
from lctk.engine.method import (MAX_LATENT_DIM, MAX_TARGETS, TargetColumns, check_description,  # noqa: F401
                                describe, load_weights, read_description)
from lctk.engine.networks import GatedActor, LatentCritic
from lctk.engine.targets import Target
from lctk.interfaces import Constraint
from lctk.util.io import save_json, save_tensors


class LatentConstraint(TargetColumns, Constraint, nn.Module):
    """The method ``actor``: critics and actor for a list of targets over a ``latent_dim``-dimensional latent
    space."""

    method: ClassVar[str] = "actor"
    settings_class: ClassVar[type] = ConstraintConfig
    has_log_prob: ClassVar[bool] = True

    def __init__(self, name: str, targets: Sequence[Target], latent_dim: int, config: ConstraintConfig,
                 sigma_bar: Tensor, fingerprint: str, realism: bool = True):
        nn.Module.__init__(self)
        self.name = name
        self.set_targets(targets)
        self.config, self.fingerprint = config, fingerprint
        c = config
        k_a, k_r = len(self.attr_cols), len(self.rule_cols)
        self.realism = LatentCritic(latent_dim, k_a, 1, c.width, c.depth, c.embed_dim) if realism else None
        self.attr_critic = LatentCritic(latent_dim, 0, k_a, c.width, c.depth) if k_a else None
        self.rule_critic = LatentCritic(latent_dim, 0, k_r, c.width, c.depth) if k_r else None
        self.actor = GatedActor(latent_dim, k_a + k_r, c.width, c.depth, c.embed_dim)
        self.register_buffer("sigma_bar", sigma_bar.clone().float())

    # -- the Constraint interface --------------------------------------------------------------------------
    @classmethod
    def create(cls, name: str, targets: Sequence[Target], latent_dim: int, settings: ConstraintConfig,
               data) -> "LatentConstraint":
        """A new actor constraint over the latents of ``data.store``."""
        return cls(name, targets, latent_dim, settings, data.store.sigma_bar(), data.store.fingerprint)

    def fit(self, data) -> dict[str, Any]:
        """Train critics and actor (see `lctk.engine.actor_fit`)."""
        from lctk.engine.actor_fit import fit_actor

        return fit_actor(self, data)

    def sample(self, z: Tensor, y: Tensor, known: Tensor, *, guidance: float | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        """The actor's move of prior draws ``z`` (unstated columns of ``y`` hold label rows of the data)."""
        with torch.no_grad():
            return self.act(z, y)

    def transform(self, z: Tensor, y: Tensor, known: Tensor, *, strength: float | None = None,
                  guidance: float | None = None, generator: torch.Generator | None = None) -> Tensor:
        """The smallest move of encodings ``z`` that the critics approve (gradient ascent on `log_prob`)."""
        from lctk.engine.optimize import TRANSFORM_SETTINGS, optimize_latents

        return optimize_latents(z, lambda v: self.log_prob(v, y), self.sigma_bar, TRANSFORM_SETTINGS)

    def target_logits(self, z: Tensor) -> Tensor:
        """``(B, K)`` logits of every target holding at ``z`` (attribute critic, rule critic)."""
        parts = [torch.zeros(len(z), 0, device=z.device)]
        if self.attr_critic is not None:
            parts.append(self.attr_critic(z))
        if self.rule_critic is not None:
            parts.append(self.rule_critic(z))
        return torch.cat(parts, dim=1)

    def attribute_nll(self, logits: Tensor, ya: Tensor) -> Tensor:
        """``(B, K_a)`` negative log-likelihood of wanted attribute values ``ya`` under attribute-critic
        ``logits``: sigmoid cross-entropy for binary columns; for continuous ones a Gaussian of
        ``continuous_sd`` around the wanted scaled value, (sigmoid(logit) - y)^2 / (2 sd^2)."""
        nll = F.binary_cross_entropy_with_logits(logits, ya, reduction="none")  # (B, K_a)
        if self.continuous_pos:
            pos = self.continuous_pos
            sq = (torch.sigmoid(logits[:, pos]) - ya[:, pos]).pow(2) / (2 * self.config.continuous_sd ** 2)
            nll = torch.cat([nll, sq], dim=1)[:, self._nll_order()]
        return nll

    def _nll_order(self) -> list[int]:
        """Column order that puts the Gaussian terms in place of the cross-entropy of continuous columns."""
        k = len(self.attr_cols)
        order = list(range(k))
        for n, j in enumerate(self.continuous_pos):
            order[j] = k + n
        return order

    def log_prob(self, z: Tensor, y: Tensor) -> Tensor:
        """``(B,)`` log sigmoid D(z, y) (when there is a realism critic) + log p(each attribute = y | z) + sum over
        enforced rules of log p(rule | z)."""
        lp = torch.zeros(len(z), device=z.device)  # (B,)
        if self.realism is not None:
            lp = lp + F.logsigmoid(self.realism(z, self.y_attr(y))).squeeze(1)
        logits = self.target_logits(z)  # (B, K)
        if self.attr_cols:
            ya = self.y_attr(y)
            la = logits[:, :len(self.attr_cols)]
            lp = lp - self.attribute_nll(la, ya).sum(dim=1)
        if self.rule_cols:
            enforce = y[:, self.rule_cols]
            lr = logits[:, len(self.attr_cols):]
            lp = lp + (F.logsigmoid(lr) * enforce).sum(dim=1)
        return lp

    def act(self, z: Tensor, y: Tensor) -> Tensor:
        """``z' (B, D)``: the actor's move of ``z`` towards realism and targets ``y``."""
        return self.actor(z, y)

    # -- persistence ---------------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """The JSON that, with the weights, rebuilds this constraint."""
        return describe(self, self.config, self.sigma_bar.numel(), realism=self.realism is not None)

    def save(self, folder: Path) -> None:
        """Write constraint.json and weights.safetensors into ``folder`` (each atomically)."""
        save_tensors(folder / "weights.safetensors", self.state_dict())
        save_json(folder / "constraint.json", self.describe())

    @classmethod
    def load(cls, folder: Path) -> "LatentConstraint":
        """Rebuild a constraint from ``folder``; one-line errors for missing or damaged files."""
        info, targets, latent_dim, config = read_description(folder, ConstraintConfig)
        check_size(targets, latent_dim, config, f"constraint {folder / 'constraint.json'}")
        model = cls(info["name"], targets, latent_dim, config, torch.ones(latent_dim), info["fingerprint"],
                    realism=bool(info.get("realism", True)))
        return load_weights(model, folder)


def check_size(targets: Sequence[Target], latent_dim: int, config: ConstraintConfig, what: str) -> None:
    """Refuse constraint networks too large to build, before allocating them (see `check_parameters`)."""
    check_parameters(lambda: LatentConstraint("size", targets, latent_dim, config, torch.ones(latent_dim), ""),
                     f"{what} (networks of depth {config.depth} x width {config.width})")
