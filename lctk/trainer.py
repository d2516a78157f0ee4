"""A trainer for any `Backbone`: Adam on the ELBO, checkpoints, bit-identical resume, DDP under torchrun.

Determinism: the data order of epoch e is a permutation drawn from (seed, e), and the reparameterisation
noise of step s from (seed, s), drawn for the whole global batch and sliced per rank. So the state after
step s depends only on (seed, settings, s): a resumed run equals an uninterrupted one bit for bit on CPU, and
a run with two processes equals one with one process up to the order of floating-point sums.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from lctk.util import distributed
from lctk.util.checkpoint import load_checkpoint, save_checkpoint
from lctk.util.distributed import DistInfo
from lctk.util.config import Range
from lctk.util.errors import LctkError, TrainingDiverged
from lctk.util.io import tensors_bytes
from lctk.interfaces import Backbone, Dataset
from lctk.loop import StepLoop, adam, check_finite, step_generator
from lctk.util.progress import Progress


@dataclasses.dataclass
class TrainSettings:
    """How to train a backbone. ``checkpoint_every``: steps between checkpoints (0: every 60 s); a checkpoint
    is also written at the end and when interrupted (not at every epoch end: short epochs would write one
    every few seconds)."""

    LIMITS: ClassVar[dict[str, Range]] = {"epochs": Range(1, 10 ** 6), "batch_size": Range(1, 65536),
                                          "lr": Range(0, 10, low_open=True), "seed": Range(0, 2 ** 63 - 1),
                                          "checkpoint_every": Range(0, 10 ** 9)}
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    checkpoint_every: int = 0


class _ELBO(nn.Module):
    """Wraps a backbone so that DDP sees the ELBO as ``forward``."""

    def __init__(self, backbone: Backbone):
        super().__init__()
        self.backbone = backbone

    def forward(self, x: torch.Tensor, eps: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.backbone.elbo_terms(x, eps=eps)


@dataclasses.dataclass
class _EpochSums:
    loss: float = 0.0
    reconstruction: float = 0.0
    kl: float = 0.0
    steps: int = 0
    seconds: float = 0.0


class VAETrainer(StepLoop):
    """Trains ``backbone`` on the training part of ``dataset``; checkpoints to ``checkpoint_path``.

    ``on_epoch_end(epoch, record)`` runs on rank 0 after each epoch (e.g. to record the history).
    """

    def __init__(self, backbone: Backbone, dataset: Dataset, settings: TrainSettings, checkpoint_path,
                 dist: DistInfo | None = None, progress: Progress | None = None,
                 on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None):
        self.backbone, self.dataset, self.settings = backbone, dataset, settings
        self.checkpoint_path = checkpoint_path
        self.dist = dist or DistInfo()
        self.progress = progress or Progress()
        self.on_epoch_end = on_epoch_end
        self.train_indices = dataset.indices("train")
        n = len(self.train_indices)
        self.batch_size = min(settings.batch_size, n)
        if self.batch_size % self.dist.world_size:
            raise distributed.everywhere(LctkError(
                f"--batch-size {self.batch_size} is not divisible by the {self.dist.world_size} processes; choose a "
                "multiple"))
        self.steps_per_epoch = max(1, n // self.batch_size)
        self.total_steps = settings.epochs * self.steps_per_epoch
        backbone.to(self.dist.device)
        self.model: nn.Module = _ELBO(backbone)
        if self.dist.distributed:
            self.model = nn.parallel.DistributedDataParallel(self.model)
        self.optimizer = adam(backbone.parameters(), lr=settings.lr)
        self.step = 0
        self.checkpoint_every = settings.checkpoint_every
        self.history: list[dict[str, Any]] = []
        self._sums = _EpochSums()
        self._perm: torch.Tensor | None = None  # (N_train,) the current epoch's order
        self._perm_epoch = -1

    def close(self) -> None:
        """Drop the DistributedDataParallel wrapper (and its reducer), which must go before the process group
        does: gloo aborts the process when it is torn down later, at interpreter exit."""
        self.model = _ELBO(self.backbone)

    # -- state ---------------------------------------------------------------------------------------------
    def save(self) -> None:
        """Write the checkpoint (rank 0 only; every rank checks the weights are finite first)."""
        self._check_finite()
        if not self.dist.is_main:
            return
        save_checkpoint(self.checkpoint_path, modules={"backbone": self.backbone}, optimizers={"adam": self.optimizer},
                        meta={"step": self.step, "history": self.history, "epoch_sums": dataclasses.asdict(self._sums),
                              "settings": dataclasses.asdict(self.settings)})

    def restore(self) -> None:
        """Continue from the checkpoint: weights, optimizer, step, history. Rank 0 reads the file and sends
        it to the other ranks. A changed ``lr`` applies from here on (e.g. after a divergence)."""
        data = distributed.share_from_main(lambda: tensors_bytes(self.checkpoint_path, "checkpoint"),
                                           "reading the checkpoint") if self.dist.distributed else None
        try:
            self._restore(data)
        except distributed.PeerFailed:
            raise
        except LctkError as e:  # the same bytes on every rank: the same error, said once
            raise distributed.everywhere(e) from None

    def _restore(self, data: bytes | None) -> None:
        meta = load_checkpoint(self.checkpoint_path, modules={"backbone": self.backbone},
                               optimizers={"adam": self.optimizer}, data=data)
        saved = meta.get("settings", {})
        for key in ("batch_size", "seed"):
            if isinstance(saved, dict) and key in saved and saved[key] != getattr(self.settings, key):
                raise LctkError(f"--{key.replace('_', '-')} {getattr(self.settings, key)} differs from the "
                                f"checkpoint's {saved[key]}; resume with the same value")
        for group in self.optimizer.param_groups:
            group["lr"] = self.settings.lr
        try:
            step = meta["step"]
            if not isinstance(step, int) or step < 0:
                raise ValueError
            history = list(meta.get("history", []))
            sums = _EpochSums(**meta.get("epoch_sums", {}))
        except (KeyError, ValueError, TypeError):
            raise LctkError(f"checkpoint {self.checkpoint_path} is damaged (its progress record); delete it to "
                            "start over") from None
        self.step, self.history, self._sums = step, history, sums

    # -- the loop ------------------------------------------------------------------------------------------
    def _batch_indices(self, step: int) -> torch.Tensor:
        epoch, i = divmod(step, self.steps_per_epoch)
        if i == 0 or self._perm is None or self._perm_epoch != epoch:
            self._perm = torch.randperm(len(self.train_indices), generator=step_generator(self.settings.seed, 1, epoch))
            self._perm_epoch = epoch
        return self.train_indices[self._perm[i * self.batch_size:(i + 1) * self.batch_size]]

    def _train_step(self, step: int) -> dict[str, float]:
        t0 = time.perf_counter()
        global_idx = self._batch_indices(step)  # (B,)
        shard = global_idx.chunk(self.dist.world_size)[self.dist.rank]  # (B / world,)
        x = self.dataset.fetch(shard).to(self.dist.device)  # (B / world, ...)
        bad = ~torch.isfinite(x.reshape(len(x), -1)).all(dim=1) if x.is_floating_point() \
            else torch.zeros(len(x), dtype=torch.bool, device=x.device)  # (B / world,)
        eps_all = torch.randn(len(global_idx), self.backbone.latent_dim,
                              generator=step_generator(self.settings.seed, 2, step))  # (B, D)
        eps = eps_all.chunk(self.dist.world_size)[self.dist.rank].to(self.dist.device)  # (B / world, D)
        terms = self.model(x, eps)
        loss = terms["loss"]
        figures = torch.stack([loss.detach(), terms["reconstruction"].detach().mean(), terms["kl"].detach().mean(),
                               bad.sum().to(loss.dtype)])  # (4,): three means over the shard, a count
        figures = distributed.all_reduce_sum(figures).cpu()
        if figures[3] > 0:
            self._refuse_bad_data(shard[bad.cpu()])
        figures = figures[:3] / self.dist.world_size  # (3,) means over the global batch
        if not torch.isfinite(figures).all():
            raise distributed.everywhere(TrainingDiverged(
                f"loss became {figures[0].item()} at step {step + 1}; {self._kept()}; lower --lr and resume with --resume"))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"loss": figures[0].item(), "reconstruction": figures[1].item(), "kl": figures[2].item(),
                "seconds": time.perf_counter() - t0}

    def _refuse_bad_data(self, local_bad: torch.Tensor) -> None:
        """Stop (every rank alike) naming the first example of the global batch that holds NaN or inf."""
        first = torch.tensor([float(local_bad.min()) if len(local_bad) else math.inf])
        if self.dist.distributed:
            import torch.distributed as dist

            first = first.to(self.dist.device)
            dist.all_reduce(first, op=dist.ReduceOp.MIN)
        raise distributed.everywhere(LctkError(
            f"example {int(first.item())} of dataset {self.dataset.name} holds NaN or infinite values; fix the data "
            "(nothing was trained on it)"))

    def _kept(self) -> str:
        """How the checkpoint stands, for a divergence message."""
        if self.checkpoint_path.is_file():
            return f"the last good checkpoint ({self.checkpoint_path.name}) was kept"
        return "no checkpoint had been written yet"

    def _check_finite(self) -> None:
        """Refuse to checkpoint weights that are no longer finite (the previous checkpoint stays)."""
        check_finite(self.backbone.named_parameters(), self.step, f"{self._kept()}; lower --lr and resume with "
                     "--resume", wrap=distributed.everywhere)

    def phases(self) -> list[tuple[str, int]]:
        return [("train", self.total_steps)]

    def train_step(self, step: int) -> str:
        fig = self._train_step(step)
        s = self._sums
        s.loss += fig["loss"]; s.reconstruction += fig["reconstruction"]; s.kl += fig["kl"]
        s.steps += 1
        s.seconds += fig["seconds"]
        return f"epoch {step // self.steps_per_epoch + 1} loss {fig['loss']:.1f} recon {fig['reconstruction']:.1f} " \
               f"kl {fig['kl']:.1f}"

    def after_step(self, step: int) -> None:
        if step % self.steps_per_epoch == 0:
            epoch = step // self.steps_per_epoch
            self._check_finite()  # an epoch is never recorded with weights that are no longer finite
            self._close_epoch(epoch)
            if self.on_epoch_end and self.dist.is_main:
                self.on_epoch_end(epoch, self.history[-1])

    def stopping(self, requested: bool) -> bool:
        return distributed.any_flag(requested)

    def train(self, resume: bool = False) -> list[dict[str, Any]]:
        """Run to ``settings.epochs`` (from the checkpoint if ``resume``); return the per-epoch history."""
        if resume:
            self.restore()
        self.backbone.train()
        self.run_phases("train-vae")
        self.backbone.eval()
        return self.history

    def _close_epoch(self, epoch: int) -> None:
        s = self._sums
        n = max(1, s.steps)
        record = {"epoch": epoch, "loss": s.loss / n, "reconstruction": s.reconstruction / n, "kl": s.kl / n,
                  "seconds": round(s.seconds, 3),
                  "examples_per_second": round(s.steps * self.batch_size / max(s.seconds, 1e-9), 1)}
        for key in ("loss", "reconstruction", "kl"):
            if not math.isfinite(record[key]):
                raise distributed.everywhere(TrainingDiverged(
                    f"epoch {epoch} mean {key} is {record[key]}; {self._kept()}; lower --lr and resume with --resume"))
        self.history.append(record)
        self._sums = _EpochSums()
