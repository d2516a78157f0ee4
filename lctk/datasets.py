"""Helpers for dataset plugins: subsampling with a split, attribute tables from class labels."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor


def attribute_name(name: str) -> str:
    """Canonical attribute name: lower case, runs of spaces, slashes and underscores as ``-``."""
    return re.sub(r"[\s/_]+", "-", name.strip().lower()).strip("-")


def one_hot_attributes(labels: Tensor, num_classes: int) -> Tensor:
    """``(N,)`` class labels -> ``(N, num_classes)`` bool attribute table."""
    return torch.nn.functional.one_hot(labels.long(), num_classes).bool()


def subsample(split: Tensor, max_examples: int | None, seed: int = 0) -> Tensor:
    """Indices of at most ``max_examples`` examples, drawn at random with ``seed``, keeping the
    train/test proportions of ``split`` (at least one training example). All indices when no cap."""
    n = len(split)
    if max_examples is None or max_examples >= n:
        return torch.arange(n)
    gen = torch.Generator().manual_seed(seed)
    train = torch.nonzero(split == 0).flatten()
    test = torch.nonzero(split != 0).flatten()
    n_train = max(1, round(max_examples * len(train) / n))
    n_test = min(len(test), max_examples - n_train)
    pick_train = train[torch.randperm(len(train), generator=gen)[:n_train]]
    pick_test = test[torch.randperm(len(test), generator=gen)[:n_test]]
    return torch.cat([pick_train.sort().values, pick_test.sort().values])


def names_from_option(option: str | None, default: Sequence[str]) -> list[str]:
    """Attribute names from a comma-separated ``--data-option classes=a,b,c``, else ``default``."""
    if not option:
        return [attribute_name(n) for n in default]
    return [attribute_name(n) for n in option.split(",")]


def cache_root() -> Path:
    """Where dataset plugins cache derived data: ``$LCTK_CACHE``, else ``~/.cache/lctk``."""
    if os.environ.get("LCTK_CACHE"):
        from lctk.util.outputs import check_cache_folder

        return check_cache_folder(os.environ["LCTK_CACHE"])
    return Path.home() / ".cache" / "lctk"
