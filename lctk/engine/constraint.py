"""A trained constraint: its targets, realism critic, attribute and rule critics, and actor, saved as
``RUN/constraints/NAME/{constraint.json, weights.safetensors, metrics.json}``.

The condition ``y (B, K)`` has one column per target, attributes first: for a binary attribute the wanted
value (0 or 1); for a continuous attribute the wanted value scaled to [0, 1] over its observed range (the
attribute critic regresses it through a sigmoid); for a rule an "enforce" bit (1: must hold, 0: don't care).
Constraints of generator-only backbones have no realism critic (``realism=False``): their prior samples are
already the model's data distribution.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lctk import FORMAT_VERSION, __version__
from lctk.util.config import check_parameters, from_dict
from lctk.engine.config import ConstraintConfig
from lctk.engine.networks import GatedActor, LatentCritic
from lctk.engine.targets import Target
from lctk.util.errors import LctkError
from lctk.interfaces import Constraint
from lctk.util.io import load_json, load_tensors, save_json, save_tensors


class LatentConstraint(Constraint, nn.Module):
    """Critics and actor for a list of targets over a ``latent_dim``-dimensional latent space."""

    def __init__(self, name: str, targets: Sequence[Target], latent_dim: int, config: ConstraintConfig,
                 sigma_bar: Tensor, fingerprint: str, realism: bool = True):
        nn.Module.__init__(self)
        self.name, self.targets_full = name, list(targets)
        self.targets = [t.name for t in targets]
        self.config, self.fingerprint = config, fingerprint
        self.attr_cols = [i for i, t in enumerate(targets) if t.kind in ("attribute", "continuous")]
        self.rule_cols = [i for i, t in enumerate(targets) if t.kind == "rule"]
        #: Positions among `attr_cols` of the continuous attributes.
        self.continuous_pos = [j for j, i in enumerate(self.attr_cols) if targets[i].kind == "continuous"]
        c = config
        k_a, k_r = len(self.attr_cols), len(self.rule_cols)
        self.realism = LatentCritic(latent_dim, k_a, 1, c.width, c.depth, c.embed_dim) if realism else None
        self.attr_critic = LatentCritic(latent_dim, 0, k_a, c.width, c.depth) if k_a else None
        self.rule_critic = LatentCritic(latent_dim, 0, k_r, c.width, c.depth) if k_r else None
        self.actor = GatedActor(latent_dim, k_a + k_r, c.width, c.depth, c.embed_dim)
        self.register_buffer("sigma_bar", sigma_bar.clone().float())

    # -- the Constraint interface --------------------------------------------------------------------------
    def y_attr(self, y: Tensor) -> Tensor:
        """``(B, K_a)`` the attribute columns of ``y``."""
        return y[:, self.attr_cols]

    def target_logits(self, z: Tensor) -> Tensor:
        """``(B, K)`` logits of every target holding at ``z`` (attribute critic, rule critic)."""
        parts = [torch.zeros(len(z), 0, device=z.device)]
        if self.attr_critic is not None:
            parts.append(self.attr_critic(z))
        if self.rule_critic is not None:
            parts.append(self.rule_critic(z))
        return torch.cat(parts, dim=1)

    def binary_cols(self) -> list[int]:
        """Target indices of the binary attributes."""
        return [i for i in self.attr_cols if self.targets_full[i].kind == "attribute"]

    def continuous_cols(self) -> list[int]:
        """Target indices of the continuous attributes."""
        return [self.attr_cols[j] for j in self.continuous_pos]

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

    def column(self, name: str) -> int:
        """Index of target ``name`` in ``y``."""
        return self.targets.index(name)

    # -- persistence ---------------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """The JSON that, with the weights, rebuilds this constraint."""
        return {"lctk_version": __version__, "format_version": FORMAT_VERSION, "name": self.name,
                "targets": [dataclasses.asdict(t) for t in self.targets_full], "latent_dim": int(self.sigma_bar.numel()),
                "fingerprint": self.fingerprint, "config": dataclasses.asdict(self.config),
                "realism": self.realism is not None}

    def save(self, folder: Path) -> None:
        """Write constraint.json and weights.safetensors into ``folder`` (each atomically)."""
        save_tensors(folder / "weights.safetensors", self.state_dict())
        save_json(folder / "constraint.json", self.describe())

    @classmethod
    def load(cls, folder: Path) -> "LatentConstraint":
        """Rebuild a constraint from ``folder``; one-line errors for missing or damaged files."""
        info = load_json(folder / "constraint.json", "constraint description")
        if info.get("format_version") != FORMAT_VERSION:
            raise LctkError(f"constraint {folder} has format {info.get('format_version')}, this lctk reads "
                            f"{FORMAT_VERSION}; retrain it with `lctk add-constraint`")
        try:
            targets, latent_dim = check_description(info, folder / "constraint.json")
            config = from_dict(ConstraintConfig, info["config"], f"{folder / 'constraint.json'}: config")
            check_size(targets, latent_dim, config, f"constraint {folder / 'constraint.json'}")
            model = cls(info["name"], targets, latent_dim, config, torch.ones(latent_dim), info["fingerprint"],
                        realism=bool(info.get("realism", True)))
        except KeyError as e:
            raise LctkError(f"constraint description {folder / 'constraint.json'} lacks {e}; retrain it with "
                            "`lctk add-constraint ... --force`") from None
        except TypeError as e:
            raise LctkError(f"constraint description {folder / 'constraint.json'} is damaged ({e})") from None
        tensors, _ = load_tensors(folder / "weights.safetensors", "constraint weights")
        try:
            model.load_state_dict(tensors)
        except RuntimeError as e:
            raise LctkError(f"constraint weights in {folder} do not fit its description ({str(e).splitlines()[0]})") from None
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        return model


#: Largest latent space a constraint is built for.
MAX_LATENT_DIM = 65536
#: Most targets one constraint learns.
MAX_TARGETS = 4096


def check_description(info: dict[str, Any], path: Path) -> tuple[list[Target], int]:
    """The targets and latent size of a constraint.json, each field checked for its type and range first
    (a one-line error naming the field otherwise); KeyError for a missing field."""
    def bad(field: str, expected: str):
        return LctkError(f"constraint description {path} is damaged ({field} should be {expected}, got "
                         f"{str(info[field])[:40]!r}); retrain it with `lctk add-constraint ... --force`")

    if not isinstance(info["name"], str) or not info["name"]:
        raise bad("name", "a name")
    if not isinstance(info["fingerprint"], str):
        raise bad("fingerprint", "text")
    if not isinstance(info["config"], dict):
        raise bad("config", "an object of settings")
    latent_dim = info["latent_dim"]
    if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or not 1 <= latent_dim <= MAX_LATENT_DIM:
        raise bad("latent_dim", f"a whole number from 1 to {MAX_LATENT_DIM}")
    entries = info["targets"]
    if not isinstance(entries, list) or len(entries) > MAX_TARGETS or not all(map(_target_entry, entries)):
        raise bad("targets", f"a list of at most {MAX_TARGETS} {{name, kind: attribute|continuous|rule, value, low, "
                  "high}} objects")
    return [Target(**t) for t in entries], latent_dim


def _target_entry(entry: Any) -> bool:
    """Whether one entry of constraint.json's targets has the fields of a `Target`, each of its type."""
    def number(value) -> bool:
        return value is None or (isinstance(value, (int, float)) and math.isfinite(value))

    return (isinstance(entry, dict) and set(entry) <= {"name", "kind", "value", "low", "high"}
            and isinstance(entry.get("name"), str) and entry.get("kind") in ("attribute", "continuous", "rule")
            and number(entry.get("value", True)) and number(entry.get("low")) and number(entry.get("high")))


def check_size(targets: Sequence[Target], latent_dim: int, config: ConstraintConfig, what: str) -> None:
    """Refuse constraint networks too large to build, before allocating them (see `check_parameters`)."""
    check_parameters(lambda: LatentConstraint("size", targets, latent_dim, config, torch.ones(latent_dim), ""),
                     f"{what} (networks of depth {config.depth} x width {config.width})")
