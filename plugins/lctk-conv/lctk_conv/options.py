"""Checking ``--data-option key=value`` settings of the image datasets, with one-line errors."""

from __future__ import annotations

from typing import Mapping

from lctk.plugin_api import LctkError


def check_known(options: Mapping[str, str], known: tuple[str, ...], dataset: str) -> None:
    """Refuse options ``dataset`` does not understand, naming the ones it does."""
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise LctkError(f"dataset {dataset} has no option {', '.join(unknown)}; known options: {', '.join(known)}")


def int_option(options: Mapping[str, str], key: str, default: int | None, dataset: str,
               choices: tuple[int, ...] | None = None) -> int | None:
    """``options[key]`` as a positive whole number (one of ``choices`` if given), else ``default``."""
    if key not in options:
        return default
    text = str(options[key]).strip()
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1 or (choices and value not in choices):
        allowed = " or ".join(map(str, choices)) if choices else "a whole number of at least 1"
        raise LctkError(f"dataset {dataset}: --data-option {key}={text} should be {allowed}")
    return value


def fraction_option(options: Mapping[str, str], key: str, default: float, dataset: str) -> float:
    """``options[key]`` as a number in [0, 1), else ``default``."""
    if key not in options:
        return default
    text = str(options[key]).strip()
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value < 1.0:
        raise LctkError(f"dataset {dataset}: --data-option {key}={text} should be a number from 0 up to "
                        "(not including) 1")
    return value
