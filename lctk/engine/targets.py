"""What a user asks for: attributes (``--attr sandal``, ``no-smiling``, ``smiling=0``), continuous attributes
(``--attr density``, ``density=12``, a sweep ``density=4..16``) and rules (``--rule key=C``), resolved against a
run's attribute names, the observed ranges of its continuous attributes, and the installed rules."""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Mapping, Sequence

from lctk.datasets import attribute_name
from lctk.util.errors import LctkError
from lctk.interfaces import Rule
from lctk.plugins import get_registries

_FALSE = {"0", "false", "no", "off", "n"}
_TRUE = {"1", "true", "yes", "on", "y"}


#: Values of a sweep ``LOW..HIGH`` whose ends are not both integers (``LOW..HIGH:COUNT`` chooses).
SWEEP_VALUES = 9
#: A sweep of integers has one value per integer up to this many values, else `SWEEP_VALUES` spread evenly.
SWEEP_MAX_INTEGERS = 33
_SWEEP = re.compile(r"^(?P<name>[^=]+)=(?P<low>[^.:]*(?:\.\d+)?)\.\.(?P<high>[^:]*)(?::(?P<count>.*))?$")


@dataclasses.dataclass(frozen=True)
class Target:
    """One requested column: an attribute with its wanted value, a continuous attribute (``value`` the wanted
    number, None when unstated; ``low``/``high`` its observed range), or a rule (always wanted true)."""

    name: str
    kind: str  # "attribute", "continuous" or "rule"
    value: bool | float | None = True
    low: float | None = None
    high: float | None = None

    def __str__(self) -> str:
        if self.kind == "continuous":
            return self.name if self.value is None else f"{self.name}={self.value:g}"
        return self.name if self.value else f"no-{self.name}"

    def scaled(self, value: float | None = None) -> float:
        """A continuous value (default: the wanted one) mapped from the observed range to [0, 1]."""
        value = self.value if value is None else value
        span = (self.high - self.low) or 1.0
        return (float(value) - self.low) / span


def _match(name: str, known: Sequence[str]) -> str | None:
    key = attribute_name(name)
    for k in known:
        if attribute_name(k) == key:
            return k
    return None


