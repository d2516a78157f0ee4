"""Training the denoiser of a diffusion constraint: flow matching on standardised training latents with their
condition labels, conditions dropped at random for classifier-free guidance; per-step randomness from
(seed, step), so a resumed run is bit-identical on CPU; an exponential moving average of the weights."""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from lctk.engine.diffusion.config import DiffusionConfig
from lctk.engine.diffusion.schedule import learning_rate, noised, sample_times, target_velocity
from lctk.loop import StepLoop, adam, check_finite, step_generator
from lctk.util.checkpoint import load_checkpoint, save_checkpoint
from lctk.util.errors import TrainingDiverged
from lctk.util.progress import Progress


class DiffusionTrainer(StepLoop):
    """Trains ``net`` (a `Denoiser`) in place on points ``x (N, D)`` (standardised) with conditions
    ``labels (N, K)``; ``spread (N, D)`` (or None) is the standardised posterior spread added as fresh noise each
    step. `ema` holds the averaged weights."""

    def __init__(self, net: nn.Module, x: Tensor, labels: Tensor, spread: Tensor | None, config: DiffusionConfig,
                 checkpoint_path, progress: Progress | None = None, title: str = "add-constraint"):
        self.net, self.x, self.labels, self.spread, self.c = net, x, labels.float(), spread, config
        self.ema = copy.deepcopy(net).requires_grad_(False)
        self.opt = adam(net.parameters(), lr=config.lr)
        self.checkpoint_path, self.progress, self.title = checkpoint_path, progress or Progress(), title
        self.checkpoint_every = config.checkpoint_every
        self.step, self.total, self.last = 0, config.steps, {}

    # -- state ---------------------------------------------------------------------------------------------
    def save(self) -> None:
        check_finite(self.net.named_parameters(), self.step, "the last good checkpoint was kept; run the same "
                     "command again to resume from it")
        save_checkpoint(self.checkpoint_path, modules={"denoiser": self.net, "ema": self.ema},
                        optimizers={"opt": self.opt}, meta={"step": self.step, "last": self.last})

    def restore(self) -> None:
        meta = load_checkpoint(self.checkpoint_path, modules={"denoiser": self.net, "ema": self.ema},
                               optimizers={"opt": self.opt})
        self.step, self.last = int(meta["step"]), dict(meta.get("last", {}))

    # -- the loop ------------------------------------------------------------------------------------------
    def phases(self) -> list[tuple[str, int]]:
        return [("denoiser", self.c.steps)]

    def known_mask(self, n: int, gen: torch.Generator) -> Tensor:
        """``(n, K)`` bool: which condition columns a training row keeps (the rest are null). With several
        targets, a fraction ``target_drop`` of the rows keeps a random subset: half of them one target alone
        (what a request for one target asks), half each target with probability 1/2; then every column of a
        fraction ``cond_drop`` of the rows is dropped."""
        k = self.labels.shape[1]
        known = torch.ones(n, k, dtype=torch.bool)
        mode = torch.rand(n, 1, generator=gen)  # (n, 1)
        one = nn.functional.one_hot(torch.randint(0, max(k, 1), (n,), generator=gen), max(k, 1)).bool()[:, :k]
        half = torch.rand(n, k, generator=gen) < 0.5
        if k > 1:
            drop = self.c.target_drop
            known = torch.where(mode < drop / 2, one, torch.where(mode < drop, half, known))
        return known & (torch.rand(n, 1, generator=gen) >= self.c.cond_drop)

    def train_step(self, s: int) -> str:
        c, gen = self.c, step_generator(self.c.seed, 21, s)
        idx = torch.randint(0, len(self.x), (c.batch_size,), generator=gen)
        x0 = self.x[idx]  # (B, D)
        if self.spread is not None:
            x0 = x0 + self.spread[idx] * torch.randn(x0.shape, generator=gen)
        y, known = self.labels[idx], self.known_mask(c.batch_size, gen)  # (B, K) each
        t = sample_times(c.batch_size, gen)  # (B,)
        eps = torch.randn(x0.shape, generator=gen)
        loss = (self.net(noised(x0, eps, t), t, y, known) - target_velocity(x0, eps)).pow(2).mean()
        if not torch.isfinite(loss):
            raise TrainingDiverged(f"denoiser loss became {loss.item()} at step {s}; the last good checkpoint was kept; "
                                   "run the same command again to resume from it (or lower --set lr)")
        for group in self.opt.param_groups:
            group["lr"] = learning_rate(s, c.steps, c.lr, c.warmup)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        decay = min(c.ema, (1 + s) / (10 + s))
        with torch.no_grad():
            for p_ema, p in zip(self.ema.parameters(), self.net.parameters()):
                p_ema.lerp_(p, 1 - decay)
        self.last = {"flow": loss.item()}
        return f"loss {loss.item():.4f}"

    def train(self, resume: bool = False) -> dict[str, float]:
        """Train to the end (from the checkpoint if ``resume``); return the last losses."""
        if resume:
            self.restore()
        self.run_phases(self.title)
        return self.last
