"""Training a constraint from cached latents and prior draws only (the backbone is only used, frozen, to
decode latents for zero-shot rules).

Phase 1 fits the attribute critic D_attr(z) on encodings with their labels. Phase 2 alternates
``critic_steps`` realism-critic steps (real: z ~ q(z|x) with its labels; fake: actor outputs G(z ~ p(z), y),
raw prior draws, and real z with mismatched labels) and one actor step (-log D(G(z, y), y) + attribute
guidance + distance penalty). Rule critics learn from latents decoded and checked by the rules, relabelled
as the actor moves. Every random draw of step s comes from (seed, s): resuming is bit-identical on CPU.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from lctk.util.checkpoint import load_checkpoint, save_checkpoint
from lctk.engine.config import ConstraintConfig
from lctk.engine.constraint import LatentConstraint
from lctk.engine.losses import distance_penalty, gradient_penalty, masked_sigmoid_ce, sigmoid_ce
from lctk.util.errors import LctkError, TrainingDiverged
from lctk.loop import StepLoop, adam, check_finite, step_generator
from lctk.util.progress import Progress


class LatentSource:
    """Training latents in memory: ``mu, sigma (N, D)``, attribute labels ``(N, K_a)`` float."""

    def __init__(self, mu: Tensor, sigma: Tensor, labels: Tensor):
        self.mu, self.sigma, self.labels = mu, sigma, labels.float()
        self.std = mu.std(dim=0) if len(mu) > 1 else torch.ones(mu.shape[1])  # (D,) spread of the encodings

    def __len__(self) -> int:
        return len(self.mu)

    def batch(self, n: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """``z (n, D)`` drawn from q(z|x) of random examples, and their labels ``(n, K_a)``."""
        idx = torch.randint(0, len(self.mu), (n,), generator=gen)
        eps = torch.randn(n, self.mu.shape[1], generator=gen)
        return self.mu[idx] + self.sigma[idx] * eps, self.labels[idx]

    def labels_like(self, n: int, gen: torch.Generator) -> Tensor:
        """``(n, K_a)`` label rows of random examples (the data's joint attribute distribution)."""
        return self.labels[torch.randint(0, len(self.labels), (n,), generator=gen)]

    def resume_at(self, step: int) -> None:
        """Nothing to do: every draw comes from the step's generator, so a resumed run is bit-identical."""


class StreamingLatentSource:
    """Training latents streamed from a `LatentStore` in shuffled contiguous blocks (memory bounded by the
    store's stream buffer, not by its size); the same interface as `LatentSource`. ``columns`` picks the
    attribute columns used as labels. Batches follow the stream's own order, seeded by ``seed`` and, after
    `resume_at`, by the step resumed from: a resumed run depends on where it was interrupted, so it is not
    bit-identical to an uninterrupted one (the in-memory source's is)."""

    def __init__(self, store, columns: list[int], part: str = "train", seed: int = 0, block_batch: int = 256):
        self.store, self.columns = store, list(columns)
        self.part, self.seed, self.block_batch = part, seed, block_batch
        self.rows = len(store.rows_of(part))
        self._stream = store.stream(block_batch, part, generator=torch.Generator().manual_seed(seed))
        self._mu = self._sigma = self._labels = None  # what is left of the last streamed batch
        self.std = self._std(part)

    def _std(self, part: str) -> Tensor:
        """``(D,)`` spread of the encodings, in one pass over the store in chunks (float64 sums)."""
        from lctk.latents import CHUNK_ROWS

        want = None if part == "all" else (0 if part == "train" else 1)
        total = torch.zeros(self.store.latent_dim, dtype=torch.float64)
        sq, n = torch.zeros_like(total), 0
        step = 8 * CHUNK_ROWS
        for lo in range(0, self.store.rows, step):
            mu = torch.from_numpy(self.store.file["mu"][lo:lo + step]).double()
            if want is not None:
                mu = mu[self.store.split[lo:lo + step] == want]
            total += mu.sum(dim=0)
            sq += mu.pow(2).sum(dim=0)
            n += len(mu)
        if n < 2:
            return torch.ones(self.store.latent_dim)
        return ((sq - total.pow(2) / n) / (n - 1)).clamp(min=0).sqrt().float()

    def __len__(self) -> int:
        return self.rows

    def _take(self, n: int) -> tuple[Tensor, Tensor, Tensor]:
        """The next ``n`` streamed rows: ``mu, sigma (n, D)`` and labels ``(n, K_a)`` float."""
        parts: list[tuple[Tensor, Tensor, Tensor]] = []
        got = 0
        while got < n:
            if self._mu is None or len(self._mu) == 0:
                mu, sigma, attrs = next(self._stream)
                self._mu, self._sigma, self._labels = mu, sigma, attrs[:, self.columns].float()
            k = min(n - got, len(self._mu))
            parts.append((self._mu[:k], self._sigma[:k], self._labels[:k]))
            self._mu, self._sigma, self._labels = self._mu[k:], self._sigma[k:], self._labels[k:]
            got += k
        if len(parts) == 1:
            return parts[0]
        return tuple(torch.cat([p[i] for p in parts]) for i in range(3))  # type: ignore[return-value]

    def batch(self, n: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """``z (n, D)`` drawn from q(z|x) of the next streamed examples, and their labels ``(n, K_a)``."""
        mu, sigma, labels = self._take(n)
        eps = torch.randn(n, mu.shape[1], generator=gen)
        return mu + sigma * eps, labels

    def labels_like(self, n: int, gen: torch.Generator) -> Tensor:
        """``(n, K_a)`` label rows of streamed examples (the data's joint attribute distribution)."""
        return self._take(n)[2]

    def resume_at(self, step: int) -> None:
        """Restart the stream in an order seeded by (seed, ``step``) (the stream's position is not checkpointed)."""
        if step:
            self._stream.close()
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
            self._stream = self.store.stream(self.block_batch, self.part, generator=gen)
            self._mu = self._sigma = self._labels = None

    def close(self) -> None:
        """Stop the stream's reader thread."""
        self._stream.close()


class RulePool(nn.Module):
    """A ring buffer of decoded-and-checked latents: ``z (P, D)`` and rule labels ``(P, K_r)``."""

    def __init__(self, size: int, latent_dim: int, n_rules: int):
        super().__init__()
        self.register_buffer("z", torch.zeros(size, latent_dim))
        self.register_buffer("labels", torch.zeros(size, n_rules))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    def add(self, z: Tensor, labels: Tensor) -> None:
        """Append (overwriting the oldest once full)."""
        size = len(self.z)
        pos = (int(self.count) + torch.arange(len(z))) % size
        self.z[pos], self.labels[pos] = z, labels
        self.count += len(z)

    def batch(self, n: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """A random batch of held latents and their labels."""
        filled = min(int(self.count), len(self.z))
        idx = torch.randint(0, filled, (n,), generator=gen)
        return self.z[idx], self.labels[idx]


class ConstraintTrainer(StepLoop):
    """Trains a `LatentConstraint` in place; ``label_rules(z) -> (B, K_r)`` decodes and checks rules."""

    def __init__(self, model: LatentConstraint, source: LatentSource, config: ConstraintConfig, checkpoint_path,
                 label_rules: Callable[[Tensor], Tensor] | None = None, progress: Progress | None = None):
        self.m, self.src, self.c = model, source, config
        self.checkpoint_path = checkpoint_path
        self.label_rules = label_rules
        self.progress = progress or Progress()
        self.latent_dim = model.sigma_bar.numel()
        self.k_a, self.k_r = len(model.attr_cols), len(model.rule_cols)
        #: ``(K_a,)`` how far apart two label rows must be, per column, to count as mismatched: any difference
        #: of a binary label; half the data's spread of a continuous one (scaled values).
        self.mismatch = torch.full((self.k_a,), 0.5)
        if model.continuous_pos and len(source) > 1:
            spread = source.labels_like(min(len(source), 8192), torch.Generator().manual_seed(config.seed))
            self.mismatch[model.continuous_pos] = 0.5 * spread[:, model.continuous_pos].std(dim=0)
        betas = (config.beta1, config.beta2)
        self.opt_d = adam(model.realism.parameters(), lr=config.lr, betas=betas) if model.realism else None
        self.opt_g = adam(model.actor.parameters(), lr=config.lr, betas=betas)
        self.opt_a = adam(model.attr_critic.parameters(), lr=config.lr) if model.attr_critic else None
        self.opt_r = adam(model.rule_critic.parameters(), lr=config.lr) if model.rule_critic else None
        self.pool = RulePool(config.rule_pool, self.latent_dim, self.k_r) if self.k_r else None
        self.step = 0  # counts classifier steps, then actor steps
        self.total = (config.classifier_steps if self.k_a else 0) + config.steps
        self.checkpoint_every = config.checkpoint_every
        self.last: dict[str, float] = {}

    # -- state ---------------------------------------------------------------------------------------------
    def _objects(self):
        modules = {"constraint": self.m}
        if self.pool is not None:
            modules["pool"] = self.pool
        opts = {k: v for k, v in (("d", self.opt_d), ("g", self.opt_g), ("a", self.opt_a), ("r", self.opt_r)) if v}
        return modules, opts

    def save(self) -> None:
        """Write the training checkpoint atomically; weights that are no longer finite are never saved."""
        check_finite(self.m.named_parameters(), self.step, "the last good checkpoint was kept; run the same command "
                     "again to resume from it")
        modules, opts = self._objects()
        save_checkpoint(self.checkpoint_path, modules=modules, optimizers=opts, meta={"step": self.step, "last": self.last})

    def restore(self) -> None:
        """Continue from the checkpoint."""
        modules, opts = self._objects()
        meta = load_checkpoint(self.checkpoint_path, modules=modules, optimizers=opts)
        self.step, self.last = int(meta["step"]), dict(meta.get("last", {}))

    # -- pieces --------------------------------------------------------------------------------------------
    def _condition(self, n: int, gen: torch.Generator) -> Tensor:
        """``(n, K)`` conditions for fakes and actor steps: data label rows (continuous values drawn uniformly
        over the whole range in a fraction ``uniform_fraction`` of the rows), random rule-enforce bits."""
        parts = [self.src.labels_like(n, gen)] if self.k_a else []
        pos = self.m.continuous_pos
        if pos:
            parts[0] = parts[0].clone()
            uniform = torch.rand(n, len(pos), generator=gen)  # (n, C) scaled values
            pick = torch.rand(n, 1, generator=gen) < self.c.uniform_fraction  # (n, 1)
            parts[0][:, pos] = torch.where(pick, uniform, parts[0][:, pos])
        if self.k_r:
            parts.append((torch.rand(n, self.k_r, generator=gen) < 0.5).float())
        return torch.cat(parts, dim=1) if parts else torch.zeros(n, 0)

    def _update(self, name: str, loss: Tensor, opt: torch.optim.Optimizer) -> None:
        """One optimizer step on ``loss`` (refused when it is not finite)."""
        self._check(name, loss)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def _check(self, name: str, value: Tensor) -> None:
        if not torch.isfinite(value):
            raise TrainingDiverged(f"{name} loss became {value.item()} at step {self.step}; the last good checkpoint "
                                   "was kept; run the same command again to resume from it (a changed --set lr "
                                   "starts over)")

    def classifier_step(self, gen: torch.Generator) -> float:
        """One step of the attribute critic on encodings with their labels, blurred by noise of a random scale
        up to ``attr_noise`` data standard deviations: the critic then answers sensibly between and around
        the encodings too, so gradients through it lead to the attribute instead of to adversarial points."""
        b = self.c.batch_size
        z, labels = self.src.batch(b, gen)  # (B, D), (B, K_a)
        scale = self.c.attr_noise * torch.rand(b, 1, generator=gen)  # (B, 1)
        z = z + scale * torch.randn(z.shape, generator=gen) * self.src.std
        loss = sigmoid_ce(self.m.attr_critic(z), labels)
        self._update("attribute critic", loss, self.opt_a)
        return loss.item()

    def fill_pool(self) -> None:
        """Before the first step: fill half the pool with decoded and labelled latents."""
        rounds = max(1, self.c.rule_pool // (2 * self.c.relabel_batch))
        with self.progress.task(f"add-constraint {self.m.name}: rule labels", total=rounds) as bar:
            for i in range(rounds):
                self.relabel(step_generator(self.c.seed, 9, i))
                bar.advance(1)

    def relabel(self, gen: torch.Generator) -> None:
        """Decode prior draws, actor outputs and encodings; add them with their rule labels to the pool."""
        n = self.c.relabel_batch
        third = max(1, n // 3)
        with torch.no_grad():
            z_prior = torch.randn(third, self.latent_dim, generator=gen)
            y = self._condition(third, gen)
            z_actor = self.m.actor(torch.randn(third, self.latent_dim, generator=gen), y)
            z_data, _ = self.src.batch(n - 2 * third, gen)
            z = torch.cat([z_prior, z_actor, z_data])
            self.pool.add(z, self.label_rules(z).float())

    def critic_step(self, gen: torch.Generator) -> float:
        """One realism-critic step (and one rule-critic step when there are rules)."""
        b, c = self.c.batch_size, self.c
        z_real, y_real = self.src.batch(b, gen)  # (B, D), (B, K_a)
        y_fake = self._condition(b, gen)
        z_prior = torch.randn(b, self.latent_dim, generator=gen)
        n_raw = int(round(b * c.prior_fraction))
        with torch.no_grad():
            z_moved = self.m.actor(z_prior[n_raw:], y_fake[n_raw:])
        z_fake = torch.cat([z_prior[:n_raw], z_moved])
        ya_fake = y_fake[:, self.m.attr_cols]
        loss = sigmoid_ce(self.m.realism(z_real, y_real), 1.0) + sigmoid_ce(self.m.realism(z_fake, ya_fake), 0.0)
        if self.k_a:
            y_wrong = y_real[torch.randperm(b, generator=gen)]  # labels of other examples
            differs = ((y_wrong - y_real).abs() > self.mismatch).any(dim=1, keepdim=True).float()  # truly mismatched
            loss = loss + masked_sigmoid_ce(self.m.realism(z_real, y_wrong), torch.zeros(b, 1), differs)
        if c.gp_weight:
            loss = loss + c.gp_weight * gradient_penalty(self.m.realism, z_real, z_fake, y_real if self.k_a else None, gen)
        self._update("realism critic", loss, self.opt_d)
        if self.k_r:
            z_pool, labels = self.pool.batch(b, gen)
            rloss = sigmoid_ce(self.m.rule_critic(z_pool), labels)
            self._update("rule critic", rloss, self.opt_r)
        return loss.item()

    def actor_step(self, gen: torch.Generator) -> dict[str, float]:
        """One actor step: fool the realism critic (if there is one), satisfy the targets, move little."""
        b, c, m = self.c.batch_size, self.c, self.m
        z = torch.randn(b, self.latent_dim, generator=gen)
        y = self._condition(b, gen)
        z_new = m.actor(z, y)
        realism = sigmoid_ce(m.realism(z_new, y[:, m.attr_cols]), 1.0) if m.realism is not None else torch.zeros(())
        guidance = torch.zeros(())
        logits = m.target_logits(z_new)
        if self.k_a:
            guidance = guidance + m.attribute_nll(logits[:, :self.k_a], y[:, m.attr_cols]).mean()
        if self.k_r:
            enforce = y[:, m.rule_cols]
            guidance = guidance + masked_sigmoid_ce(logits[:, self.k_a:], torch.ones_like(enforce), enforce)
        dist = distance_penalty(z_new, z, m.sigma_bar)
        loss = realism + c.lambda_attr * guidance + c.lambda_dist * dist
        self._update("actor", loss, self.opt_g)
        losses = {"actor": realism.item()} if m.realism is not None else {}
        return {**losses, "guidance": guidance.item(), "distance": dist.item()}

    def _check_rules_occur(self) -> None:
        """Refuse a rule that none of the first decoded latents satisfies (its critic would learn nothing), and
        warn when it is rare."""
        from lctk.plugins import warn

        filled = min(int(self.pool.count), len(self.pool.z))
        rates = self.pool.labels[:filled].mean(dim=0)  # (K_r,)
        for j, i in enumerate(self.m.rule_cols):
            name, rate = self.m.targets[i], rates[j].item()
            if rate == 0:
                raise LctkError(f"rule {name!r} holds for none of {filled} decoded latents (prior draws, encodings); "
                                "its critic would have nothing to learn from: relax the rule")
            if rate < 0.01:
                warn(f"rule {name!r} holds for only {rate:.2%} of {filled} decoded latents; the constraint may learn it "
                     "poorly (relax the rule, or raise --set rule_pool)")

    # -- the loop ------------------------------------------------------------------------------------------
    def phases(self) -> list[tuple[str, int]]:
        return [("attribute classifier", self.c.classifier_steps if self.k_a else 0), ("critics and actor", self.c.steps)]

    def train_step(self, s: int) -> str:
        c = self.c
        n_cls = c.classifier_steps if self.k_a else 0
        if s < n_cls:
            return f"classifier {self.classifier_step(step_generator(c.seed, 1, s)):.3f}"
        g_step = s - n_cls
        if self.pool is not None and g_step % c.relabel_every == 0:
            self.relabel(step_generator(c.seed, 2, g_step))
        for k in range(c.critic_steps):
            d_loss = self.critic_step(step_generator(c.seed, 3, g_step * c.critic_steps + k))
        self.last = {"critic": d_loss, **self.actor_step(step_generator(c.seed, 4, g_step))}
        return " ".join(f"{k} {v:.3f}" for k, v in self.last.items())

    def train(self, resume: bool = False) -> dict[str, float]:
        """Run both phases to the end (from the checkpoint if ``resume``); return the last losses."""
        if resume:
            self.restore()
            self.src.resume_at(self.step)
        if self.pool is not None and self.step == 0:
            self.fill_pool()
            self._check_rules_occur()
        self.run_phases(f"add-constraint {self.m.name}")
        return self.last
