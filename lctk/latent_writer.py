"""Writing a latent store: `LatentWriter` fills ``latents.h5.partial`` block by block (resumable only when
lctk can prove it wrote the partial file) and renames it into place when every row is written."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Sequence

import h5py
import numpy as np
from torch import Tensor

from lctk import FORMAT_VERSION, __version__
from lctk.util.h5safe import Spec, check_plain, new_token, proof, proven, regular_file
from lctk.util.io import load_json, save_json

CHUNK_ROWS = 4096
#: Bytes reserved beyond a store's data for HDF5's records (see `LatentWriter.reserved_bytes`).
RESERVE_HEADROOM = 128 * 2**10
#: Bytes of mu and sigma one streamed block may hold: bounds `LatentStore.stream`'s memory for wide latents.
STREAM_BLOCK_BYTES = 16 * 2**20
#: The datasets of a store as `LatentWriter` makes them, and as `LatentStore` accepts them.
WRITTEN = {"mu": Spec("f", (4,), 2), "sigma": Spec("f", (4,), 2), "attributes": Spec("u", (1,), 2),
           "split": Spec("i", (1,), 1), "sigma_sum": Spec("f", (8,), 1)}
#: The dataset of continuous attributes, in a store that has some.
CONTINUOUS = {"continuous": Spec("f", (4,), 2)}
CONTINUOUS_ACCEPTED = {"continuous": Spec("f", (4, 8), 2)}
ACCEPTED = {"mu": Spec("f", (4, 8), 2), "sigma": Spec("f", (4, 8), 2), "attributes": Spec("biu", (1,), 2),
            "split": Spec("iu", (1,), 1), "sigma_sum": Spec("f", (4, 8), 1)}


class LatentWriter:
    """Writes a latent store of ``rows`` examples, resuming a matching ``.partial`` file if one exists.

    Use as a context manager; call `write` with consecutive blocks from row `rows_done` on. On clean exit
    with every row written, the store is finalised and renamed into place.

    A ``.partial`` file is only ever resumed when lctk can prove it made it: a random token is written inside
    the store and, with its HMAC under this user's key (`lctk.util.h5safe.proof`), into the progress file, and the
    file's layout must be exactly what this writer makes (`lctk.util.h5safe.check_plain`). A partial file shipped in
    someone else's run folder (which could point HDF5 at files outside the run) is deleted, never opened for
    writing, and the store is started over.

    Progress is recorded outside the HDF5 file, in ``latents.h5.partial.json`` (written atomically after each
    block has been flushed): HDF5 writes raw data and metadata in no fixed order, so after a kill the file's own
    counters may run ahead of or behind its data. Derived figures (the per-dimension sum of sigma over the
    training rows) are computed from the finished data, never accumulated, so a resumed encode writes exactly
    the store an uninterrupted one writes.
    """

    def __init__(self, path: str | Path, rows: int, latent_dim: int, attribute_names: Sequence[str],
                 fingerprint: str, meta: dict | None = None, continuous_names: Sequence[str] = ()):
        self.path = Path(path)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.progress = self.path.with_name(self.path.name + ".partial.json")
        self.rows, self.latent_dim = rows, latent_dim
        self.names = list(attribute_names)
        self.continuous_names = list(continuous_names)
        self.fingerprint = fingerprint
        self.meta = meta or {}
        self.file: h5py.File | None = None
        self.rows_done = 0
        self.token = new_token()

    def __enter__(self) -> "LatentWriter":
        resumed = self._resumable()
        if resumed is not None:
            try:
                self.file = h5py.File(self.partial, "r+")
                self.token, self.rows_done = resumed
            except OSError:
                self.file = None
            else:
                self._reserve(discard=False)
                return self
        proof(self.token, self.fingerprint)  # a bad LCTK_CACHE (where the key lives) is refused before any file is made
        self.partial.unlink(missing_ok=True)  # a symlink is removed, never followed
        self.progress.unlink(missing_ok=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._reserve()  # the room exists before HDF5 writes a byte (it is freed, then taken again below)
        f = h5py.File(self.partial, "w")
        chunk = (min(CHUNK_ROWS, max(1, self.rows)), self.latent_dim)
        f.create_dataset("mu", (self.rows, self.latent_dim), dtype="f4", chunks=chunk)
        f.create_dataset("sigma", (self.rows, self.latent_dim), dtype="f4", chunks=chunk)
        f.create_dataset("attributes", (self.rows, len(self.names)), dtype="u1",
                         chunks=(chunk[0], max(1, len(self.names))) if self.names else None)
        f.create_dataset("split", (self.rows,), dtype="i1")
        if self.continuous_names:
            f.create_dataset("continuous", (self.rows, len(self.continuous_names)), dtype="f4",
                             chunks=(chunk[0], len(self.continuous_names)))
        f.create_dataset("sigma_sum", data=np.zeros(self.latent_dim, dtype="f8"))
        f.attrs.update({"format_version": FORMAT_VERSION, "lctk_version": __version__, "fingerprint": self.fingerprint,
                        "attribute_names": json.dumps(self.names), "meta": json.dumps(self.meta),
                        "continuous_names": json.dumps(self.continuous_names),
                        "rows_written": 0, "train_rows": 0, "complete": False, "writer_token": self.token})
        f.flush()
        self.file = f
        self._reserve()
        self._record(0)
        return self

    def _reserve(self, discard: bool = True) -> None:
        """Allocate the disk space the finished store needs (`reserved_bytes`) to ``latents.h5.partial`` now, so
        that a full disk is a clean ``OSError`` here and never reaches HDF5 mid-write: HDF5 cannot recover from
        a failed write (h5py raises ``RuntimeError`` and the process may crash on closing the file). The file's
        end may pass HDF5's own end of data meanwhile; HDF5 allows that and trims it when the file is closed."""
        try:
            fd = os.open(self.partial, os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
            try:
                os.posix_fallocate(fd, 0, self.reserved_bytes())
            finally:
                os.close(fd)
        except OSError as e:
            if e.errno in (errno.EINVAL, errno.EOPNOTSUPP):  # a file system that cannot reserve: write and see
                return
            if self.file is not None:
                self.file.close()  # HDF5 itself saw no error: closing is safe
                self.file = None
            if discard:  # (a resumed file keeps its rows for the next try)
                self.partial.unlink(missing_ok=True)
                self.progress.unlink(missing_ok=True)
            raise

    def reserved_bytes(self) -> int:
        """Bytes of the finished store: its data, plus room for HDF5's own records (chunk indexes, attributes)."""
        row = 8 * self.latent_dim + max(1, len(self.names)) + 1 + 4 * len(self.continuous_names)
        data = self.rows * row + 8 * self.latent_dim
        size = os.path.getsize(self.partial) if self.partial.exists() else 0
        return max(size, RESERVE_HEADROOM + data + data // 100)

    def layout(self) -> dict:
        """The datasets this writer makes (with the continuous attributes' when it has some)."""
        return {**WRITTEN, **(CONTINUOUS if self.continuous_names else {})}

    def _request(self) -> dict:
        """What a resumable partial file must have been started for (the meta names a shard's slice)."""
        return {"fingerprint": self.fingerprint, "rows": self.rows, "latent_dim": self.latent_dim,
                "attribute_names": self.names, "continuous_names": self.continuous_names, "meta": self.meta}

    def _record(self, rows_done: int) -> None:
        save_json(self.progress, {**self._request(), "rows_written": rows_done, "token": self.token,
                                  "proof": proof(self.token, self.fingerprint)})

    def _resumable(self) -> tuple[str, int] | None:
        """(token, rows safely written) of an earlier, interrupted encode of the same request that this user's
        lctk provably wrote, with the plain layout this writer makes; else None (start over)."""
        if not (regular_file(self.partial, single=True) and self.progress.is_file()):
            return None
        try:
            progress = load_json(self.progress)
            done, token = progress.get("rows_written"), progress.get("token")
            if {k: progress.get(k) for k in self._request()} != self._request() or not isinstance(done, int) \
                    or not 0 <= done <= self.rows or not proven(token, progress.get("proof"), self.fingerprint):
                return None
            with h5py.File(self.partial, "r") as f:
                check_plain(f, self.layout(), allocated=False)
                d, a = self.latent_dim, len(self.names)
                shapes = {"mu": (self.rows, d), "sigma": (self.rows, d), "attributes": (self.rows, a),
                          "split": (self.rows,), "sigma_sum": (d,)}
                if self.continuous_names:
                    shapes["continuous"] = (self.rows, len(self.continuous_names))
                if not (f.attrs.get("writer_token") == token and f.attrs.get("fingerprint") == self.fingerprint
                        and all(f[k].shape == v for k, v in shapes.items())
                        and json.loads(f.attrs["attribute_names"]) == self.names
                        and json.loads(f.attrs["meta"]) == self.meta):
                    return None
            return token, done
        except Exception:  # noqa: BLE001 - anything unreadable or unproven means: start over
            return None

    def write(self, mu: Tensor, sigma: Tensor, attributes: Tensor, split: Tensor, continuous: Tensor | None = None) -> None:
        """Append a block: ``mu, sigma (b, D)``, ``attributes (b, A)`` bool, ``split (b,)``, and ``continuous (b, C)``
        when the store has continuous attributes."""
        f, start = self.file, self.rows_done
        stop = start + len(mu)
        if stop > self.rows:
            raise ValueError("more rows written than announced")
        f["mu"][start:stop] = mu.detach().cpu().float().numpy()  # (b, D)
        f["sigma"][start:stop] = sigma.detach().cpu().float().numpy()  # (b, D)
        if self.names:
            f["attributes"][start:stop] = attributes.cpu().numpy().astype("u1")  # (b, A)
        f["split"][start:stop] = split.cpu().numpy().astype("i1")  # (b,)
        if self.continuous_names:
            if continuous is None or tuple(continuous.shape) != (len(mu), len(self.continuous_names)):
                raise ValueError("each block needs its continuous attribute values")
            f["continuous"][start:stop] = continuous.detach().cpu().float().numpy()  # (b, C)
        f.attrs["rows_written"] = stop
        f.flush()
        self._record(stop)  # only now: the rows are in the file
        self.rows_done = stop

    def _finish(self, f: h5py.File) -> None:
        """Compute the derived figures from the data, in a fixed order, and mark the store complete."""
        split = f["split"][...]  # (N,)
        total = np.zeros(self.latent_dim, dtype="f8")  # (D,)
        for lo in range(0, self.rows, CHUNK_ROWS):
            keep = split[lo:lo + CHUNK_ROWS] == 0
            total += f["sigma"][lo:lo + CHUNK_ROWS][keep].sum(axis=0, dtype="f8")
        f["sigma_sum"][...] = total
        f.attrs["continuous_ranges"] = json.dumps(self._ranges(f, split))
        f.attrs["train_rows"] = int((split == 0).sum())
        f.attrs["rows_written"] = self.rows
        f.attrs["complete"] = True
        del f.attrs["writer_token"]  # it only proves a partial file is ours; a finished store is the same for any writer

    def _ranges(self, f: h5py.File, split: np.ndarray) -> list[list[float]]:
        """``[low, high]`` of each continuous attribute over the training rows (all rows if none are)."""
        if not self.continuous_names:
            return []
        values = f["continuous"][...]  # (N, C)
        train = values[split == 0] if (split == 0).any() else values
        return [[float(lo), float(hi)] for lo, hi in zip(train.min(axis=0), train.max(axis=0))]

    def __exit__(self, exc_type, exc, tb):
        f = self.file
        if f is None:
            return False
        if exc_type is None and self.rows_done == self.rows:
            self._finish(f)
            f.flush()
            end = f.id.get_filesize()  # HDF5's end of data: the reserved room past it goes
            f.close()
            if os.path.getsize(self.partial) > end:
                os.truncate(self.partial, end)
            os.replace(self.partial, self.path)
            self.progress.unlink(missing_ok=True)
        else:
            f.close()  # keep the partial file: the next encode resumes from it
        return False
