"""Config dataclasses to and from JSON, with unknown, mistyped, non-finite or out-of-range fields reported in
one line before anything is built.

A config dataclass may declare ``LIMITS: ClassVar[dict[str, Range]]``, the allowed range of its numeric fields
(of each element, for tuples); `from_dict` and `check_values` enforce them, and refuse NaN and infinite
numbers in every config. `check_parameters` bounds the size of a model before it is allocated.
"""

from __future__ import annotations

import dataclasses
import math
import os
import typing
from typing import Any, Callable, Mapping, TypeVar

from lctk.util.errors import LctkError

T = TypeVar("T")
#: Largest model (parameters) lctk builds unless ``LCTK_MAX_PARAMETERS`` allows more: 2^28, 1 GiB of float32.
MAX_PARAMETERS = 2 ** 28


@dataclasses.dataclass(frozen=True)
class Range:
    """Allowed values ``low..high`` (``low`` excluded when ``low_open``)."""

    low: float
    high: float
    low_open: bool = False

    def __contains__(self, value) -> bool:
        return (value > self.low if self.low_open else value >= self.low) and value <= self.high

    def __str__(self) -> str:
        if self.low_open:
            return f"above {_number(self.low)} up to {_number(self.high)}"
        return f"{_number(self.low)} to {_number(self.high)}"


def _number(value: float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def to_dict(config) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(config).items()}


def from_dict(cls: type[T], values: Mapping[str, Any], what: str | None = None) -> T:
    """Build dataclass `cls` from a mapping, converting simple types and refusing unknown keys."""
    what = what or cls.__name__
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise LctkError(f"{what}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(fields)}")
    kwargs = check_values(cls, values, what)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise LctkError(f"{what}: {e}") from None


def check_values(cls: type, values: Mapping[str, Any], what: str | None = None) -> dict[str, Any]:
    """``values`` (some fields of config dataclass ``cls``) converted to the fields' types and checked: finite
    numbers, inside ``cls.LIMITS``. A one-line LctkError naming the setting and its allowed range otherwise."""
    what = what or cls.__name__
    hints = typing.get_type_hints(cls)
    limits = getattr(cls, "LIMITS", {})
    out = {}
    for name, value in values.items():
        value = _coerce(value, hints.get(name), f"{what} {name}")
        _check_number(name, value, limits.get(name), what)
        out[name] = value
    return out


def _check_number(name: str, value: Any, allowed: Range | None, what: str) -> None:
    for item in value if isinstance(value, (tuple, list)) else (value,):
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            continue
        if isinstance(item, float) and not math.isfinite(item):
            raise LctkError(f"{what} {name}={item} is not a finite number" + (f"; allowed: {allowed}" if allowed else ""))
        if allowed is not None and item not in allowed:
            shown = ",".join(map(str, value)) if isinstance(value, (tuple, list)) else value
            raise LctkError(f"{what} {name}={shown} is out of range; allowed: {allowed}")


def max_parameters() -> int:
    """`MAX_PARAMETERS`, or ``$LCTK_MAX_PARAMETERS`` when set to a whole number."""
    text = os.environ.get("LCTK_MAX_PARAMETERS", "").strip()
    if not text:
        return MAX_PARAMETERS
    try:
        value = int(float(text))
    except ValueError:
        raise LctkError(f"LCTK_MAX_PARAMETERS={text} should be a whole number of parameters") from None
    if value < 1:
        raise LctkError(f"LCTK_MAX_PARAMETERS={text} should be at least 1")
    return value


def parameter_count(build: Callable[[], Any]) -> int | None:
    """The number of parameters of the module ``build()`` makes, counted on torch's meta device (nothing is
    allocated); None when the module cannot be built there."""
    import torch

    try:
        with torch.device("meta"):
            module = build()
        return sum(p.numel() for p in module.parameters())
    except Exception:  # noqa: BLE001 - a module that needs real tensors to build is counted when it is built
        return None


def check_parameters(build: Callable[[], Any], what: str) -> None:
    """Refuse, before allocating it, a model ``build()`` would make with more than `max_parameters`."""
    limit = max_parameters()
    count = parameter_count(build)
    if count is not None and count > limit:
        raise LctkError(f"{what} would have {count:,} parameters ({count * 4 / 2**30:.1f} GiB as float32); "
                        f"lctk builds at most {limit:,}: choose smaller sizes (or set LCTK_MAX_PARAMETERS)")


def _coerce(value, hint, where):
    origin = typing.get_origin(hint)
    if hint in (int, float, str, bool) and not isinstance(value, hint):
        try:
            if hint is bool and isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            if hint is int and isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return hint(value)
        except (TypeError, ValueError, OverflowError):
            raise LctkError(f"{where} should be {_kind(hint)}, got {_shown(value)}") from None
    if origin is tuple and isinstance(value, str):  # --set input_shape=3,64,64 (or [3, 64, 64])
        value = [v for v in value.strip("[]() ").replace("x", ",").split(",") if v.strip()]
    if origin is tuple and isinstance(value, (list, tuple)):
        args = typing.get_args(hint)
        inner = args[0] if args else None
        return tuple(_coerce(v, inner, where) for v in value)
    return value


def _kind(hint) -> str:
    return {int: "a whole number", float: "a number", str: "text", bool: "true or false"}.get(hint, hint.__name__)


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
