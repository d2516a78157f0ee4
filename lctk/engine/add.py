"""`lctk add-constraint` as a Python function: train a constraint of some method (``actor`` by default,
``diffusion``, or one a plugin registers) for some attributes and/or rules from ``RUN/latents.h5`` into
``RUN/constraints/NAME/``. The backbone's weights are only read."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from lctk.util.config import from_dict
from lctk.engine.actor_fit import METRIC_ROWS, actor_metrics, run_trainer  # noqa: F401  (their old home)
from lctk.engine.config import ConstraintConfig
from lctk.engine.constraint import check_size
from lctk.engine.constraint_set import REALISM, WRITER_PID, RunConstraints, remove
from lctk.engine import sources
from lctk.engine.method import (DEFAULT_METHOD, TrainingData, default_constraint_name, label_table,  # noqa: F401
                                method_class)
from lctk.engine.targets import Target, parse_targets
from lctk.util.errors import LctkError
from lctk.interfaces import Backbone, Constraint, Rule
from lctk.util.io import load_json, save_json
from lctk.latents import LatentStore
from lctk.util.outputs import check_name, check_writable
from lctk.util.progress import Progress
from lctk.run import RunDir, fingerprint


#: Rows of the test part (else the training part) that the latent-space metrics are measured on.
METRIC_ROWS = 100_000


def rule_labeler(backbone: Backbone, rules: Sequence[Rule], batch: int = 1024):
    """``z (B, D)`` -> ``(B, K_r)`` float: decode z (argmax) and check each rule on the outputs."""
    def label(z: torch.Tensor) -> torch.Tensor:
        cols = []
        with torch.no_grad():
            for i in range(0, len(z), batch):
                out = backbone.decode(z[i:i + batch])
                cols.append(torch.stack([rule(out).bool() for rule in rules], dim=1))
        return torch.cat(cols).float()
    return label


def open_latents(run: RunDir, backbone: Backbone) -> LatentStore:
    """The run's latent store, refused when another backbone encoded it."""
    store = LatentStore.open(run.latents_path)
    try:
        store.check_fingerprint(fingerprint(backbone))
        check_latent_size(store, backbone.latent_dim)
    except LctkError:
        store.close()
        raise
    return store


def check_latent_size(store: LatentStore, latent_dim: int) -> None:
    """Refuse a store whose latent size differs from the backbone's (the fingerprint alone is the sender's word)."""
    if store.latent_dim != latent_dim:
        raise LctkError(f"latent store {store.path} holds {store.latent_dim}-dimensional latents but the backbone's "
                        f"latent size is {latent_dim}; re-encode with `lctk encode {store.path.parent} --force`")


def resolve_targets(attrs: Sequence[str], rules: Sequence[str], known: Sequence[str], modality: str,
                    continuous: Mapping[str, tuple[float, float]] | None = None, hint: str = ""
                    ) -> tuple[list[Target], dict[str, Rule]]:
    """The requested targets, attributes before rules, each learned for both values (the whole range of a
    continuous one; which value to sample is chosen at sampling time), and the parsed rules by spec."""
    targets, rule_objs = parse_targets(attrs, rules, known, modality, continuous, hint)
    targets = [dataclasses.replace(t, value=None if t.kind == "continuous" else True) for t in targets]
    targets.sort(key=lambda t: t.kind == "rule")
    return targets, rule_objs


def constraint_config(overrides: Mapping[str, Any] | None, defaults: Mapping[str, Any] | None = None,
                      settings_class: type = ConstraintConfig) -> Any:
    """The defaults of ``settings_class`` (a method's settings), then ``defaults`` (a backbone kind's own), then
    the user's ``overrides``, checked."""
    values = {**dataclasses.asdict(settings_class()), **(defaults or {}), **(overrides or {})}
    return from_dict(settings_class, values, "constraint setting")


