"""The memory budget that decides where `lctk add-constraint` takes its training latents from: memory when the
store fits it, else a stream of shuffled blocks read from the store (`StreamingLatentSource`), with the same
command line. (Constraints with continuous targets load the store: the stream carries binary attributes.)

The budget is compared with the bytes of mu and sigma the store holds (``rows x latent_dim x 8``). It is
``--memory-budget`` (or the ``LCTK_MEMORY_BUDGET`` environment variable), 1 GiB by default: loading a store into
memory takes about that much again for the training rows, so the default keeps add-constraint near 1-2 GiB.
"""

from __future__ import annotations

import os
import re

from lctk.util.errors import LctkError
from lctk.latents import LatentStore

#: The memory budget when neither ``--memory-budget`` nor ``LCTK_MEMORY_BUDGET`` sets one (bytes).
DEFAULT_MEMORY_BUDGET = 2**30
ENV = "LCTK_MEMORY_BUDGET"
_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "kib": 2**10, "m": 10**6, "mb": 10**6, "mib": 2**20,
          "g": 10**9, "gb": 10**9, "gib": 2**30, "t": 10**12, "tb": 10**12, "tib": 2**40}


def parse_size(text: str | int, what: str = "--memory-budget") -> int:
    """Bytes from ``512MiB``, ``2GiB``, ``1.5G``, ``1e9`` or a plain number; a one-line error otherwise."""
    if isinstance(text, int) and not isinstance(text, bool) and text >= 0:
        return text
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?(?:e[0-9]+)?)\s*([a-z]*)\s*", str(text).lower())
    if not match or match.group(2) not in _UNITS:
        raise LctkError(f"{what} {text!r} is not a size; use e.g. 512MiB, 2GiB or a number of bytes")
    value = float(match.group(1)) * _UNITS[match.group(2)]
    if value > 2**62:
        raise LctkError(f"{what} {text!r} is too large; use e.g. 512MiB or 2GiB")
    return int(value)


def memory_budget(given: str | int | None = None) -> int:
    """The budget in bytes: ``given``, else ``$LCTK_MEMORY_BUDGET``, else `DEFAULT_MEMORY_BUDGET`."""
    if given is not None:
        return parse_size(given)
    if os.environ.get(ENV):
        return parse_size(os.environ[ENV], ENV)
    return DEFAULT_MEMORY_BUDGET


def latent_bytes(store: LatentStore) -> int:
    """Bytes of mu and sigma (float32) in ``store``."""
    return store.rows * store.latent_dim * 2 * 4
