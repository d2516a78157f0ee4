"""The HDF5 latent store: posterior mu and sigma per example, the attribute table, the split, and the
fingerprint of the backbone that encoded them; continuous attributes (``continuous``, float32) beside the binary
ones, with their observed range over the training rows (stores written before they existed open with none).

Written in chunks (bounded memory) to ``latents.h5.partial`` and renamed when complete, so a kill leaves
either the old store or none, and an interrupted encode resumes from the rows already written (recorded in
``latents.h5.partial.json``). Read either
into memory or streamed in shuffled contiguous blocks (for stores larger than memory).
"""

from __future__ import annotations

import json
import os
import queue
import threading
from pathlib import Path
from typing import Iterator, Sequence

import h5py
import numpy as np
import torch
from torch import Tensor

from lctk import FORMAT_VERSION, __version__
from lctk.errors import LctkError
from lctk.h5safe import Spec, UnsafeStore, check_plain, new_token, proof, proven, regular_file
from lctk.io import load_json, save_json

CHUNK_ROWS = 4096
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
    the store and, with its HMAC under this user's key (`lctk.h5safe.proof`), into the progress file, and the
    file's layout must be exactly what this writer makes (`lctk.h5safe.check_plain`). A partial file shipped in
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
                return self
            except OSError:
                self.file = None
        self.partial.unlink(missing_ok=True)  # a symlink is removed, never followed
        self.progress.unlink(missing_ok=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
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
        self._record(0)
        return self

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
            f.close()
            os.replace(self.partial, self.path)
            self.progress.unlink(missing_ok=True)
        else:
            f.close()  # keep the partial file: the next encode resumes from it
        return False


class LatentStore:
    """A finished latent store, opened for reading. Use `LatentStore.open`."""

    def __init__(self, path: Path, file: h5py.File):
        self.path, self.file = path, file
        self.fingerprint: str = str(file.attrs["fingerprint"])
        self.attribute_names: list[str] = json.loads(file.attrs["attribute_names"])
        self.meta: dict = json.loads(file.attrs.get("meta", "{}"))
        if not (isinstance(self.attribute_names, list) and all(isinstance(a, str) for a in self.attribute_names)
                and isinstance(self.meta, dict)):
            raise ValueError("malformed attribute names or meta")
        #: True for a store written before continuous attributes were stored (it has none).
        self.predates_continuous = "continuous_names" not in file.attrs
        self.continuous_names: list[str] = json.loads(file.attrs.get("continuous_names", "[]"))
        ranges = json.loads(file.attrs.get("continuous_ranges", "[]"))
        if not (isinstance(self.continuous_names, list) and all(isinstance(a, str) for a in self.continuous_names)
                and isinstance(ranges, list) and len(ranges) == len(self.continuous_names)
                and all(isinstance(r, list) and len(r) == 2 and all(isinstance(v, (int, float)) for v in r)
                        and np.isfinite(r).all() and r[0] <= r[1] for r in ranges)):
            raise ValueError("malformed continuous attribute names or ranges")
        #: Continuous attribute name -> (low, high) observed over the training rows.
        self.continuous_ranges: dict[str, tuple[float, float]] = {n: (float(r[0]), float(r[1]))
                                                                   for n, r in zip(self.continuous_names, ranges)}
        if self.continuous_names and ("continuous" not in file or file["continuous"].dtype.kind != "f"
                                      or file["continuous"].shape != (file["mu"].shape[0], len(self.continuous_names))):
            raise ValueError("continuous attributes missing or of the wrong type or shape")
        self.rows, self.latent_dim = file["mu"].shape
        kinds = {key: file[key].dtype.kind for key in ("mu", "sigma", "attributes", "split")}
        if kinds["mu"] != "f" or kinds["sigma"] != "f" or kinds["attributes"] not in "biu" or kinds["split"] not in "iu":
            raise ValueError(f"unexpected data types {kinds}")
        self.split = torch.from_numpy(np.ascontiguousarray(file["split"][...], dtype="i1"))  # (N,)

    @classmethod
    def open(cls, path: str | Path) -> "LatentStore":
        """Open and validate a store; one-line errors for missing, corrupt, foreign or unfinished files."""
        path = Path(path)
        if path.is_symlink():
            raise LctkError(f"latent store {path} is a symbolic link; lctk reads only files kept inside the run, "
                            f"re-make it with `lctk encode {path.parent} --force`")
        if not path.is_file():
            run = path.parent
            raise LctkError(f"no latents at {path}; run `lctk encode {run}` first")
        try:
            f = h5py.File(path, "r")
        except OSError as e:
            raise LctkError(f"latent store {path} is corrupt ({str(e).splitlines()[0]}); delete it and re-run "
                            f"`lctk encode {path.parent}`") from None
        try:
            if f.attrs.get("format_version") != FORMAT_VERSION:
                raise LctkError(f"latent store {path} has format {f.attrs.get('format_version')}, this lctk reads "
                                f"{FORMAT_VERSION}; re-run `lctk encode {path.parent}`")
            if not bool(f.attrs.get("complete", False)):
                raise LctkError(f"latent store {path} is incomplete; re-run `lctk encode {path.parent}`")
            for key in ("mu", "sigma", "attributes", "split"):
                if key not in f:
                    raise LctkError(f"latent store {path} lacks {key!r}; re-run `lctk encode {path.parent}`")
            try:
                check_plain(f, {**ACCEPTED, **(CONTINUOUS_ACCEPTED if "continuous" in f else {})},
                            file_size=os.path.getsize(path))
            except UnsafeStore as e:
                raise LctkError(f"latent store {path} is refused: {e}; lctk reads only plain stores kept inside "
                                f"the run, re-make it with `lctk encode {path.parent} --force`") from None
            rows, dim = f["mu"].shape
            if f["sigma"].shape != (rows, dim) or f["split"].shape != (rows,) or f["sigma_sum"].shape != (dim,) \
                    or f["attributes"].shape[0] != rows:
                raise LctkError(f"latent store {path} has inconsistent shapes; re-run `lctk encode {path.parent}`")
            store = cls(path, f)
            if f["attributes"].shape != (store.rows, len(store.attribute_names)):
                raise LctkError(f"latent store {path} has inconsistent shapes; re-run `lctk encode {path.parent}`")
            if rows == 0 or dim == 0 or not bool((store.split == 0).any()):
                raise LctkError(f"latent store {path} holds no {'examples' if rows == 0 else 'training examples' if dim else 'latent dimensions'}; "
                                f"re-make it with `lctk encode {path.parent} --force`")
            return store
        except LctkError:
            f.close()
            raise
        except Exception as e:  # noqa: BLE001 - h5py and json raise many kinds of error on a damaged file
            f.close()
            text = " ".join(str(e).split()) or type(e).__name__
            raise LctkError(f"latent store {path} is damaged ({text}); re-run `lctk encode {path.parent} --force`") from None

    def close(self) -> None:
        """Close the file."""
        self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def check_fingerprint(self, expected: str) -> None:
        """Refuse latents encoded by other backbone weights, naming the command that re-encodes."""
        if self.fingerprint != expected:
            raise LctkError(f"latents {self.path} were encoded by another backbone (fingerprint {self.fingerprint}, "
                            f"backbone is {expected}); re-encode with `lctk encode {self.path.parent} --force`")

    def _damaged(self, e: Exception) -> LctkError:
        text = " ".join(str(e).split()) or type(e).__name__
        return LctkError(f"latent store {self.path} is damaged ({text}); re-run `lctk encode {self.path.parent} --force`")

    def sigma_bar(self) -> Tensor:
        """``(D,)`` per-dimension mean encoder sigma over the training part."""
        try:
            n = max(1, int(self.file.attrs["train_rows"]))
            sigma_bar = torch.from_numpy(np.asarray(self.file["sigma_sum"][...], dtype="f8") / n).float()  # (D,)
        except Exception as e:  # noqa: BLE001 - a damaged file fails in many ways inside h5py
            raise self._damaged(e) from None
        if not torch.isfinite(sigma_bar).all():
            raise LctkError(f"latent store {self.path} holds NaN or infinite values; re-run "
                            f"`lctk encode {self.path.parent} --force`")
        return sigma_bar

    def rows_of(self, part: str = "train") -> Tensor:
        """``(M,)`` row indices of ``train``, ``test`` or ``all``."""
        if part == "all":
            return torch.arange(self.rows)
        return torch.nonzero(self.split == (0 if part == "train" else 1)).flatten()

    def load(self, part: str = "train", limit: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """In memory: ``mu (M, D)``, ``sigma (M, D)``, ``attributes (M, A)`` bool for ``part`` (its first
        ``limit`` rows if given)."""
        rows = self.rows_of(part).numpy()[:limit]
        mu = torch.from_numpy(self._take("mu", rows, "f4"))  # (M, D)
        sigma = torch.from_numpy(self._take("sigma", rows, "f4"))  # (M, D)
        attrs = torch.from_numpy(self._take("attributes", rows, "?"))  # (M, A)
        if not (torch.isfinite(mu).all() and torch.isfinite(sigma).all()):
            raise LctkError(f"latent store {self.path} holds NaN or infinite values; re-run "
                            f"`lctk encode {self.path.parent} --force`")
        return mu, sigma, attrs

    def continuous_hint(self) -> str:
        """What to add to an unknown-attribute error when this store predates continuous attributes."""
        if not self.predates_continuous:
            return ""
        return (f" (latents encoded before continuous attributes were stored have none: re-encode with "
                f"`lctk encode {self.path.parent} --force` to add the dataset's)")

    def load_continuous(self, part: str = "train") -> Tensor:
        """In memory: ``(M, C)`` float32 continuous attribute values of ``part`` (``C`` may be 0)."""
        if not self.continuous_names:
            return torch.zeros(len(self.rows_of(part)), 0)
        values = torch.from_numpy(self._take("continuous", self.rows_of(part).numpy(), "f4"))  # (M, C)
        if not torch.isfinite(values).all():
            raise LctkError(f"latent store {self.path} holds NaN or infinite attribute values; re-run "
                            f"`lctk encode {self.path.parent} --force`")
        return values

    def _take(self, key: str, rows: np.ndarray, dtype: str) -> np.ndarray:
        """Rows ``rows`` of dataset ``key`` as a native-order array of ``dtype``."""
        try:
            data = self.file[key]
            out = np.empty((len(rows), *data.shape[1:]), dtype=dtype)
            # contiguous reads of a few chunks, then select: far faster than fancy indexing in HDF5, and only
            # one block beside the result in memory (``rows`` ascend)
            step = 8 * CHUNK_ROWS
            bounds = np.searchsorted(rows, np.arange(0, self.rows + step, step))
            for i, lo in enumerate(range(0, self.rows, step)):
                a, b = bounds[i], bounds[i + 1]
                if a < b:
                    out[a:b] = data[lo:lo + step][rows[a:b] - lo]
            return out
        except Exception as e:  # noqa: BLE001 - a damaged file fails in many ways inside h5py
            raise self._damaged(e) from None

    def _rows(self, key: str, lo: int, hi: int, dtype: str, keep: Tensor | None) -> Tensor:
        """Rows ``lo:hi`` of dataset ``key`` as a tensor of ``dtype``, only those where ``keep`` (if given)."""
        rows = torch.from_numpy(np.ascontiguousarray(self.file[key][lo:hi], dtype=dtype))
        return rows if keep is None else rows[keep]

    def stream(self, batch_size: int, part: str = "train", generator: torch.Generator | None = None,
               block_rows: int | None = None, buffer_blocks: int = 4) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """Endless shuffled batches ``(mu, sigma, attributes)`` read in contiguous blocks on a background
        thread, in memory bounded by ``buffer_blocks`` blocks; for stores larger than memory. Blocks are whole
        chunks, ``8 * CHUNK_ROWS`` rows unless mu and sigma of that many rows pass `STREAM_BLOCK_BYTES`."""
        if block_rows is None:
            row_bytes = 2 * 4 * self.latent_dim
            block_rows = max(CHUNK_ROWS, min(8 * CHUNK_ROWS, STREAM_BLOCK_BYTES // row_bytes // CHUNK_ROWS * CHUNK_ROWS))
        generator = generator or torch.Generator().manual_seed(0)
        want = 0 if part == "train" else 1
        blocks: "queue.Queue" = queue.Queue(maxsize=buffer_blocks)
        stop = threading.Event()
        n_blocks = (self.rows + block_rows - 1) // block_rows
        order_gen = torch.Generator().manual_seed(int(torch.randint(0, 2**31, (1,), generator=generator)))

        def reader():
            while not stop.is_set():
                for b in torch.randperm(n_blocks, generator=order_gen).tolist():
                    lo, hi = b * block_rows, min(self.rows, (b + 1) * block_rows)
                    keep = None if part == "all" else self.split[lo:hi] == want  # (hi - lo,)
                    if keep is not None and bool(keep.all()):
                        keep = None  # no copy when every row of the block is wanted
                    item = tuple(self._rows(key, lo, hi, dtype, keep)
                                 for key, dtype in (("mu", "f4"), ("sigma", "f4"), ("attributes", "?")))
                    while not stop.is_set():
                        try:
                            blocks.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if stop.is_set():
                        return

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        try:
            # Rows go out in the order of the blocks, each block in the order of its permutation; each batch is
            # gathered once, straight from its block (no shuffled copy of the whole block, no concatenation).
            carry: tuple[Tensor, Tensor, Tensor] | None = None  # fewer than batch_size rows left over
            while True:
                block = blocks.get()
                perm = torch.randperm(len(block[0]), generator=generator)
                start = 0
                if carry is not None:  # top the leftover rows up from this block
                    head = perm[:batch_size - len(carry[0])]
                    carry = tuple(torch.cat([c, x[head]]) for c, x in zip(carry, block))
                    start = len(head)
                    if len(carry[0]) < batch_size:
                        continue
                    yield carry
                    carry = None
                while start + batch_size <= len(perm):
                    idx = perm[start:start + batch_size]
                    yield block[0][idx], block[1][idx], block[2][idx]
                    start += batch_size
                if start < len(perm):
                    idx = perm[start:]
                    carry = (block[0][idx], block[1][idx], block[2][idx])
        finally:
            stop.set()
            thread.join(timeout=2)
