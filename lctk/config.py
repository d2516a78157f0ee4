"""Config dataclasses to and from JSON, with unknown or mistyped fields reported in one line."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Mapping, TypeVar

from lctk.errors import LctkError

T = TypeVar("T")


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
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in values.items():
        kwargs[name] = _coerce(value, hints.get(name), f"{what}.{name}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise LctkError(f"{what}: {e}") from None


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
        except (TypeError, ValueError):
            raise LctkError(f"{where} should be {hint.__name__}, got {value!r}") from None
    if origin is tuple and isinstance(value, (list, tuple)):
        args = typing.get_args(hint)
        inner = args[0] if args else None
        return tuple(_coerce(v, inner, where) for v in value)
    return value
