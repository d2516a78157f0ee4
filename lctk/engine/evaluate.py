"""`lctk evaluate`: independent measures of a run's outputs, by the modality's evaluator (a classifier
trained on real data for images; histograms for melodies), never by lctk's own critics.

Measured sets: reconstructions of test examples, prior samples, realism-constrained samples, conditional
samples per constrained attribute (actor and optimize), continuous attributes asked for over a grid of values
(Spearman correlation and mean absolute error between requested and realised values, the realised ones
measured on the decoded outputs by the evaluator), rule satisfaction (prior vs actor), transforms.
Generator-only backbones have no encoder: no reconstructions and no transforms are measured for them.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor

from lctk.engine.constraint_set import REALISM
from lctk.engine.losses import sigma_weighted_shift
from lctk.engine.sampling import Sampler
from lctk.engine.targets import Target, parse_rule
from lctk.interfaces import Evaluator
from lctk.util.io import save_json
from lctk.plugins import get_registries
from lctk.util.progress import Progress
from lctk.run import RunDir


class NoEvaluator(Evaluator):
    """Stands in when no plugin evaluates the modality: the figures that need no evaluator (rule satisfaction,
    latent shifts) are still measured."""

    def prepare(self, seed: int = 0) -> dict[str, Any]:
        return {"evaluator": f"none installed for modality {self.dataset.modality!r}; only figures that need none"}

    def evaluate(self, name, outputs, target=None, reference=None) -> dict[str, float]:
        return {}


def _row(name: str, method: str, target: str, n: int, figures: dict[str, Any]) -> dict[str, Any]:
    return {"set": name, "method": method, "target": target, "n": n, **figures}


def evaluate_run(run: RunDir | str, n: int = 2000, seed: int = 0, progress: Progress | None = None) -> dict[str, Any]:
    """Measure everything the run has; write and return ``RUN/metrics.json``."""
    t0 = time.monotonic()
    progress = progress or Progress()
    sampler = Sampler(run)
    run = sampler.run
    try:
        dataset = run.load_dataset(progress)
        evaluator_cls = get_registries().evaluators.get(dataset.modality)
        evaluator = evaluator_cls.value(dataset, run.path / "evaluator", progress) if evaluator_cls else \
            NoEvaluator(dataset, run.path / "evaluator", progress)
        metrics: dict[str, Any] = {"evaluator": evaluator.prepare(seed), "sets": []}
        rows = metrics["sets"]
        gen = torch.Generator().manual_seed(seed)

        if sampler.backbone.has_encoder:  # a generator-only backbone reconstructs nothing
            test = dataset.indices("test")
            test = test if len(test) else dataset.indices("train")
            pick = test[torch.randperm(len(test), generator=gen)[:n]]
            x = dataset.fetch(pick)
            with torch.no_grad():
                recon = sampler.decode(sampler.backbone.encode(x)[0])
            rows.append(_row("reconstruction", "-", "-", len(x), evaluator.evaluate("reconstruction", recon, reference=x)))
        z_prior = sampler.backbone.prior_sample(n, gen)
        rows.append(_row("prior", "-", "-", n, evaluator.evaluate("prior", sampler.decode(z_prior))))

        names = sampler.constraints.names()
        if names:
            _, z = sampler.latents([], n, "actor", seed)
            label = "realism" if REALISM in names else f"realism (actor of {names[0]}, labels drawn from the data)"
            label = label if sampler.backbone.has_encoder else f"actor ({names[0]}, data labels)"
            rows.append(_row(label, "actor", "-", n, evaluator.evaluate("realism", sampler.decode(z))))
        attributes = sampler.constrained_attributes()
        rules = sorted({c.targets[i] for c in sampler.constraints.all() for i in c.rule_cols})
        metrics["conditional"] = _conditional(sampler, evaluator, attributes, n, seed, rows, progress)
        metrics["continuous"] = continuous_control(sampler, evaluator, n, seed, rows, progress)
        metrics["rules"] = _rules(sampler, evaluator, rules, n, seed, z_prior, rows)
        metrics["transforms"] = _transforms(sampler, evaluator, dataset, attributes, max(10, min(200, n // 10)), seed, progress)
        metrics["seconds"] = round(time.monotonic() - t0, 1)
    finally:
        sampler.close()
    save_json(run.metrics_path, metrics)
    return metrics


def _conditional(sampler, evaluator, attributes, n, seed, rows, progress) -> dict[str, Any]:
    """Per attribute and method: accuracy of conditional samples; pooled Frechet distance; latent shift."""
    out: dict[str, Any] = {}
    if not attributes:
        return out
    per = max(10, n // len(attributes))
    with progress.task("conditional samples", total=2 * len(attributes)) as bar:
        for method in ("actor", "optimize"):
            outputs, accs, shifts = [], {}, []
            for i, attr in enumerate(attributes):
                wants = [Target(attr, "attribute", True)]
                z0, z1 = sampler.latents(wants, per, method, seed + 1000 + i)
                decoded = sampler.decode(z1)
                figures = evaluator.evaluate("conditional", decoded, target={attr: True})
                accs[attr] = figures.get("accuracy")
                shifts.append(sigma_weighted_shift(z1, z0, sampler.constraints.containing(attr).sigma_bar))
                rows.append(_row("conditional", method, attr, per, figures))
                outputs.append(decoded)
                bar.advance(1)
            pooled = evaluator.evaluate("conditional", torch.cat(outputs))
            rows.append(_row("conditional (all attributes)", method, "all", len(attributes) * per, pooled))
            valid = [a for a in accs.values() if a is not None]
            out[method] = {"mean_accuracy": round(sum(valid) / len(valid), 4) if valid else None,
                           "per_attribute": accs, "mean_sigma_weighted_shift": round(torch.cat(shifts).mean().item(), 4),
                           **{k: v for k, v in pooled.items() if k != "accuracy"}}
    return out


#: Requested values of a continuous attribute: this many, evenly spaced between these percentiles of the data.
GRID_VALUES, GRID_PERCENTILES = 9, (5.0, 95.0)


def value_grid(values: Tensor, count: int = GRID_VALUES) -> list[float]:
    """``count`` requested values evenly spaced between the `GRID_PERCENTILES` of the data's ``values (N,)``."""
    lo, hi = (torch.quantile(values.double(), p / 100).item() for p in GRID_PERCENTILES)
    if hi <= lo:
        lo, hi = values.min().item(), values.max().item()
    return [round(lo + (hi - lo) * i / (count - 1), 6) for i in range(count)]


