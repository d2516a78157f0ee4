"""Training of the method ``actor`` (`LatentConstraint.fit`): critics and actor from the latent store, in memory
or streamed from it when it exceeds the memory budget, with the latent-space figures kept in metrics.json."""

from __future__ import annotations

from typing import Any

import torch

from lctk.engine import sources
from lctk.engine.constraint import LatentConstraint
from lctk.engine.losses import sigma_weighted_shift
from lctk.engine.method import TrainingData, label_table
from lctk.engine.training import ConstraintTrainer, LatentSource, StreamingLatentSource
from lctk.util.errors import LctkError
from lctk.util.progress import console

#: Rows of the test part (else the training part) that the latent-space metrics are measured on.
METRIC_ROWS = 100_000


def fit_actor(model: LatentConstraint, data: TrainingData) -> dict[str, Any]:
    """Train ``model`` in place from ``data``; return its losses, latent-space figures and training facts."""
    store, config = data.store, model.config
    # the stream carries binary attributes only: continuous targets load the store whatever its size
    streamed = sources.latent_bytes(store) > data.memory_budget and all(t.kind != "continuous" for t in data.targets)
    if streamed:
        console.print(f"streaming latents from {store.path}: {sources.latent_bytes(store) / 2**30:.2f} GiB of mu and "
                      f"sigma exceed the memory budget of {data.memory_budget / 2**30:.2f} GiB (--memory-budget)",
                      highlight=False)
        columns = [store.attribute_names.index(t.name) for t in data.targets if t.kind == "attribute"]
        source = StreamingLatentSource(store, columns, seed=config.seed, block_batch=config.batch_size)
    else:
        source = LatentSource(*data.labelled())
    trainer = ConstraintTrainer(model, source, config, data.checkpoint, data.label_rules, data.progress)
    try:
        run_trainer(trainer, data.resume)
    finally:
        getattr(source, "close", lambda: None)()
    return {"losses": trainer.last, **actor_metrics(model, store, data.label_rules, seed=config.seed),
            "training": {"latents": "stream" if streamed else "memory", "steps": trainer.total,
                         "resumed": data.resume}}


def run_trainer(trainer, resume: bool) -> None:
    """Train to the end; an interrupt leaves the checkpoint and says how to resume."""
    try:
        trainer.train(resume=resume)
    except KeyboardInterrupt:
        raise LctkError("interrupted; run the same `lctk add-constraint` command again to resume") from None
    trainer.m.eval()


def actor_metrics(model: LatentConstraint, store, label_rules, n: int = 2048, seed: int = 0) -> dict[str, Any]:
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
