"""Checked reading of an explorer request's parameters: each bad value is one `LctkError` line naming it."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from lctk.util.errors import LctkError

#: Longest attribute or rule spec accepted from a request.
MAX_SPEC = 100
#: Most attribute or rule specs in one request.
MAX_SPECS = 64


class Params:
    """Reads typed values out of a request dict; `done` refuses names nobody asked for (typos)."""

    def __init__(self, values: Mapping[str, Any] | None):
        if values is not None and not isinstance(values, Mapping):
            raise LctkError("the request body must be a JSON object")
        self.values = dict(values or {})
        self.read: set[str] = set()

    def _get(self, name: str, default: Any) -> Any:
        self.read.add(name)
        value = self.values.get(name, default)
        return default if value is None else value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        """An integer in ``low..high``."""
        value = self._get(name, default)
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise LctkError(f"{name} must be a whole number, got {value!r}")
        if not low <= value <= high:
            raise LctkError(f"{name} must be between {low} and {high}, got {value}")
        return value

    def number(self, name: str, default: float, low: float, high: float) -> float:
        """A finite number in ``low..high``."""
        value = self._get(name, default)
        try:
            number = float(value) if not isinstance(value, bool) else math.nan
        except (TypeError, ValueError):
            raise LctkError(f"{name} must be a number, got {value!r}") from None
        if not math.isfinite(number) or not low <= number <= high:
            raise LctkError(f"{name} must be a number between {low:g} and {high:g}, got {value!r}")
        return number

    def flag(self, name: str, default: bool) -> bool:
        """A boolean (``true``/``false``, ``1``/``0``)."""
        value = self._get(name, default)
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).lower() in ("0", "false", "no", "off"):
            return False
        raise LctkError(f"{name} must be true or false, got {value!r}")

    def choice(self, name: str, options: Sequence[str], default: str) -> str:
        """One of ``options``."""
        value = self._get(name, default)
        if value not in options:
            raise LctkError(f"{name} must be one of {', '.join(options)}, got {value!r}")
        return value

    def strings(self, name: str) -> list[str]:
        """A list of short strings (a single string counts as a list of one)."""
        value = self._get(name, [])
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise LctkError(f"{name} must be a list of strings")
        if len(value) > MAX_SPECS or any(len(v) > MAX_SPEC for v in value):
            raise LctkError(f"{name}: at most {MAX_SPECS} entries of at most {MAX_SPEC} characters")
        return [v.strip() for v in value if v.strip()]

    def done(self) -> None:
        """Refuse parameters that were given but never read."""
        unknown = sorted(set(self.values) - self.read)
        if unknown:
            raise LctkError(f"unknown parameter {unknown[0]!r}")