def continuous_control(sampler, evaluator, n, seed, rows, progress, methods=("actor", "optimize")) -> dict[str, Any]:
    """Per continuous attribute and method: samples asked for each value of `value_grid` (``n`` in all), their
    realised values measured by the evaluator on the decoded outputs; Spearman correlation and mean absolute
    error between requested and realised values, and the evaluator's realism figures of the pooled samples."""
    from lctk.util.metrics import spearman

    out: dict[str, Any] = {}
    targets = sampler.constrained_continuous()
    if not targets:
        return out
    with progress.task("continuous attributes", total=len(targets) * len(methods) * GRID_VALUES) as bar:
        for t in targets:
            data = sampler.continuous_table()[:, sampler.store.continuous_names.index(t.name)]
            grid = [min(max(v, t.low), t.high) for v in value_grid(data)]
            per = max(4, n // len(grid))
            for method in methods:
                requested, realised, decoded = [], [], []
                for i, value in enumerate(grid):
                    want = Target(t.name, "continuous", value, t.low, t.high)
                    outputs = sampler.decode(sampler.latents([want], per, method, seed + 3000 + i)[1])
                    measured = evaluator.measure(t.name, outputs)
                    bar.advance(1)
                    if measured is None:
                        break
                    requested.append(torch.full((len(outputs),), value))
                    realised.append(measured.float().cpu())
                    decoded.append(outputs)
                if not realised:
                    out.setdefault(t.name, {})[method] = {"note": "the evaluator does not measure this attribute"}
                    continue
                req, got = torch.cat(requested), torch.cat(realised)
                figures = {"spearman": round(spearman(req, got), 4),
                           "mae": round((got - req).abs().mean().item(), 4),
                           "grid": grid, "realised_mean": [round(r.mean().item(), 4) for r in realised],
                           **evaluator.evaluate("continuous", torch.cat(decoded))}
                out.setdefault(t.name, {})[method] = figures
                rows.append(_row("continuous", method, t.name, len(req),
                                 {k: v for k, v in figures.items() if k not in ("grid", "realised_mean")}))
    return out


def _rules(sampler, evaluator, rules, n, seed, z_prior, rows) -> dict[str, Any]:
    """Per rule: the fraction of prior samples and of actor samples that satisfy it, and what the exact check
    of ``lctk sample --check`` gives (its satisfaction rate, and samples drawn per sample kept)."""
    out: dict[str, Any] = {}
    if not rules:
        return out
    prior_out = sampler.decode(z_prior)
    modality = sampler.run.modality
    for i, spec in enumerate(rules):
        _, rule = parse_rule(spec, modality)
        z0, z1 = sampler.latents([Target(spec, "rule", True)], n, "actor", seed + 2000 + i)
        decoded = sampler.decode(z1)
        figures = evaluator.evaluate("rule", decoded, target={spec: True})
        figures.pop("accuracy", None)  # the rule's own check, below, is exact
        prior_rate, actor_rate = rule(prior_out).float().mean().item(), rule(decoded).float().mean().item()
        checked, draws, ok = sampler.checked([Target(spec, "rule", True)], n, "actor", seed + 2000 + i, first=decoded)
        checked_rate = ok.float().mean().item()
        checked_figures = evaluator.evaluate("rule", checked, target={spec: True})
        checked_figures.pop("accuracy", None)
        out[spec] = {"prior_satisfied": round(prior_rate, 4), "actor_satisfied": round(actor_rate, 4), **figures,
                     "checked_satisfied": round(checked_rate, 4), "checked_draws_per_sample": round(draws / n, 3)}
        rows.append(_row("rule", "actor", spec, n, {"satisfied": round(actor_rate, 4), **figures}))
        rows.append(_row("rule", "actor+check", spec, n, {"satisfied": round(checked_rate, 4), **checked_figures}))
        rows.append(_row("rule", "prior", spec, n, {"satisfied": round(prior_rate, 4)}))
    return out


def _transforms(sampler, evaluator, dataset, attributes, m, seed, progress) -> dict[str, Any]:
    """Edit test examples towards an attribute they lack; success = the evaluator sees the attribute."""
    if not attributes or not sampler.backbone.has_encoder:
        return {}
    gen = torch.Generator().manual_seed(seed + 77)
    test = dataset.indices("test")
    test = test if len(test) else dataset.indices("train")
    names = dataset.attribute_names
    cols = torch.tensor([names.index(a) for a in attributes])
    successes, total, shifts = 0.0, 0, []
    per_target: dict[str, float] = {}
    with progress.task("transforms", total=len(attributes)) as bar:
        for j, attr in enumerate(attributes):
            lacking = test[~dataset.attributes[test][:, cols[j]]]
            k = max(1, m // len(attributes))
            if len(lacking) == 0:
                bar.advance(1)
                continue
            pick = lacking[torch.randperm(len(lacking), generator=gen)[:k]]
            z0, z1 = sampler.transform_latents(dataset.fetch(pick), [Target(attr, "attribute", True)], seed=seed)
            acc = evaluator.evaluate("transform", sampler.decode(z1), target={attr: True}).get("accuracy")
            if acc is not None:
                per_target[attr] = acc
                successes += acc * len(pick)
                total += len(pick)
            shifts.append(sigma_weighted_shift(z1, z0, sampler.constraints.containing(attr).sigma_bar))
            bar.advance(1)
    return {"success_rate": round(successes / total, 4) if total else None, "n": total, "per_target": per_target,
            "mean_sigma_weighted_shift": round(torch.cat(shifts).mean().item(), 4) if shifts else None}
