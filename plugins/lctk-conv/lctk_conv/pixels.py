"""Continuous attributes computed from pixels, so that any image dataset (labelled or not) has faders.

``ink``: the fraction of lit pixels (values above `LIT`, over every channel), from 0 (blank) to 1 (all lit).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from lctk.plugin_api import InMemoryDataset

#: A pixel (in [0, 1]) counts as lit above this value.
LIT = 0.5


def ink(images: Tensor) -> Tensor:
    """``(B, C, H, W)`` images in [0, 1] -> ``(B,)`` fraction of lit pixel values."""
    return (images.float() > LIT).flatten(1).float().mean(dim=1)


#: Attribute name -> function of ``(B, C, H, W)`` images in [0, 1] giving ``(B,)`` float.
PIXEL_ATTRIBUTES: dict[str, Callable[[Tensor], Tensor]] = {"ink": ink}


def measure(name: str, images: Tensor) -> Tensor | None:
    """``(B,)`` values of pixel attribute ``name`` for ``images``; None for an attribute not computed here."""
    fn = PIXEL_ATTRIBUTES.get(name)
    return None if fn is None else fn(images)


def add_pixel_attributes(dataset: InMemoryDataset, batch: int = 4096) -> InMemoryDataset:
    """Add every `PIXEL_ATTRIBUTES` column that ``dataset`` does not have yet (in place); returns it."""
    names = [n for n in PIXEL_ATTRIBUTES if n not in dataset.continuous_names and n not in dataset.attribute_names]
    if not names:
        return dataset
    columns = []
    for start in range(0, len(dataset), batch):
        x = dataset.fetch(torch.arange(start, min(len(dataset), start + batch)))  # (b, C, H, W)
        columns.append(torch.stack([PIXEL_ATTRIBUTES[n](x) for n in names], dim=1))  # (b, P)
    return dataset.with_continuous(torch.cat(columns) if columns else torch.zeros(0, len(names)), names)


def with_pixel_attributes(loader: Callable[..., InMemoryDataset]) -> Callable[..., InMemoryDataset]:
    """A dataset loader whose datasets also carry the pixel attributes."""
    def load(request):
        return add_pixel_attributes(loader(request))
    load.__doc__, load.__name__ = loader.__doc__, getattr(loader, "__name__", "load")
    return load