def start_partial(constraints: RunConstraints, name: str, request: dict[str, Any], force: bool) -> tuple[Path, bool]:
    """The folder constraint ``name`` is trained in (locked for this process until `finish` or
    ``constraints.release()``), and whether an interrupted run of the same ``request`` left a checkpoint there to
    resume; an existing constraint of that name is refused unless ``force``, as is a second writer of it."""
    constraints.check_free(name, force)
    partial = constraints.lock(name)
    try:
        constraints.check_free(name, force)  # again: another writer may have finished it meanwhile
        resume = regular(partial / "checkpoint.safetensors") and regular(partial / "request.json") and \
            load_json(partial / "request.json") == request
        if not resume:
            for child in partial.iterdir():
                if child.name != WRITER_PID:
                    remove(child)
        save_json(partial / "request.json", request)
    except BaseException:
        constraints.release()
        raise
    return partial, resume


def regular(path: Path) -> bool:
    """A regular file, not a link to one."""
    return path.is_file() and not path.is_symlink()


def finish(constraints: RunConstraints, partial: Path, name: str, model: Constraint,
           metrics: dict[str, Any]) -> Path:
    """Save the trained constraint and its metrics, drop the training files, move the folder into place."""
    model.save(partial)
    save_json(partial / "metrics.json", metrics)
    (partial / "checkpoint.safetensors").unlink(missing_ok=True)
    (partial / "request.json").unlink(missing_ok=True)
    try:
        return constraints.install(partial, name)
    finally:
        constraints.release()


def add_constraint(run: RunDir | str | Path, attrs: Sequence[str] = (), rules: Sequence[str] = (), name: str | None = None,
                   overrides: Mapping[str, Any] | None = None, force: bool = False, progress: Progress | None = None,
                   memory_budget: str | int | None = None, method: str = DEFAULT_METHOD) -> Path:
    """Train a constraint of ``method`` for ``attrs`` (attribute names, negations allowed) and ``rules`` (rule
    specs); with neither, the unconditional realism constraint. Returns its folder. An interrupted run of the
    same request resumes; an existing constraint of that name is kept unless ``force``. Latents larger than
    ``memory_budget`` (bytes or a size such as ``2GiB``; default: `lctk.engine.sources.memory_budget`) are
    streamed from the store instead of loaded (by methods that can). Generator-only backbones learn actor
    constraints from labelled prior samples instead (see `lctk.engine.generator`)."""
    run = run if isinstance(run, RunDir) else RunDir(run)
    progress = progress or Progress()
    budget = sources.memory_budget(memory_budget)
    cls = method_class(method)
    method = cls.method or method
    config = constraint_config(overrides, settings_class=cls.settings_class)  # every --set value checked first
    if name is not None:
        check_name(name, "--name")
    info = run.read()
    check_writable(run.constraints_dir, f"run folder {run.path}")
    backbone = run.load_backbone()
    if not backbone.has_encoder:
        if method != DEFAULT_METHOD:
            raise LctkError(f"run {run.path} has a generator-only backbone (no encodings to learn from); constraint "
                            f"method {method!r} needs a latent store, use --method actor")
        from lctk.engine.generator import add_generator_constraint

        return add_generator_constraint(run, info, backbone, attrs, rules, name, overrides, force, progress)
    with open_latents(run, backbone) as store:
        targets, rule_objs = resolve_targets(attrs, rules, store.attribute_names, run.modality,
                                             store.continuous_ranges, store.continuous_hint())
        name = name or default_constraint_name([t.name for t in targets], method, REALISM)
        if isinstance(config, ConstraintConfig):
            check_size(targets, store.latent_dim, config, "this constraint")
        constraints = RunConstraints(run)
        request = {"method": method, "targets": [dataclasses.asdict(t) for t in targets],
                   "config": dataclasses.asdict(config), "fingerprint": store.fingerprint}
        if method == DEFAULT_METHOD:
            del request["method"]  # an actor run interrupted before methods existed still resumes
        partial, resume = start_partial(constraints, name, request, force)
        try:
            label = rule_labeler(backbone, [rule_objs[t.name] for t in targets if t.kind == "rule"]) if rule_objs else None
            data = TrainingData(store, targets, label, partial / "checkpoint.safetensors", resume, progress, budget)
            torch.manual_seed(getattr(config, "seed", 0))
            model = cls.create(name, targets, store.latent_dim, config, data)
            started = time.monotonic()
            metrics = model.fit(data)
            training = metrics.setdefault("training", {})
            training.update(seconds=round(time.monotonic() - started, 3), resumed=resume, method=method)
            return finish(constraints, partial, name, model, metrics)
        finally:
            constraints.release()
