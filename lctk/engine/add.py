"""`lctk add-constraint` as a Python function: train critics and actor for some attributes and/or rules
from ``RUN/latents.h5`` into ``RUN/constraints/NAME/``. The backbone's weights are only read."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

from lctk.util.config import from_dict
from lctk.engine.config import ConstraintConfig
from lctk.engine.constraint import LatentConstraint, check_size
from lctk.engine.constraint_set import REALISM, WRITER_PID, RunConstraints, remove
from lctk.engine.losses import sigma_weighted_shift
from lctk.engine import sources
from lctk.engine.targets import Target, parse_targets
from lctk.engine.training import ConstraintTrainer, LatentSource, StreamingLatentSource
from lctk.util.errors import LctkError
from lctk.interfaces import Backbone, Rule
from lctk.util.io import load_json, save_json
from lctk.latents import LatentStore
from lctk.util.outputs import check_name, check_writable, default_name
from lctk.util.progress import Progress, console
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


def label_table(store: LatentStore, targets: Sequence[Target], part: str = "train", limit: int | None = None
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


def _metrics(model: LatentConstraint, store: LatentStore, label_rules, n: int = 2048, seed: int = 0) -> dict[str, Any]:
    """Latent-space figures of a trained constraint (independent measures are `lctk evaluate`'s job)."""
    gen = torch.Generator().manual_seed(seed + 12345)
    out: dict[str, Any] = {}
    part = "test" if len(store.rows_of("test")) else "train"
    mu, _, labels = label_table(store, model.targets_full, part, limit=METRIC_ROWS)  # labels (N, K_a)
    with torch.no_grad():
        if model.attr_cols:
            logits = model.attr_critic(mu)  # (N, K_a)
            binary = [j for j in range(len(model.attr_cols)) if j not in model.continuous_pos]
            if binary:
                out["attribute_critic_test_accuracy"] = {
                    model.targets[model.attr_cols[j]]: round(((logits[:, j] > 0).float() == labels[:, j]).float().mean().item(), 4)
                    for j in binary}
            if model.continuous_pos:  # mean absolute error in the attribute's own units
                out["attribute_critic_test_mae"] = {
                    t.name: round(((torch.sigmoid(logits[:, j]) - labels[:, j]).abs().mean() * (t.high - t.low)).item(), 4)
                    for j, t in ((j, model.targets_full[model.attr_cols[j]]) for j in model.continuous_pos)}
        z = torch.randn(n, model.sigma_bar.numel(), generator=gen)
        y = torch.ones(n, len(model.targets))
        if model.attr_cols:  # condition on label rows of real examples
            y[:, model.attr_cols] = labels[torch.randint(0, len(labels), (n,), generator=gen)]
        z_new = model.act(z, y)
        out["mean_sigma_weighted_shift"] = round(sigma_weighted_shift(z_new, z, model.sigma_bar).mean().item(), 4)
        out["realism_prob_prior"] = round(torch.sigmoid(model.realism(z, y[:, model.attr_cols])).mean().item(), 4)
        out["realism_prob_actor"] = round(torch.sigmoid(model.realism(z_new, y[:, model.attr_cols])).mean().item(), 4)
        binary = [j for j in range(len(model.attr_cols)) if j not in model.continuous_pos]
        if binary:
            hit = ((model.attr_critic(z_new)[:, binary] > 0).float() == y[:, model.attr_cols][:, binary]).all(dim=1)
            out["actor_attribute_match_by_critic"] = round(hit.float().mean().item(), 4)
        if model.rule_cols:
            before, after = label_rules(z[:512]), label_rules(z_new[:512])
            for j, i in enumerate(model.rule_cols):
                out[f"rule {model.targets[i]}"] = {"prior_satisfied": round(before[:, j].mean().item(), 4),
                                                   "actor_satisfied": round(after[:, j].mean().item(), 4)}
    return out


def resolve_targets(attrs: Sequence[str], rules: Sequence[str], known: Sequence[str], modality: str,
                    continuous: Mapping[str, tuple[float, float]] | None = None, hint: str = ""
                    ) -> tuple[list[Target], dict[str, Rule]]:
    """The requested targets, attributes before rules, each learned for both values (the whole range of a
    continuous one; which value to sample is chosen at sampling time), and the parsed rules by spec."""
    targets, rule_objs = parse_targets(attrs, rules, known, modality, continuous, hint)
    targets = [dataclasses.replace(t, value=None if t.kind == "continuous" else True) for t in targets]
    targets.sort(key=lambda t: t.kind == "rule")
    return targets, rule_objs


def constraint_config(overrides: Mapping[str, Any] | None, defaults: Mapping[str, Any] | None = None) -> ConstraintConfig:
    """The defaults, then ``defaults`` (a backbone kind's own), then the user's ``overrides``, checked."""
    values = {**dataclasses.asdict(ConstraintConfig()), **(defaults or {}), **(overrides or {})}
    return from_dict(ConstraintConfig, values, "constraint setting")


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


def run_trainer(trainer: ConstraintTrainer, resume: bool) -> None:
    """Train to the end; an interrupt leaves the checkpoint and says how to resume."""
    try:
        trainer.train(resume=resume)
    except KeyboardInterrupt:
        raise LctkError("interrupted; run the same `lctk add-constraint` command again to resume") from None
    trainer.m.eval()


def finish(constraints: RunConstraints, partial: Path, name: str, model: LatentConstraint,
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
                   memory_budget: str | int | None = None) -> Path:
    """Train a constraint for ``attrs`` (attribute names, negations allowed) and ``rules`` (rule specs);
    with neither, the unconditional realism constraint. Returns its folder. An interrupted run of the same
    request resumes; an existing constraint of that name is kept unless ``force``. Latents larger than
    ``memory_budget`` (bytes or a size such as ``2GiB``; default: `lctk.engine.sources.memory_budget`) are
    streamed from the store instead of loaded. Generator-only backbones learn from labelled prior samples
    instead (see `lctk.engine.generator`)."""
    run = run if isinstance(run, RunDir) else RunDir(run)
    progress = progress or Progress()
    budget = sources.memory_budget(memory_budget)
    config = constraint_config(overrides)  # every --set value checked before any work
    if name is not None:
        check_name(name, "--name")
    info = run.read()
    check_writable(run.constraints_dir, f"run folder {run.path}")
    backbone = run.load_backbone()
    if not backbone.has_encoder:
        from lctk.engine.generator import add_generator_constraint

        return add_generator_constraint(run, info, backbone, attrs, rules, name, overrides, force, progress)
    with open_latents(run, backbone) as store:
        targets, rule_objs = resolve_targets(attrs, rules, store.attribute_names, run.modality,
                                             store.continuous_ranges, store.continuous_hint())
        name = name or default_name([t.name for t in targets], REALISM)
        check_size(targets, store.latent_dim, config, "this constraint")
        constraints = RunConstraints(run)
        request = {"targets": [dataclasses.asdict(t) for t in targets], "config": dataclasses.asdict(config),
                   "fingerprint": store.fingerprint}
        partial, resume = start_partial(constraints, name, request, force)
        try:
            return _train(run, store, backbone, constraints, partial, resume, name, targets, rule_objs, config,
                          budget, progress)
        finally:
            constraints.release()


def _train(run: RunDir, store: LatentStore, backbone: Backbone, constraints: RunConstraints, partial: Path,
           resume: bool, name: str, targets: list[Target], rule_objs: dict[str, Rule], config: ConstraintConfig,
           budget: int, progress: Progress) -> Path:
    """Train constraint ``name`` in ``partial`` (locked) from ``store`` and move it into place."""
    # the stream carries binary attributes only: continuous targets load the store whatever its size
    streamed = sources.latent_bytes(store) > budget and all(t.kind != "continuous" for t in targets)
    if streamed:
        console.print(f"streaming latents from {store.path}: {sources.latent_bytes(store) / 2**30:.2f} GiB of mu and sigma "
                      f"exceed the memory budget of {budget / 2**30:.2f} GiB (--memory-budget)", highlight=False)
        columns = [store.attribute_names.index(t.name) for t in targets if t.kind == "attribute"]
        source = StreamingLatentSource(store, columns, seed=config.seed, block_batch=config.batch_size)
    else:
        source = LatentSource(*label_table(store, targets))
    torch.manual_seed(config.seed)
    model = LatentConstraint(name, targets, store.latent_dim, config, store.sigma_bar(), store.fingerprint)
    label = rule_labeler(backbone, [rule_objs[t.name] for t in targets if t.kind == "rule"]) if rule_objs else None
    trainer = ConstraintTrainer(model, source, config, partial / "checkpoint.safetensors", label, progress)
    started = time.monotonic()
    try:
        run_trainer(trainer, resume)
    finally:
        getattr(source, "close", lambda: None)()
    seconds = time.monotonic() - started
    metrics = {"losses": trainer.last, **_metrics(model, store, label, seed=config.seed),
               "training": {"latents": "stream" if streamed else "memory", "seconds": round(seconds, 3),
                            "steps": trainer.total, "resumed": resume}}
    return finish(constraints, partial, name, model, metrics)
