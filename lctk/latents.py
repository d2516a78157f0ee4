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
from typing import Iterator

import h5py
import numpy as np
import torch
from torch import Tensor

from lctk import FORMAT_VERSION
from lctk.util.errors import LctkError
from lctk.util.h5safe import UnsafeStore, check_plain

from lctk.latent_writer import (  # noqa: F401  (the store's layouts and writer, re-exported)
    ACCEPTED, CHUNK_ROWS, CONTINUOUS, CONTINUOUS_ACCEPTED, STREAM_BLOCK_BYTES, WRITTEN, LatentWriter)


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
