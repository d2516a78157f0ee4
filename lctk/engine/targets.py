"""What a user asks for: attributes (``--attr sandal``, ``no-smiling``, ``smiling=0``) and rules (``--rule key=C``),
resolved against a run's attribute names and the installed rules."""

from __future__ import annotations

import dataclasses
from typing import Sequence

from lctk.datasets import attribute_name
from lctk.errors import LctkError
from lctk.interfaces import Rule
from lctk.plugins import get_registries

_FALSE = {"0", "false", "no", "off", "n"}
_TRUE = {"1", "true", "yes", "on", "y"}


@dataclasses.dataclass(frozen=True)
class Target:
    """One requested column: an attribute with its wanted value, or a rule (always wanted true)."""

    name: str
    kind: str  # "attribute" or "rule"
    value: bool = True

    def __str__(self) -> str:
        return self.name if self.value else f"no-{self.name}"


def _match(name: str, known: Sequence[str]) -> str | None:
    key = attribute_name(name)
    for k in known:
        if attribute_name(k) == key:
            return k
    return None


def parse_attribute(spec: str, known: Sequence[str]) -> Target:
    """``sandal`` / ``Smiling`` / ``no-smiling`` / ``not-smiling`` / ``smiling=0`` -> Target; unknown names list
    the available ones. A name that exists as written (CelebA's ``no_beard``) is never read as a negation."""
    text = spec.strip()
    value = True
    if "=" in text:
        text, raw = text.split("=", 1)
        raw = raw.strip().lower()
        if raw not in _TRUE | _FALSE:
            raise LctkError(f"attribute value in {spec!r} should be 1 or 0 (or true/false)")
        value = raw in _TRUE
    name = _match(text, known)
    if name is None:
        for prefix in ("no-", "no_", "not-", "not_", "!"):
            if text.lower().startswith(prefix) and _match(text[len(prefix):], known):
                name, value = _match(text[len(prefix):], known), not value
                break
    if name is None:
        shown = ", ".join(known[:60]) + (" ..." if len(known) > 60 else "")
        raise LctkError(f"unknown attribute {text!r}; this run has: {shown or 'no attributes'}")
    return Target(name, "attribute", value)


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


def parse_targets(attrs: Sequence[str], rules: Sequence[str], known: Sequence[str], modality: str
                  ) -> tuple[list[Target], dict[str, Rule]]:
    """Resolve all ``--attr`` and ``--rule`` specs; duplicates and contradictions are refused."""
    targets: list[Target] = []
    rule_objs: dict[str, Rule] = {}
    for spec in attrs:
        t = parse_attribute(spec, known)
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
