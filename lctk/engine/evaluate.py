"""`lctk evaluate`: independent measures of a run's outputs, by the modality's evaluator (a classifier
trained on real data for images; histograms for melodies), never by lctk's own critics.

Measured sets: reconstructions of test examples, prior samples, realism-constrained samples, conditional
samples per constrained attribute, continuous attributes asked for over a grid of values (Spearman correlation
and mean absolute error between requested and realised values, the realised ones measured on the decoded
outputs by the evaluator), rule satisfaction (prior vs each method), transforms. Every method the run has
constraints of is measured (actor constraints by ``actor`` and ``optimize``, diffusion ones by ``diffusion``),
with its training time (from the constraints' metrics) and its sampling time per 1,000 latents.
Generator-only backbones have no encoder: no reconstructions and no transforms are measured for them.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import Tensor

from lctk.engine.constraint_set import REALISM
from lctk.engine.losses import sigma_weighted_shift
from lctk.engine.method import DEFAULT_METHOD, OPTIMIZE
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


class Timed:
    """``sampler.latents`` that keeps, per method, the seconds spent and the latents drawn."""

    def __init__(self, sampler: Sampler, guidance: float | None = None):
        self.sampler, self.seconds, self.count, self.guidance = sampler, {}, {}, guidance

    def guidance_for(self, method: str) -> float | None:
        """The guidance weight to sample ``method`` with: the one asked for, for methods that take one."""
        if self.guidance is None or method == OPTIMIZE:
            return None
        return self.guidance if getattr(get_registries().constraint_method(method), "guided", False) else None

    def __call__(self, wants, n: int, method: str, seed: int):
        start = time.perf_counter()
        out = self.sampler.latents(wants, n, method, seed, guidance=self.guidance_for(method))
        self.seconds[method] = self.seconds.get(method, 0.0) + time.perf_counter() - start
        self.count[method] = self.count.get(method, 0) + n
        return out

    def per_thousand(self, method: str) -> float | None:
        """Seconds per 1,000 latents drawn by ``method`` (decoding excluded: it costs every method the same)."""
        return round(1000 * self.seconds[method] / self.count[method], 4) if self.count.get(method) else None


def sampling_methods_of(sampler: Sampler) -> list[str]:
    """The sampling methods this run's constraints serve: ``actor`` and ``optimize`` for actor constraints,
    then each other method its constraints were trained with."""
    have = {c.method for c in sampler.constraints.all()}
    first = [DEFAULT_METHOD, OPTIMIZE] if DEFAULT_METHOD in have else []
    return first + sorted(have - {DEFAULT_METHOD})


def covered(sampler: Sampler, names, method: str) -> list:
    """Those of ``names`` (targets, or their names) that some constraint of ``method`` covers."""
    return [t for t in names if sampler.constraints.containing(getattr(t, "name", t), method) is not None]


def method_costs(sampler: Sampler, timed: Timed, methods: list[str]) -> dict[str, Any]:
    """Per method: the training seconds of its constraints (optimize climbs the actor's) and the sampling time."""
    from lctk.util.io import load_json

    out: dict[str, Any] = {}
    for method in methods:
        trained = {}
        for c in sampler.constraints.all(DEFAULT_METHOD if method == OPTIMIZE else method):
            path = sampler.constraints.folder(c.name) / "metrics.json"
            seconds = (load_json(path, "constraint metrics").get("training") or {}).get("seconds") if path.is_file() else None
            trained[c.name] = seconds
        out[method] = {"training_seconds": trained, "sample_seconds_per_1000": timed.per_thousand(method)}
    return out


def evaluate_run(run: RunDir | str, n: int = 2000, seed: int = 0, progress: Progress | None = None,
                 guidance: float | None = None) -> dict[str, Any]:
    """Measure everything the run has; write and return ``RUN/metrics.json``. ``guidance``: the guidance weight
    of the methods that take one (diffusion), instead of each constraint's own ``sample_guidance``."""
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

        methods, timed = sampling_methods_of(sampler), Timed(sampler, guidance)
        if guidance is not None:
            metrics["guidance"] = guidance
        for method in [m for m in methods if m != OPTIMIZE]:
            names = [c.name for c in sampler.constraints.all(method)]
            _, z = timed([], n, method, seed)
            if method == DEFAULT_METHOD:
                label = "realism" if REALISM in names else f"realism (actor of {names[0]}, labels drawn from the data)"
                label = label if sampler.backbone.has_encoder else f"actor ({names[0]}, data labels)"
            else:
                own = f"{REALISM}-{method}"
                label = "realism" if own in names else f"realism ({names[0]}, no condition)"
            rows.append(_row(label, method, "-", n, evaluator.evaluate("realism", sampler.decode(z))))
        attributes = sampler.constrained_attributes()
        rules = sorted({c.targets[i] for c in sampler.constraints.all() for i in c.rule_cols})
        metrics["conditional"] = _conditional(sampler, evaluator, attributes, n, seed, rows, progress, methods, timed)
        metrics["continuous"] = continuous_control(sampler, evaluator, n, seed, rows, progress, methods, timed)
        metrics["rules"] = _rules(sampler, evaluator, rules, n, seed, z_prior, rows, methods, timed)
        m = max(10, min(200, n // 10))
        metrics["transforms"] = _transforms(sampler, evaluator, dataset, covered(sampler, attributes, DEFAULT_METHOD),
                                            m, seed, progress)
        for method in [x for x in methods if x not in (DEFAULT_METHOD, OPTIMIZE)]:
            metrics.setdefault("method_transforms", {})[method] = _transforms(
                sampler, evaluator, dataset, covered(sampler, attributes, method), m, seed, progress, method,
                timed.guidance_for(method))
        metrics["methods"] = method_costs(sampler, timed, methods)
        metrics["seconds"] = round(time.monotonic() - t0, 1)
    finally:
        sampler.close()
    save_json(run.metrics_path, metrics)
    return metrics


def _conditional(sampler, evaluator, attributes, n, seed, rows, progress, methods=(DEFAULT_METHOD, OPTIMIZE),
                 timed=None) -> dict[str, Any]:
    """Per attribute and method: accuracy of conditional samples; pooled Frechet distance; latent shift."""
    out: dict[str, Any] = {}
    timed = timed or Timed(sampler)
    if not attributes:
        return out
    per = max(10, n // len(attributes))
    plan = [(method, covered(sampler, attributes, method)) for method in methods]
    plan = [(method, attrs) for method, attrs in plan if attrs]
    with progress.task("conditional samples", total=sum(len(a) for _, a in plan)) as bar:
        for method, attrs in plan:
            outputs, accs, shifts = [], {}, []
            for i, attr in enumerate(attrs):
                wants = [Target(attr, "attribute", True)]
                z0, z1 = timed(wants, per, method, seed + 1000 + attributes.index(attr))
                decoded = sampler.decode(z1)
                figures = evaluator.evaluate("conditional", decoded, target={attr: True})
                accs[attr] = figures.get("accuracy")
                shifts.append(sigma_weighted_shift(z1, z0, sampler.constraints.containing(attr, method).sigma_bar))
                rows.append(_row("conditional", method, attr, per, figures))
                outputs.append(decoded)
                bar.advance(1)
            pooled = evaluator.evaluate("conditional", torch.cat(outputs))
            rows.append(_row("conditional (all attributes)", method, "all", len(attrs) * per, pooled))
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


def continuous_control(sampler, evaluator, n, seed, rows, progress, methods=(DEFAULT_METHOD, OPTIMIZE),
                       timed=None) -> dict[str, Any]:
    """Per continuous attribute and method: samples asked for each value of `value_grid` (``n`` in all), their
    realised values measured by the evaluator on the decoded outputs; Spearman correlation and mean absolute
    error between requested and realised values, and the evaluator's realism figures of the pooled samples."""
    from lctk.util.metrics import spearman

    out: dict[str, Any] = {}
    timed = timed or Timed(sampler)
    targets = sampler.constrained_continuous()
    if not targets:
        return out
    plan = [(t, [m for m in methods if covered(sampler, [t], m)]) for t in targets]
    with progress.task("continuous attributes", total=sum(len(ms) for _, ms in plan) * GRID_VALUES) as bar:
        for t, target_methods in plan:
            data = sampler.continuous_table()[:, sampler.store.continuous_names.index(t.name)]
            grid = [min(max(v, t.low), t.high) for v in value_grid(data)]
            per = max(4, n // len(grid))
            for method in target_methods:
                requested, realised, decoded = [], [], []
                for i, value in enumerate(grid):
                    want = Target(t.name, "continuous", value, t.low, t.high)
                    outputs = sampler.decode(timed([want], per, method, seed + 3000 + i)[1])
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


def _rules(sampler, evaluator, rules, n, seed, z_prior, rows, methods=(DEFAULT_METHOD,), timed=None) -> dict[str, Any]:
    """Per rule: the fraction of prior samples and of each method's samples that satisfy it, and for the actor what
    the exact check of ``lctk sample --check`` gives (its satisfaction rate, and samples drawn per sample kept).
    Other methods' figures are under ``methods`` (``satisfied`` and the evaluator's)."""
    out: dict[str, Any] = {}
    timed = timed or Timed(sampler)
    if not rules:
        return out
    prior_out = sampler.decode(z_prior)
    modality = sampler.run.modality
    for i, spec in enumerate(rules):
        _, rule = parse_rule(spec, modality)
        want = [Target(spec, "rule", True)]
        prior_rate = rule(prior_out).float().mean().item()
        out[spec] = {"prior_satisfied": round(prior_rate, 4)}
        for method in [m for m in methods if m != OPTIMIZE and covered(sampler, [spec], m)]:
            z0, z1 = timed(want, n, method, seed + 2000 + i)
            decoded = sampler.decode(z1)
            figures = evaluator.evaluate("rule", decoded, target={spec: True})
            figures.pop("accuracy", None)  # the rule's own check, below, is exact
            rate = rule(decoded).float().mean().item()
            rows.append(_row("rule", method, spec, n, {"satisfied": round(rate, 4), **figures}))
            if method != DEFAULT_METHOD:
                out[spec].setdefault("methods", {})[method] = {"satisfied": round(rate, 4), **figures}
                continue
            checked, draws, ok = sampler.checked(want, n, method, seed + 2000 + i, first=decoded)
            checked_rate = ok.float().mean().item()
            checked_figures = evaluator.evaluate("rule", checked, target={spec: True})
            checked_figures.pop("accuracy", None)
            out[spec].update({"actor_satisfied": round(rate, 4), **figures, "checked_satisfied": round(checked_rate, 4),
                              "checked_draws_per_sample": round(draws / n, 3)})
            rows.append(_row("rule", "actor+check", spec, n, {"satisfied": round(checked_rate, 4), **checked_figures}))
        rows.append(_row("rule", "prior", spec, n, {"satisfied": round(prior_rate, 4)}))
    return out


def _transforms(sampler, evaluator, dataset, attributes, m, seed, progress, method=DEFAULT_METHOD,
                guidance=None) -> dict[str, Any]:
    """Edit test examples towards an attribute they lack (by ``method``'s edits, with its default settings);
    success = the evaluator sees the attribute."""
    if not attributes or not sampler.backbone.has_encoder:
        return {}
    gen = torch.Generator().manual_seed(seed + 77)
    test = dataset.indices("test")
    test = test if len(test) else dataset.indices("train")
    names = dataset.attribute_names
    cols = torch.tensor([names.index(a) for a in attributes])
    successes, total, shifts = 0.0, 0, []
    per_target: dict[str, float] = {}
    with progress.task(f"transforms ({method})", total=len(attributes)) as bar:
        for j, attr in enumerate(attributes):
            lacking = test[~dataset.attributes[test][:, cols[j]]]
            k = max(1, m // len(attributes))
            if len(lacking) == 0:
                bar.advance(1)
                continue
            pick = lacking[torch.randperm(len(lacking), generator=gen)[:k]]
            z0, z1 = sampler.transform_latents(dataset.fetch(pick), [Target(attr, "attribute", True)], seed=seed,
                                               method=method, guidance=guidance)
            acc = evaluator.evaluate("transform", sampler.decode(z1), target={attr: True}).get("accuracy")
            if acc is not None:
                per_target[attr] = acc
                successes += acc * len(pick)
                total += len(pick)
            shifts.append(sigma_weighted_shift(z1, z0, sampler.constraints.containing(attr, method).sigma_bar))
            bar.advance(1)
    return {"success_rate": round(successes / total, 4) if total else None, "n": total, "per_target": per_target,
            "mean_sigma_weighted_shift": round(torch.cat(shifts).mean().item(), 4) if shifts else None}
