"""Devices and multi-process training under torchrun (DistributedDataParallel over gloo or nccl).

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them everything runs in one process. Rank 0 alone
writes files and shows progress. Each rank takes its contiguous share of every global batch, so the
arithmetic matches a single-process run up to the order of floating-point sums, and a run can resume with a
different number of processes.
"""

from __future__ import annotations

import dataclasses
import os

import torch
import torch.distributed as dist

from lctk.errors import LctkError


@dataclasses.dataclass
class DistInfo:
    """Where this process stands: its rank, the world size, and the device it computes on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = dataclasses.field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        """True on the process that writes files and shows progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` (a GPU if present, else CPU), ``cpu`` or ``cuda``; a one-line error if CUDA is absent."""
    name = (name or "auto").lower()
    if name not in ("auto", "cpu", "cuda"):
        raise LctkError(f"unknown device {name!r}; use auto, cpu or cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise LctkError("--device cuda asked for, but no CUDA GPU is available; use --device cpu")
    if name == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))


def setup(device: str = "auto") -> DistInfo:
    """Join the process group if launched by torchrun (gloo on CPU, nccl on GPU); else a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=dev)


def teardown() -> None:
    """Leave the process group, if any."""
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if dist.is_initialized():
        dist.barrier()


def broadcast_flag(flag: bool) -> bool:
    """Rank 0's value of ``flag`` on every rank (so all ranks stop together)."""
    if not dist.is_initialized():
        return flag
    t = torch.tensor([1 if flag else 0], device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.broadcast(t, src=0)
    return bool(t.item())


def all_reduce_mean(values: torch.Tensor) -> torch.Tensor:
    """The mean of ``values`` over ranks (identity in a single process)."""
    if not dist.is_initialized():
        return values
    values = values.clone()
    dist.all_reduce(values)
    return values / dist.get_world_size()
