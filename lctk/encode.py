"""Encode every example of a run's dataset into the run's latent store: in bounded memory, resumably, with the
next batches read while the encoder runs; in one process, or in several under torchrun.

Under torchrun (docs/distributed.md) the examples are cut into the very batches one process would encode
(``batch_size`` rows each, from row 0), and rank ``r`` of ``W`` encodes the ``r``-th contiguous run of whole
batches into its own shard (`lctk.shards`). Once every shard is complete, rank 0 copies them in order into
``RUN/latents.h5``: the same batches through the same encoder, so its datasets are bit-identical to those a
single process writes. A kill at any moment leaves resumable partial shards (or finished shards and a
resumable partial store); the same command continues from what every rank had finished.
"""

from __future__ import annotations

import dataclasses
import errno
import gc
import queue
import threading
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
import torch.distributed as tdist

from lctk import shards
from lctk.util import distributed
from lctk.util.distributed import PeerFailed
from lctk.util.errors import LctkError
from lctk.interfaces import Backbone, Dataset
from lctk.util.interrupt import GracefulStop
from lctk.latents import LatentStore, LatentWriter
from lctk.util.progress import Progress
from lctk.run import RunDir, fingerprint

#: Batches read ahead of the encoder by default (``lctk encode --prefetch``).
PREFETCH = 2


@dataclasses.dataclass
class EncodeJob:
    """What every rank encodes with: the run, its backbone and dataset, and the settings."""

    run: RunDir
    backbone: Backbone
    fingerprint: str
    dataset: Dataset
    meta: dict[str, Any]
    batch_size: int
    prefetch: int
    device: torch.device
    progress: Progress

    @property
    def rows(self) -> int:
        return len(self.dataset)


def encode_run(run: RunDir, batch_size: int = 1024, force: bool = False, progress: Progress | None = None,
               device: str = "auto", prefetch: int = PREFETCH) -> Path:
    """Write ``RUN/latents.h5``: mu and sigma for every example, attributes, split, backbone fingerprint.

    An existing store from the same backbone is kept unless ``force``; an interrupted encode resumes.
    ``prefetch`` batches are read ahead on a background thread (0: none). Under torchrun every process calls
    this; each encodes its share, and rank 0 writes the store once all have finished.
    """
    dist = distributed.setup(device)
    progress = progress or Progress(enabled=dist.is_main)
    try:
        job = _prepare(run, batch_size, force, progress, dist.device, prefetch)
        if job is not None:
            _encode_share(job, dist) if dist.distributed else _encode_all(job)
    except BaseException:
        if dist.owns_group:
            gc.collect()
            distributed.teardown(synchronise=False)
        raise
    if dist.owns_group:
        gc.collect()
        distributed.teardown()
    if job is not None and dist.distributed and dist.is_main:
        with _write_errors(run, run.latents_path):
            shards.assemble(run, job.rows, job.backbone.latent_dim, job.dataset.attribute_names, job.fingerprint,
                            job.meta, job.batch_size, dist.world_size, progress, job.dataset.continuous_names)
    return run.latents_path


def _prepare(run: RunDir, batch_size: int, force: bool, progress: Progress, device: torch.device,
             prefetch: int) -> EncodeJob | None:
    """Read the run, its backbone and dataset (rank 0 first); None when up-to-date latents exist."""
    def prepare():
        info = run.read()
        backbone = run.load_backbone()
        if not backbone.has_encoder:
            raise LctkError(f"run {run.path} has a generator-only backbone ({info['backbone']}): it has no encoder, "
                            "so there are no latents to encode; constrain it directly with `lctk add-constraint "
                            f"{run.path} --attr NAME` (labelled by a labeler) or `--rule SPEC`")
        fp = fingerprint(backbone)
        if _up_to_date(run, fp, force):
            return None
        dataset = run.load_dataset(progress)
        if not torch.isfinite(dataset.continuous).all():  # (N, C)
            raise LctkError(f"dataset {dataset.name} has NaN or infinite continuous attribute values; fix the data")
        meta = {"backbone": info["backbone"], "dataset": info["dataset"]["name"], "modality": dataset.modality}
        return EncodeJob(run, backbone.to(device), fp, dataset, meta, batch_size, prefetch, device, progress)

    return distributed.main_first(prepare, "loading the run and its dataset")