def _number(text: str, spec: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise LctkError(f"{text.strip()!r} in {spec!r} is not a number") from None
    if not math.isfinite(value):
        raise LctkError(f"{text.strip()!r} in {spec!r} is not a finite number")
    return value


def _continuous(spec: str, text: str, raw: str | None, name: str, low: float, high: float) -> Target:
    """``density`` (no value) or ``density=12`` (checked against the observed range)."""
    if raw is None:
        return Target(name, "continuous", None, low, high)
    value = _number(raw, spec)
    if not low <= value <= high:
        raise LctkError(f"{name}={raw.strip()} is outside the observed range of {name}, {low:g} to {high:g}; "
                        f"ask for a value in that range")
    return Target(name, "continuous", value, low, high)


def parse_attribute(spec: str, known: Sequence[str],
                    continuous: Mapping[str, tuple[float, float]] | None = None, hint: str = "") -> Target:
    """``sandal`` / ``Smiling`` / ``no-smiling`` / ``not-smiling`` / ``smiling=0`` -> Target; unknown names list
    the available ones. A name that exists as written (CelebA's ``no_beard``) is never read as a negation.
    ``continuous`` maps continuous attribute names to their observed (low, high): ``density=12`` wants 12."""
    text = spec.strip()
    continuous = dict(continuous or {})
    raw = None
    if "=" in text:
        text, raw = text.split("=", 1)
    name = _match(text, list(continuous))
    if name is not None:
        return _continuous(spec, text, raw, name, *continuous[name])
    value = True
    if raw is not None:
        raw = raw.strip().lower()
        if raw not in _TRUE | _FALSE:
            raise LctkError(f"attribute value in {spec!r} should be 1 or 0 (or true/false): "
                            f"{text.strip()!r} is a binary attribute")
        value = raw in _TRUE
    name = _match(text, known)
    if name is None:
        for prefix in ("no-", "no_", "not-", "not_", "!"):
            if text.lower().startswith(prefix) and _match(text[len(prefix):], known):
                name, value = _match(text[len(prefix):], known), not value
                break
    if name is None:
        every = list(known) + list(continuous)
        shown = ", ".join(every[:60]) + (" ..." if len(every) > 60 else "")
        raise LctkError(f"unknown attribute {text!r}; this run has: {shown or 'no attributes'}{hint}")
    return Target(name, "attribute", value)


def sweep_values(spec: str) -> tuple[str, list[float]] | None:
    """``density=4..16`` -> ``("density", [4, 5, ..., 16])``; ``ink=0.1..0.3:5`` -> five values evenly spread;
    None when ``spec`` is no sweep. Both ends are included; a reversed or empty range is refused."""
    m = _SWEEP.match(spec.strip())
    if m is None:
        return None
    name, low_text, high_text = m["name"].strip(), m["low"].strip(), m["high"].strip()
    if not low_text or not high_text:
        raise LctkError(f"sweep {spec!r} needs both ends, e.g. {name}=4..16")
    low, high = _number(low_text, spec), _number(high_text, spec)
    if low >= high:
        raise LctkError(f"sweep {spec!r} is {'empty' if low == high else 'reversed'}; write LOW..HIGH with LOW "
                        f"below HIGH, e.g. {name}={min(low, high):g}..{max(low, high) + (1 if low == high else 0):g}")
    if m["count"] is not None:
        count = m["count"].strip()
        if not count.isdigit() or not 2 <= int(count) <= 64:
            raise LctkError(f"the number of values in sweep {spec!r} should be a whole number from 2 to 64")
        return name, [round(low + (high - low) * i / (int(count) - 1), 9) for i in range(int(count))]
    if low.is_integer() and high.is_integer() and high - low < SWEEP_MAX_INTEGERS:
        return name, [float(v) for v in range(int(low), int(high) + 1)]
    return name, [round(low + (high - low) * i / (SWEEP_VALUES - 1), 9) for i in range(SWEEP_VALUES)]


def parse_sweep(spec: str, known: Sequence[str], continuous: Mapping[str, tuple[float, float]], hint: str = ""
                ) -> list[Target]:
    """The targets of a sweep ``NAME=LOW..HIGH[:COUNT]`` over a continuous attribute, one per value, each
    checked against the observed range (see `sweep_values`)."""
    text, values = sweep_values(spec)
    name = _match(text, list(continuous))
    if name is None:
        if _match(text, known) is not None:
            raise LctkError(f"{text!r} is a binary attribute; sweeps ({spec!r}) are for continuous attributes "
                            f"({', '.join(continuous) or 'this run has none'})")
        parse_attribute(text, known, continuous, hint)  # the unknown-attribute error
    low, high = continuous[name]
    if values[0] < low or values[-1] > high:
        raise LctkError(f"sweep {spec!r} goes outside the observed range of {name}, {low:g} to {high:g}; "
                        "sweep within that range")
    return [Target(name, "continuous", v, low, high) for v in values]


def parse_rule(spec: str, modality: str) -> tuple[Target, Rule]:
    """``key=C`` -> (Target, Rule) via the rule plugins; rules of another modality are refused."""
    entry = get_registries().rule_entry(spec)
    if entry.modality and modality and entry.modality != modality:
        raise LctkError(f"rule {entry.name!r} is for {entry.modality} data, this run's data is {modality}")
    try:
        rule = entry.value(spec.strip())
    except LctkError:
        raise
    except Exception as e:
        raise LctkError(f"rule {spec!r} could not be parsed ({e}); {entry.help}") from None
    return Target(rule.spec, "rule", True), rule


def parse_targets(attrs: Sequence[str], rules: Sequence[str], known: Sequence[str], modality: str,
                  continuous: Mapping[str, tuple[float, float]] | None = None, hint: str = ""
                  ) -> tuple[list[Target], dict[str, Rule]]:
    """Resolve all ``--attr`` and ``--rule`` specs; duplicates and contradictions are refused, and so are
    sweeps (see `parse_sweep`: a caller that sweeps expands them first). ``hint`` ends unknown-attribute errors."""
    targets: list[Target] = []
    rule_objs: dict[str, Rule] = {}
    for spec in attrs:
        if sweep_values(spec) is not None:
            raise LctkError(f"a sweep ({spec!r}) is for `lctk sample`; give one value here")
        t = parse_attribute(spec, known, continuous, hint)
        if any(o.name == t.name for o in targets):
            raise LctkError(f"attribute {t.name!r} is asked for twice")
        targets.append(t)
    for spec in rules:
        t, rule = parse_rule(spec, modality)
        if t.name in rule_objs:
            raise LctkError(f"rule {t.name!r} is asked for twice")
        targets.append(t)
        rule_objs[t.name] = rule
    return targets, rule_objs
