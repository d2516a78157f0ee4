"""Constraints for generator-only backbones (e.g. GAN generators): no encoder, hence no latent store and no
realism critic (the prior is already the model's data distribution).

Prior draws and actor outputs are decoded and labelled on their outputs, by rules (exact) or by the
modality's `Labeler` (a classifier trained on the dataset's labels, a model apart from the evaluator's), and
kept in a pool; the attribute and rule critics learn from the pool, relabelled as the actor moves, and the
actor learns from their guidance and the distance penalty only. Moves are measured in prior standard
deviations (``sigma_bar = 1``).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor

from lctk.engine.add import constraint_config, finish, resolve_targets, run_trainer, start_partial
from lctk.engine.constraint import LatentConstraint
from lctk.engine.constraint_set import RunConstraints
from lctk.engine.losses import sigma_weighted_shift, sigmoid_ce
from lctk.engine.training import ConstraintTrainer, RulePool, step_generator
from lctk.util.errors import LctkError
from lctk.interfaces import Backbone, Labeler, Rule
from lctk.plugins import get_registries
from lctk.util.progress import Progress
from lctk.run import RunDir, fingerprint

#: Constraint settings of generator-only backbones where they differ from the defaults: the distance penalty
#: is the only thing that keeps the actor near the prior (there is no realism critic), and moves are counted
#: in prior standard deviations rather than in (smaller) posterior ones.
GENERATOR_DEFAULTS: dict[str, Any] = {"lambda_dist": 0.1}
#: Seed of the labeler's training (fixed, so every constraint of a run shares one cached labeler).
LABELER_SEED = 0


def labeler_class(run: RunDir, info: Mapping[str, Any]) -> type[Labeler]:
    """The labeler class for the run's modality; a one-line error naming the remedies when none is installed."""
    modality = run.modality
    cls = get_registries().labeler(modality)
    if cls is None:
        raise LctkError(f"run {run.path} has a generator-only backbone, whose attributes are labelled on its decoded "
                        f"outputs by a labeler, and no installed plugin provides a labeler for {modality or 'its'} "
                        "data; constrain it with --rule SPEC instead, or install a plugin that registers one")
    return cls


def prepare_labeler(run: RunDir, info: Mapping[str, Any], cls: type[Labeler], progress: Progress | None = None
                    ) -> tuple[Labeler, Any, dict[str, Any]]:
    """``(labeler, dataset, figures)``: the run's labeler trained (or loaded from ``RUN/labeler/``) on its dataset."""
    dataset = run.load_dataset(progress)
    labeler = cls(dataset, run.path / "labeler", progress)
    return labeler, dataset, labeler.prepare(LABELER_SEED)


def output_labels(backbone: Backbone, labeler: Labeler | None, columns: Sequence[int], rules: Sequence[Rule],
                  batch: int = 512) -> Callable[[Tensor], Tensor]:
    """``z (B, D)`` -> ``(B, K_a + K_r)`` float: decode z, then the labeler's ``columns`` and each rule's check."""
    def label(z: Tensor) -> Tensor:
        rows = []
        with torch.no_grad():
            for i in range(0, len(z), batch):
                out = backbone.decode(z[i:i + batch])
                parts = [labeler.label(out)[:, list(columns)].bool()] if columns else []
                parts += [rule(out).bool().unsqueeze(1) for rule in rules]
                rows.append(torch.cat(parts, dim=1))
        return torch.cat(rows).float()
    return label


class ConditionSource:
    """The attribute rows ``(N, K_a)`` of the dataset's training examples: conditions for the actor (unstated
    attributes follow the data). A generator has no encodings, so there is nothing else to draw."""

    def __init__(self, labels: Tensor):
        self.labels = labels.float()

    def labels_like(self, n: int, gen: torch.Generator) -> Tensor:
        """``(n, K_a)`` label rows of random training examples."""
        return self.labels[torch.randint(0, len(self.labels), (n,), generator=gen)]