def _up_to_date(run: RunDir, fp: str, force: bool) -> bool:
    """True when ``RUN/latents.h5`` holds this backbone's latents (and not ``force``); an error when it holds
    another backbone's."""
    if force or not run.latents_path.exists():
        return False
    try:
        with LatentStore.open(run.latents_path) as store:
            if store.fingerprint == fp:
                return True
    except LctkError:
        pass
    raise LctkError(f"{run.latents_path} exists but does not match the backbone; re-encode with "
                    f"`lctk encode {run.path} --force`")


def _encode_all(job: EncodeJob) -> None:
    """One process: encode every row straight into the store."""
    latent_dim, names = job.backbone.latent_dim, job.dataset.attribute_names
    with _write_errors(job.run, job.run.latents_path):
        with LatentWriter(job.run.latents_path, job.rows, latent_dim, names, job.fingerprint, job.meta,
                          job.dataset.continuous_names) as writer:
            encode_rows(job, writer, 0, job.rows, collective=False)
    shards.remove_all(job.run)  # what an abandoned multi-process encode left


def _encode_share(job: EncodeJob, dist: distributed.DistInfo) -> None:
    """Under torchrun: encode this rank's whole batches into its shard, then wait until every rank has."""
    lo, hi = shards.rank_rows(job.rows, job.batch_size, dist.rank, dist.world_size)
    path = shards.shard_path(job.run, dist.rank, dist.world_size)
    meta = shards.shard_meta(job.meta, job.rows, job.batch_size, dist.rank, dist.world_size)
    latent_dim, names = job.backbone.latent_dim, job.dataset.attribute_names
    with _write_errors(job.run, path):
        if hi == lo or shards.finished(path, job.fingerprint, meta):
            encode_rows(job, None, lo, lo, collective=True)  # nothing (left) to do: keep step with the others
        else:
            with LatentWriter(path, hi - lo, latent_dim, names, job.fingerprint, meta,
                              job.dataset.continuous_names) as writer:
                encode_rows(job, writer, lo, hi, collective=True)
    _together(False, "finishing its shard")


def encode_rows(job: EncodeJob, writer: LatentWriter | None, lo: int, hi: int, collective: bool) -> None:
    """Encode rows ``lo + writer.rows_done`` to ``hi`` into ``writer`` (its row 0 is row ``lo``), batch by batch.
    With ``collective``, every rank takes as many steps as the busiest and they agree after each batch on
    whether to go on, so an error or a stop on any rank stops all of them at a batch boundary."""
    start = lo + (writer.rows_done if writer is not None else 0)
    ranges = [(a, min(hi, a + job.batch_size)) for a in range(start, hi, job.batch_size)]
    steps, done = len(ranges), start - lo
    if collective:
        rank, world = tdist.get_rank(), tdist.get_world_size()
        counts = _sum([len(ranges) if r == rank else 0 for r in range(world)] + [done], "counting rows done")
        steps, done = max(counts[:world]), counts[world]
    with GracefulStop() as stop, job.progress.task("encode", total=job.rows, completed=done) as bar, \
            torch.inference_mode():
        batches = prefetched(job.dataset, ranges, job.prefetch)
        try:
            for i in range(steps):
                error, rows = None, 0
                if i < len(ranges):
                    try:
                        idx, x = next(batches)  # (b,), (b, ...)
                        _check_finite(job.dataset, idx, x)
                        mu, sigma = job.backbone.encode(x.to(job.device))  # (b, D) each
                        _check_encodings(job, idx, mu, sigma)
                        writer.write(mu, sigma, job.dataset.attributes[idx], job.dataset.split[idx],
                                     job.dataset.continuous[idx])
                        rows = len(idx)
                    except Exception as e:  # noqa: BLE001 - raised below, once the other ranks know
                        error = e
                failed, stopping, rows = _sum([error is not None, stop.requested, rows], "encoding") \
                    if collective else (error is not None, stop.requested, rows)
                bar.advance(rows)
                if error is not None:
                    raise error
                if failed:
                    raise PeerFailed("another process failed while encoding; see its message above")
                if stopping:
                    raise KeyboardInterrupt
        finally:
            batches.close()


