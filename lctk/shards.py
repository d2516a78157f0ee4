"""The shards of a multi-process encode: which rows each rank encodes, where its shard lives, and how rank 0
assembles finished shards into ``RUN/latents.h5``.

A shard is a latent store of one rank's rows, written by `LatentWriter` (so it resumes like the store and is
only resumed when its progress record matches: same backbone, same rows, same slice, same batch size, same
number of ranks). Its ``meta`` names the slice; a shard of another request is started over, never read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from lctk.util.errors import LctkError
from lctk.util.interrupt import GracefulStop
from lctk.latents import CHUNK_ROWS, LatentStore, LatentWriter
from lctk.util.progress import Progress

#: Rows copied per block while assembling (bounded memory: 8 chunks of mu and sigma).
COPY_ROWS = 8 * CHUNK_ROWS


def rank_rows(rows: int, batch_size: int, rank: int, world: int) -> tuple[int, int]:
    """Rows ``[lo, hi)`` that ``rank`` of ``world`` encodes: its contiguous run of whole batches of the
    single-process batching (empty when there are fewer batches than ranks)."""
    batches = -(-rows // batch_size)
    first, last = rank * batches // world, (rank + 1) * batches // world
    return min(rows, first * batch_size), min(rows, last * batch_size)


def shard_path(run, rank: int, world: int) -> Path:
    """``RUN/latents.h5.shard-R-of-W``."""
    return run.latents_path.with_name(f"{run.latents_path.name}.shard-{rank}-of-{world}")


def shard_meta(meta: dict[str, Any], rows: int, batch_size: int, rank: int, world: int) -> dict[str, Any]:
    """The store's meta plus what makes a shard this request's: its slice of the rows and how it was cut."""
    lo, hi = rank_rows(rows, batch_size, rank, world)
    return {**meta, "shard": {"rank": rank, "world": world, "rows": [lo, hi], "examples": rows,
                              "batch_size": batch_size}}


def finished(path: Path, fp: str, meta: dict[str, Any]) -> bool:
    """True when ``path`` is a complete shard of exactly this request."""
    if not path.is_file():
        return False
    try:
        with LatentStore.open(path) as store:
            return store.fingerprint == fp and store.meta == meta
    except LctkError:
        return False


def remove_all(run) -> None:
    """Delete every shard file (finished, partial, progress record) of any earlier multi-process encode."""
    for path in run.latents_path.parent.glob(f"{run.latents_path.name}.shard-*"):
        path.unlink(missing_ok=True)  # a symlink is removed, never followed


def assemble(run, rows: int, latent_dim: int, names: Sequence[str], fp: str, meta: dict[str, Any], batch_size: int,
             world: int, progress: Progress, continuous_names: Sequence[str] = ()) -> Path:
    """Rank 0, after every rank finished its shard: copy the shards in order into ``RUN/latents.h5`` (through
    `LatentWriter`: a ``.partial`` renamed when complete, resumable), then delete them."""
    parts = []
    for rank in range(world):
        lo, hi = rank_rows(rows, batch_size, rank, world)
        path = shard_path(run, rank, world)
        if hi == lo:
            continue
        if not finished(path, fp, shard_meta(meta, rows, batch_size, rank, world)):
            raise LctkError(f"the shard of rank {rank} ({path}) is missing or unfinished where rank 0 looks for it; on "
                            "several machines the run folder must be on storage every machine shares "
                            f"(docs/distributed.md); run the same command again to continue")
        parts.append((path, lo, hi))
    with GracefulStop() as stop, LatentWriter(run.latents_path, rows, latent_dim, names, fp, meta,
                                              continuous_names) as writer, \
            progress.task("assemble", total=rows, completed=writer.rows_done) as bar:
        for path, lo, hi in parts:
            if hi <= writer.rows_done:
                continue
            with LatentStore.open(path) as shard:
                f = shard.file
                for a in range(writer.rows_done - lo, hi - lo, COPY_ROWS):
                    b = min(hi - lo, a + COPY_ROWS)
                    continuous = torch.from_numpy(f["continuous"][a:b]) if continuous_names else None  # (b - a, C)
                    writer.write(torch.from_numpy(f["mu"][a:b]), torch.from_numpy(f["sigma"][a:b]),  # (b - a, D)
                                 torch.from_numpy(f["attributes"][a:b]), torch.from_numpy(f["split"][a:b]), continuous)
                    bar.advance(b - a)
                    if stop.requested:
                        raise KeyboardInterrupt
    remove_all(run)
    return run.latents_path
