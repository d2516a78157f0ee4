"""What every constraint method shares: the data it learns from (`TrainingData`), the columns of its condition
(`TargetColumns`), its ``constraint.json`` (`describe`, `read_description`), and the methods by name.

A constraint method is a subclass of `lctk.interfaces.Constraint` registered through the
``register_constraint_methods`` hook (lctk registers ``actor`` and ``diffusion`` itself, `lctk.builtin`).
``--method optimize`` is no method of its own: it samples by gradient ascent on the `log_prob` of the
constraints whose method has one (the actor's critics).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor

from lctk import FORMAT_VERSION, __version__
from lctk.engine.targets import Target
from lctk.interfaces import Constraint
from lctk.util.config import from_dict
from lctk.util.errors import LctkError
from lctk.util.io import load_json, load_tensors
from lctk.util.progress import Progress

#: The sampling mode that climbs the log-probabilities of constraints with one, whatever their method.
OPTIMIZE = "optimize"
#: The method `lctk add-constraint` uses when none is given.
DEFAULT_METHOD = "actor"
#: Largest latent space a constraint is built for.
MAX_LATENT_DIM = 65536
#: Most targets one constraint learns.
MAX_TARGETS = 4096


@dataclasses.dataclass
class TrainingData:
    """What a constraint method learns from: the run's open latent store, the targets (attributes first, then
    rules), ``label_rules(z (B, D)) -> (B, K_r)`` float (decode latents with the frozen backbone and check each
    rule; None without rules), where to checkpoint and whether to resume from it, the progress display, and the
    memory budget in bytes above which latents should be streamed rather than loaded."""

    store: Any
    targets: list[Target]
    label_rules: Callable[[Tensor], Tensor] | None
    checkpoint: Path
    resume: bool = False
    progress: Progress = dataclasses.field(default_factory=Progress)
    memory_budget: int = 2**30

    def labelled(self, part: str = "train", limit: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """``mu, sigma (M, D)`` and the attribute labels ``(M, K_a)`` of ``part`` (see `label_table`)."""
        return label_table(self.store, self.targets, part, limit)


def label_table(store, targets: Sequence[Target], part: str = "train", limit: int | None = None
                ) -> tuple[Tensor, Tensor, Tensor]:
    """``mu, sigma (M, D)`` and ``(M, K_a)`` float labels of ``part`` (its first ``limit`` rows if given) for the
    attribute targets, in order: binary attributes as 0/1, continuous ones scaled to [0, 1] over the target's
    range."""
    mu, sigma, table = store.load(part, limit=limit)
    values = store.load_continuous(part)[:limit] if any(t.kind == "continuous" for t in targets) else None
    cols = []
    for t in targets:
        if t.kind == "attribute":
            cols.append(table[:, store.attribute_names.index(t.name)].float())
        elif t.kind == "continuous":
            cols.append((values[:, store.continuous_names.index(t.name)] - t.low) / ((t.high - t.low) or 1.0))
    labels = torch.stack(cols, dim=1) if cols else torch.zeros(len(mu), 0)  # (M, K_a)
    return mu, sigma, labels


class TargetColumns:
    """The columns of a condition ``y (B, K)``: one per target, attributes (binary and continuous) first."""

    def set_targets(self, targets: Sequence[Target]) -> None:
        self.targets_full = list(targets)
        self.targets = [t.name for t in targets]
        self.attr_cols = [i for i, t in enumerate(targets) if t.kind in ("attribute", "continuous")]
        self.rule_cols = [i for i, t in enumerate(targets) if t.kind == "rule"]
        #: Positions among `attr_cols` of the continuous attributes.
        self.continuous_pos = [j for j, i in enumerate(self.attr_cols) if targets[i].kind == "continuous"]

    def y_attr(self, y: Tensor) -> Tensor:
        """``(B, K_a)`` the attribute columns of ``y``."""
        return y[:, self.attr_cols]

    def binary_cols(self) -> list[int]:
        """Target indices of the binary attributes."""
        return [i for i in self.attr_cols if self.targets_full[i].kind == "attribute"]

    def continuous_cols(self) -> list[int]:
        """Target indices of the continuous attributes."""
        return [self.attr_cols[j] for j in self.continuous_pos]

    def column(self, name: str) -> int:
        """Index of target ``name`` in ``y``."""
        return self.targets.index(name)


def describe(c: Constraint, settings: Any, latent_dim: int, **extra: Any) -> dict[str, Any]:
    """The ``constraint.json`` of ``c``: versions, ``method``, name, targets, latent size, fingerprint, settings."""
    return {"lctk_version": __version__, "format_version": FORMAT_VERSION, "method": c.method, "name": c.name,
            "targets": [dataclasses.asdict(t) for t in c.targets_full], "latent_dim": int(latent_dim),
            "fingerprint": c.fingerprint, "config": dataclasses.asdict(settings), **extra}


def read_description(folder: Path, settings_class: type) -> tuple[dict[str, Any], list[Target], int, Any]:
    """``(info, targets, latent_dim, settings)`` of ``folder/constraint.json``, every field checked."""
    path = folder / "constraint.json"
    info = load_json(path, "constraint description")
    if not isinstance(info, dict):
        raise LctkError(f"constraint description {path} is damaged (not an object); retrain it with "
                        "`lctk add-constraint ... --force`")
    if info.get("format_version") != FORMAT_VERSION:
        raise LctkError(f"constraint {folder} has format {info.get('format_version')}, this lctk reads "
                        f"{FORMAT_VERSION}; retrain it with `lctk add-constraint`")
    try:
        targets, latent_dim = check_description(info, path)
        settings = from_dict(settings_class, info["config"], f"{path}: config")
    except KeyError as e:
        raise LctkError(f"constraint description {path} lacks {e}; retrain it with "
                        "`lctk add-constraint ... --force`") from None
    except TypeError as e:
        raise LctkError(f"constraint description {path} is damaged ({e})") from None
    return info, targets, latent_dim, settings


def load_weights(model: torch.nn.Module, folder: Path) -> torch.nn.Module:
    """``model`` with the weights of ``folder/weights.safetensors``, in eval mode and frozen; one-line errors for
    missing, damaged or ill-fitting weights."""
    tensors, _ = load_tensors(folder / "weights.safetensors", "constraint weights")
    try:
        model.load_state_dict(tensors)
    except RuntimeError as e:
        raise LctkError(f"constraint weights in {folder} do not fit its description ({str(e).splitlines()[0]})") from None
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


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


# -- methods by name ---------------------------------------------------------------------------------------


def method_names() -> list[str]:
    """The registered constraint methods (``actor``, ``diffusion``, and those of installed plugins)."""
    from lctk.plugins import get_registries

    return sorted(get_registries().constraint_methods)


def sampling_methods() -> list[str]:
    """What ``--method`` accepts when sampling: every constraint method, and ``optimize``."""
    return sorted({*method_names(), OPTIMIZE})


def method_class(name: str) -> type[Constraint]:
    """The class of constraint method ``name``; a one-line error listing the registered ones otherwise."""
    from lctk.plugins import get_registries

    if name == OPTIMIZE:
        raise LctkError("optimize is a way of sampling, not of training: train with --method actor (its critics "
                        "are what optimize climbs), then sample with --method optimize")
    return get_registries().constraint_method(name)


def check_sampling_method(name: str) -> str:
    """``name`` if ``--method`` may sample with it; a one-line error naming the available ones otherwise."""
    if name == OPTIMIZE:
        return name
    if name.lower() not in method_names():
        raise LctkError(f"unknown method {name!r}; available: {', '.join(sampling_methods())} (see `lctk plugins`)")
    return name.lower()


def default_constraint_name(target_names: Sequence[str], method: str, fallback: str) -> str:
    """The name of a constraint trained without ``--name``: the targets joined by ``+`` (``fallback`` with
    none), suffixed ``-METHOD`` for methods other than the actor, so that the methods' constraints of the same
    targets live side by side (``sandal``, ``sandal-diffusion``)."""
    from lctk.util.outputs import default_name

    base = default_name(list(target_names), fallback)
    return base if method == DEFAULT_METHOD else f"{base}-{method}"


def load_constraint(folder: Path) -> Constraint:
    """The constraint in ``folder``, by the method its ``constraint.json`` records (``actor`` if none)."""
    info = load_json(folder / "constraint.json", "constraint description")
    method = info.get("method", DEFAULT_METHOD) if isinstance(info, dict) else DEFAULT_METHOD
    if not isinstance(method, str):
        raise LctkError(f"constraint description {folder / 'constraint.json'} is damaged (method should be a name)")
    from lctk.plugins import get_registries

    table = get_registries().constraint_methods
    if method.lower() not in table:
        raise LctkError(f"constraint {folder.name!r} was trained with method {method!r}, which no installed plugin "
                        f"provides (available: {', '.join(sorted(table)) or 'none'}); install the plugin that "
                        "provides it (see `lctk plugins`)")
    return table[method.lower()].value.load(folder)