def prefetched(dataset: Dataset, ranges: Sequence[tuple[int, int]], depth: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(idx (b,), x (b, ...))`` for each row range ``(lo, hi)``, fetched up to ``depth`` batches ahead on a
    background thread, so that reading and converting data overlaps the encoder (``depth`` 0: inline)."""
    def fetch(lo: int, hi: int):
        idx = torch.arange(lo, hi)  # (b,)
        return idx, dataset.fetch(idx)

    if depth <= 0:
        for lo, hi in ranges:
            yield fetch(lo, hi)
        return
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work():
        try:
            for lo, hi in ranges:
                if not put((fetch(lo, hi), None)):
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, raised there
            put((None, e))

    thread = threading.Thread(target=work, daemon=True, name="lctk-prefetch")
    thread.start()
    try:
        for _ in ranges:
            item, error = ready.get()
            if error is not None:
                raise error
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def _check_finite(dataset: Dataset, idx: torch.Tensor, x: torch.Tensor) -> None:
    if x.is_floating_point() and not torch.isfinite(x).all():
        bad = idx[~torch.isfinite(x.reshape(len(x), -1)).all(dim=1)][0].item()
        raise LctkError(f"example {bad} of dataset {dataset.name} holds NaN or infinite values; fix the data")


def _check_encodings(job: EncodeJob, idx: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> None:
    """Refuse NaN or infinite encodings (``mu, sigma (b, D)``) before they reach a store: a finished store
    would replace a good ``latents.h5``."""
    if not (bool(torch.isfinite(mu).all()) and bool(torch.isfinite(sigma).all())):
        raise LctkError(f"the backbone of {job.run.path} encodes example {int(idx[0])} (or one near it) as NaN or "
                        f"infinite values: its weights are damaged; {job.run.latents_path.name} was left as it was, "
                        f"retrain the backbone (`lctk train-vae --out {job.run.path} --resume`) or restore "
                        f"{job.run.weights_path.name}")


def _sum(values: list[int], what: str) -> list[int]:
    """`distributed.sum_over_ranks`; a process that died mid-way (a kill) ends this one with one line."""
    try:
        return distributed.sum_over_ranks([int(v) for v in values])
    except RuntimeError as e:  # gloo/nccl: the connection to a stopped process broke
        raise PeerFailed(f"another process stopped while {what} ({' '.join(str(e).split())[:120]}); run the same "
                         "command again to continue", quiet=False) from None


def _together(failed: bool, what: str) -> None:
    if _sum([failed], what)[0]:
        raise PeerFailed(f"another process failed while {what}; see its message above")


class _write_errors:
    """Turns an interrupt or a failing write into one line saying that ``latents.h5`` was left as it was."""

    def __init__(self, run: RunDir, target: Path):
        self.run, self.partial = run, target.with_name(target.name + ".partial")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        run = self.run
        if exc_type is KeyboardInterrupt:
            raise distributed.everywhere(LctkError(f"interrupted; run the same `lctk encode {run.path}` command "
                                                   "again to continue where it stopped")) from None
        if exc_type is not None and issubclass(exc_type, OSError):  # latents.h5 itself was not touched
            full = getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "space" in str(exc).lower()
            raise LctkError(f"{'disk full' if full else 'writing failed'} while writing {self.partial} "
                            f"({' '.join(str(exc).split()) or exc_type.__name__}); {run.latents_path.name} was left "
                            f"as it was; {'free space and ' if full else ''}run `lctk encode {run.path}` again to "
                            "continue") from None
        return False