class GeneratorTrainer(ConstraintTrainer):
    """Trains a realism-free `LatentConstraint` from a pool of decoded and labelled latents (every target,
    attributes first); ``label(z) -> (B, K)``."""

    def __init__(self, model: LatentConstraint, conditions: Tensor, config, checkpoint_path,
                 label: Callable[[Tensor], Tensor], progress: Progress | None = None):
        super().__init__(model, ConditionSource(conditions), config, checkpoint_path, label, progress)
        self.pool = RulePool(config.rule_pool, self.latent_dim, self.k_a + self.k_r)

    def fill_pool(self) -> None:
        """Before the first step: fill the whole pool with labelled prior draws."""
        n = self.c.relabel_batch
        for i in range(-(-self.c.rule_pool // n)):
            z = torch.randn(n, self.latent_dim, generator=step_generator(self.c.seed, 9, i))
            self.pool.add(z, self.label_rules(z))

    def relabel(self, gen: torch.Generator) -> None:
        """Decode and label prior draws and actor outputs (half each) into the pool."""
        n = self.c.relabel_batch
        with torch.no_grad():
            z_prior = torch.randn(n - n // 2, self.latent_dim, generator=gen)
            z_actor = self.m.actor(torch.randn(n // 2, self.latent_dim, generator=gen), self._condition(n // 2, gen))
            z = torch.cat([z_prior, z_actor])
            self.pool.add(z, self.label_rules(z))

    def _critics_step(self, gen: torch.Generator) -> float:
        """One step of the attribute and rule critics on a pool batch; returns the loss."""
        z, labels = self.pool.batch(self.c.batch_size, gen)  # (B, D), (B, K)
        loss = sigmoid_ce(self.m.target_logits(z), labels)
        self._check("attribute/rule critic", loss)
        opts = [o for o in (self.opt_a, self.opt_r) if o is not None]
        for opt in opts:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for opt in opts:
            opt.step()
        return loss.item()

    def classifier_step(self, gen: torch.Generator) -> float:
        return self._critics_step(gen)

    def critic_step(self, gen: torch.Generator) -> float:
        return self._critics_step(gen)


def _metrics(model: LatentConstraint, label, conditions: Tensor | None, n: int = 1024, seed: int = 0) -> dict[str, Any]:
    """Figures of a trained generator constraint, measured by the labels of decoded outputs (the labeler's and
    the rules'); independent measures are `lctk evaluate`'s job."""
    gen = torch.Generator().manual_seed(seed + 12345)
    k_a = len(model.attr_cols)
    z = torch.randn(n, model.sigma_bar.numel(), generator=gen)
    y = torch.ones(n, len(model.targets))
    if k_a:
        y[:, model.attr_cols] = conditions[torch.randint(0, len(conditions), (n,), generator=gen)].float()
    with torch.no_grad():
        before, logits = label(z), model.target_logits(z)
        z_new = model.act(z, y)
        after = label(z_new)
    out: dict[str, Any] = {"mean_sigma_weighted_shift": round(sigma_weighted_shift(z_new, z, model.sigma_bar).mean().item(), 4)}
    if k_a:
        out["attribute_critic_prior_accuracy"] = {model.targets[i]: round(((logits[:, i] > 0).float() == before[:, i]).float().mean().item(), 4)
                                                  for i in model.attr_cols}
        out["actor_attribute_match_by_labeler"] = round((after[:, :k_a] == y[:, :k_a]).all(dim=1).float().mean().item(), 4)
    for i in model.rule_cols:
        out[f"rule {model.targets[i]}"] = {"prior_satisfied": round(before[:, i].mean().item(), 4),
                                           "actor_satisfied": round(after[:, i].mean().item(), 4)}
    return out


def add_generator_constraint(run: RunDir, info: dict[str, Any], backbone: Backbone, attrs: Sequence[str],
                             rules: Sequence[str], name: str | None, overrides: Mapping[str, Any] | None,
                             force: bool, progress: Progress):
    """`lctk add-constraint` for a generator-only backbone (see the module docstring); returns the folder."""
    names = list(info["dataset"].get("attribute_names") or [])
    targets, rule_objs = resolve_targets(attrs, rules, names, run.modality)
    if not targets:
        raise LctkError(f"run {run.path} has a generator-only backbone: its prior samples are already its model of the "
                        "data, so there is no realism constraint to learn; give --attr NAME or --rule SPEC, or draw "
                        f"prior samples with `lctk sample {run.path} --prior`")
    attr_names = [t.name for t in targets if t.kind == "attribute"]
    cls = labeler_class(run, info) if attr_names else None
    name = name or "+".join(t.name for t in targets)
    config = constraint_config(overrides, GENERATOR_DEFAULTS)
    fp = fingerprint(backbone)
    constraints = RunConstraints(run)
    request = {"targets": [dataclasses.asdict(t) for t in targets], "config": dataclasses.asdict(config),
               "fingerprint": fp, "labeler": cls.__name__ if cls else None}
    partial, resume = start_partial(constraints, name, request, force)
    try:
        labeler, conditions, metrics = None, torch.zeros(1, 0), {}
        if cls is not None:
            labeler, dataset, metrics["labeler"] = prepare_labeler(run, info, cls, progress)
            columns = [dataset.attribute_names.index(a) for a in attr_names]
            conditions = dataset.attributes[dataset.indices("train")][:, columns]  # (N, K_a) bool
        else:
            columns = []
        label = output_labels(backbone, labeler, columns, [rule_objs[t.name] for t in targets if t.kind == "rule"])
        torch.manual_seed(config.seed)
        model = LatentConstraint(name, targets, backbone.latent_dim, config, torch.ones(backbone.latent_dim), fp,
                                 realism=False)
        trainer = GeneratorTrainer(model, conditions, config, partial / "checkpoint.safetensors", label, progress)
        run_trainer(trainer, resume)
        metrics = {"losses": trainer.last, **metrics, **_metrics(model, label, conditions, seed=config.seed)}
        return finish(constraints, partial, name, model, metrics)
    finally:
        constraints.release()
