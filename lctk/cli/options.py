"""Option parsing shared by the commands: ``key=value`` lists."""

from __future__ import annotations

from typing import Iterable

from lctk.errors import LctkError


def parse_pairs(pairs: Iterable[str], flag: str) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``; a pair without ``=`` is a one-line error."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise LctkError(f"{flag} {pair!r} should look like key=value")
        key, value = pair.split("=", 1)
        out[key.strip().replace("-", "_")] = value.strip()
    return out
