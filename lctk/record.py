"""The run record: what ``RUN/run.json`` holds, as typed dataclasses validated on read.

`RunRecord.from_dict` checks every field's type and refuses a damaged record in one line naming the field;
`to_dict` gives the JSON. Records written before ``record_version`` existed (version 1) still read. Keys this
lctk does not know are kept in ``extra`` and written back unchanged. To add a field, add it to the dataclass
with a default (old records then read with the default) and, if its meaning changes, bump `RECORD_VERSION`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Mapping, TypeVar, Union

from lctk import FORMAT_VERSION, __version__
from lctk.util.errors import LctkError

#: Version of the run record's fields (1: no ``record_version`` key, no ``backbone_provider``; ``source`` is optional
#: in every version).
RECORD_VERSION = 2

T = TypeVar("T")


@dataclasses.dataclass
class DatasetRecord:
    """The dataset a run was trained on: the request (name, data_dir, options, max_examples, seed) and what
    loading it told (modality, spec, attribute_names)."""

    name: str
    data_dir: str | None = None
    options: dict[str, str] = dataclasses.field(default_factory=dict)
    max_examples: int | None = None
    seed: int = 0
    modality: str = ""
    spec: dict[str, Any] = dataclasses.field(default_factory=dict)
    attribute_names: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Provider:
    """The plugin distribution (and its version) that provided a class, e.g. the backbone."""

    distribution: str
    version: str = ""


@dataclasses.dataclass
class SourceRecord:
    """Where an imported model's files are (``lctk import-backbone``): its format (the importer), absolute path,
    and the SHA-256 of every file the importer reads, checked before each command."""

    format: str
    path: str
    files: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class RunRecord:
    """Everything run.json says: the backbone (name, config, providing distribution), the dataset, the
    training settings, status (``training``, ``trained`` or ``imported``), per-epoch history, and for an imported
    model its ``source``."""

    backbone: str
    backbone_config: dict[str, Any]
    dataset: DatasetRecord
    training: dict[str, float] = dataclasses.field(default_factory=dict)
    status: str = "training"
    history: list[dict[str, float]] = dataclasses.field(default_factory=list)
    backbone_provider: Provider | None = None
    source: SourceRecord | None = None
    lctk_version: str = __version__
    format_version: int = FORMAT_VERSION
    record_version: int = RECORD_VERSION
    #: Keys of run.json this lctk does not know (written by a newer one): kept and written back.
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def modality(self) -> str:
        """The modality of the run's data (selects writer and evaluator)."""
        return self.dataset.modality

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], where: str = "run.json") -> "RunRecord":
        """A record from parsed run.json, every field checked; a one-line LctkError naming the first bad one."""
        values = dict(values)
        values.setdefault("record_version", 1)
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        extra = {k: values.pop(k) for k in list(values) if k not in known}
        record = _build(cls, values, where, "")
        record.extra = extra
        return record

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to run.json (stamped with this lctk's versions)."""
        out = {"lctk_version": __version__, "format_version": FORMAT_VERSION, "record_version": RECORD_VERSION}
        for field in dataclasses.fields(self):
            if field.name not in out and field.name != "extra":
                out[field.name] = _plain(getattr(self, field.name))
        return {**out, **{k: v for k, v in self.extra.items() if k not in out}}


def _plain(value: Any) -> Any:
    """JSON-ready: dataclasses as dicts, tuples as lists."""
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _build(cls: type[T], values: Any, where: str, path: str) -> T:
    """Dataclass ``cls`` from a JSON object, each field checked against its type hint."""
    if not isinstance(values, dict):
        _bad(where, path or cls.__name__, "an object", values)
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for field in dataclasses.fields(cls):
        name = f"{path}.{field.name}" if path else field.name
        if field.name not in values:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise LctkError(f"{where} lacks {name!r}; it is damaged: restore it, or train the run again")
            continue
        kwargs[field.name] = _check(values[field.name], hints[field.name], where, name)
    unknown = sorted(set(values) - set(kwargs) - {f.name for f in dataclasses.fields(cls)})
    if unknown and path:
        raise LctkError(f"{where} has unknown key {path}.{unknown[0]}; it is damaged or from a newer lctk")
    return cls(**kwargs)


def _check(value: Any, hint: Any, where: str, name: str, nullable: bool = False) -> Any:
    """``value`` if it has type ``hint`` (dataclasses built), else a one-line LctkError."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _check(value, inner[0], where, name, nullable=True)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            _bad(where, name, "an object" + (" or null" if nullable else ""), value)
        return _build(hint, value, where, name)
    if origin is list:
        if not isinstance(value, list):
            _bad(where, name, "a list", value)
        return [_check(v, args[0], where, f"{name}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            _bad(where, name, "an object", value)
        return {k: _check(v, args[1], where, f"{name}.{k}") for k, v in value.items()}
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if hint in (int, str, bool, float) and type(value) is hint:
        return value
    _bad(where, name, _NAMES.get(hint, getattr(hint, "__name__", str(hint))) + (" or null" if nullable else ""), value)


_NAMES = {int: "a whole number", float: "a number", str: "text", bool: "true or false"}


def _bad(where: str, name: str, expected: str, value: Any) -> typing.NoReturn:
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    raise LctkError(f"{where} is damaged: {name} should be {expected}, not {shown}; restore it, or train the run "
                    "again")
