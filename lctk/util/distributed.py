"""Devices and multi-process training under torchrun (DistributedDataParallel over gloo or nccl).

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them everything runs in one process. Rank 0 alone
reads and writes the run folder and shows progress; what the other ranks need from it (run.json, the
checkpoint) rank 0 sends them, so the run folder need not be on storage every machine shares. Each rank takes
its contiguous share of every global batch, so the arithmetic matches a single-process run up to the order
of floating-point sums, and a run can resume with a different number of processes.

A failure on rank 0 where the others wait for it (loading the dataset, reading the run) is passed on to
them (`main_first`), so every process stops with the same one-line message instead of hanging.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import Callable, TypeVar

import torch
import torch.distributed as dist

from lctk.util.errors import LctkError, describe

T = TypeVar("T")


class PeerFailed(LctkError):
    """Raised on a rank because of a failure that rank 0 reports: rank 0 failed at a step the ranks take
    together, or every rank hit the same error. ``quiet`` (true except on rank 0) tells the CLI not to print
    the message again, so a multi-process run says it once."""

    def __init__(self, message: str, exit_code: int = 2, quiet: bool | None = None):
        super().__init__(message)
        self.exit_code = exit_code
        self.quiet = env_rank() != 0 if quiet is None else quiet


def everywhere(error: LctkError) -> LctkError:
    """``error`` on rank 0; on the other ranks a quiet `PeerFailed` with its message and exit code (for
    errors that every rank meets alike, e.g. a diverged loss, so that only rank 0 prints it)."""
    if env_rank() == 0:
        return _announce(error)
    return PeerFailed(str(error), exit_code=error.exit_code, quiet=True)


def _announce(error: BaseException) -> BaseException:
    """Under torchrun, rank 0 prints a shared error at once (and marks it printed): the other ranks exit as
    soon as they raise it, and torchrun then stops rank 0, possibly before the CLI could print."""
    if isinstance(error, LctkError) and dist.is_initialized() and dist.get_rank() == 0:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr, flush=True)
        error.quiet = True
    return error


@dataclasses.dataclass
class DistInfo:
    """Where this process stands: its rank, the world size, and the device it computes on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = dataclasses.field(default_factory=lambda: torch.device("cpu"))
    #: True when `setup` joined the process group (so `teardown` should leave it).
    owns_group: bool = False

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
    owns = False
    if world > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
        owns = True
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, device=dev, owns_group=owns)


def teardown(synchronise: bool = True) -> None:
    """Leave the process group, if any; with ``synchronise`` first wait until every rank gets here, so no
    rank tears down its connections while another still uses them (gloo may abort the process then). After a
    failure pass False: the other ranks may be gone."""
    if dist.is_initialized():
        if synchronise:
            dist.barrier()
        dist.destroy_process_group()


def env_rank() -> int:
    """This process's rank as torchrun announced it (0 when not launched by torchrun)."""
    return dist.get_rank() if dist.is_initialized() else int(os.environ.get("RANK", "0"))


def _comm_device() -> torch.device:
    """Where tensors for collectives must live: the current GPU under nccl, else the CPU."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def any_flag(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on any rank (so all ranks stop together)."""
    if not dist.is_initialized():
        return flag
    t = torch.tensor([1 if flag else 0], device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """The sum of ``values`` over ranks (identity in a single process)."""
    if not dist.is_initialized():
        return values
    values = values.clone()
    dist.all_reduce(values)
    return values


def sum_over_ranks(values: list[int]) -> list[int]:
    """Element-wise sums of small integer counters over ranks (``values`` itself in a single process)."""
    if not dist.is_initialized():
        return list(values)
    t = torch.tensor(values, dtype=torch.int64, device=_comm_device())
    dist.all_reduce(t)
    return [int(v) for v in t.cpu().tolist()]


def broadcast_bytes(data: bytes | None) -> bytes:
    """Rank 0's ``data`` on every rank (others pass None): a length, then the bytes as a uint8 tensor."""
    if not dist.is_initialized():
        return data or b""
    device = _comm_device()
    length = torch.tensor([len(data) if data is not None else 0], dtype=torch.int64, device=device)
    dist.broadcast(length, src=0)
    if dist.get_rank() == 0:
        buf = torch.frombuffer(bytearray(data), dtype=torch.uint8).to(device) if length.item() else \
            torch.empty(0, dtype=torch.uint8, device=device)
    else:
        buf = torch.empty(int(length.item()), dtype=torch.uint8, device=device)
    if length.item():
        dist.broadcast(buf, src=0)
    return bytes(buf.cpu().numpy().tobytes())


def main_first(fn: Callable[[], T], what: str) -> T:
    """Run ``fn`` on rank 0, then on the other ranks (e.g. to build a dataset cache once), and return its
    result on each. When rank 0 fails, it prints its error and the others raise a quiet `PeerFailed`; when
    another rank fails, it raises its own error and rank 0 a `PeerFailed` naming ``what``. So no process
    waits forever for one that has given up."""
    if not dist.is_initialized():
        return fn()
    rank = dist.get_rank()
    result, error = None, None
    if rank == 0:
        try:
            result = fn()
        except BaseException as e:
            message = describe(e)
            _announce(e)
            broadcast_bytes(message.encode())
            raise
        broadcast_bytes(b"")
    else:
        failed = broadcast_bytes(None).decode()
        if failed:
            raise PeerFailed(failed, quiet=True)
        try:
            result = fn()
        except BaseException as e:  # raised below, once rank 0 knows
            error = e
    if any_flag(error is not None):
        if error is not None:
            raise error
        raise PeerFailed(f"another process failed while {what}; see its message above", quiet=rank != 0)
    return result


def share_from_main(fn: Callable[[], bytes], what: str) -> bytes:
    """Bytes that rank 0 alone produces with ``fn`` (e.g. reads from the run folder), sent to every rank;
    rank 0's failure is raised everywhere as with `main_first`."""
    if not dist.is_initialized():
        return fn()
    data = main_first(fn if dist.get_rank() == 0 else (lambda: b""), what)
    return broadcast_bytes(data if dist.get_rank() == 0 else None)
