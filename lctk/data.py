"""The data contracts: what a user asks a dataset loader for (`DataRequest`) and what it returns (`Dataset`,
`InMemoryDataset`). Re-exported by `lctk.interfaces` and `lctk.plugin_api`."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor

# ----------------------------------------------------------------------------------------------------------
# Data
# ----------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class DataRequest:
    """What the user asked a dataset loader for.

    Attributes: data_dir, the user's ``--data-dir`` (None: the loader's default location); options, extra
    ``--data-option key=value`` pairs; max_examples, a cap (None: all); seed, for any subsampling;
    progress, a `lctk.util.progress.Progress` to report long loading on (may be None).
    """

    data_dir: Path | None = None
    options: dict[str, str] = dataclasses.field(default_factory=dict)
    max_examples: int | None = None
    seed: int = 0
    progress: Any = None


class Dataset(ABC):
    """A set of examples with a table of named binary attributes, optionally continuous attributes (faders
    such as a melody's note count), and a train/test split.

    Attribute names are lower case (``sandal``, ``smiling``); lookups elsewhere are case-insensitive.
    """

    #: Registry name of the dataset (``fashion-mnist``).
    name: str
    #: What the examples are; selects the writer and evaluator (``image``, ``melody``, ...).
    modality: str
    #: Augmentations that keep every attribute of an example (``hflip``: the classes are mirror-symmetric;
    #: ``shift``: small translations); an evaluator trained on the data uses only these.
    safe_augmentations: frozenset[str] = frozenset()

    @property
    @abstractmethod
    def spec(self) -> dict[str, Any]:
        """Facts a backbone needs to size itself, e.g. ``{"input_shape": [1, 28, 28]}`` or
        ``{"seq_len": 32, "vocab_size": 130}``. Keys matching a backbone config field fill it."""

    @property
    @abstractmethod
    def attribute_names(self) -> list[str]:
        """Names of the attribute columns, lower case."""

    @property
    @abstractmethod
    def attributes(self) -> Tensor:
        """``(N, A)`` bool: attribute table, one column per name in `attribute_names`."""

    @property
    @abstractmethod
    def split(self) -> Tensor:
        """``(N,)`` int8: 0 for training examples, 1 for test examples."""

    @abstractmethod
    def fetch(self, indices: Tensor) -> Tensor:
        """The model-ready examples at ``indices`` (a 1-D int64 tensor), batch first."""

    @property
    def continuous_names(self) -> list[str]:
        """Names of the continuous attribute columns, lower case (none unless the dataset has some)."""
        return []

    @property
    def continuous(self) -> Tensor:
        """``(N, C)`` float32: continuous attribute values, one column per name in `continuous_names`."""
        return torch.zeros(len(self), len(self.continuous_names))

    def __len__(self) -> int:
        return int(self.split.shape[0])

    def indices(self, part: str = "train") -> Tensor:
        """``(M,)`` int64 indices of the ``train`` or ``test`` part (``all`` for every example)."""
        if part == "all":
            return torch.arange(len(self))
        return torch.nonzero(self.split == (0 if part == "train" else 1)).flatten()


class InMemoryDataset(Dataset):
    """A dataset whose examples fit in memory as one tensor, converted per batch by ``to_model``.

    Args:
        name: registry name. modality: e.g. ``image``. examples: ``(N, ...)`` storage tensor (uint8 pixels,
        int64 tokens, ...). attributes: ``(N, A)`` bool. attribute_names: A lower-case names.
        split: ``(N,)`` int8, 0 train / 1 test. spec: see `Dataset.spec`. to_model: storage batch -> model batch.
        continuous: ``(N, C)`` float continuous attributes named ``continuous_names``. safe_augmentations:
        see `Dataset.safe_augmentations`.
    """

    def __init__(self, name: str, modality: str, examples: Tensor, attributes: Tensor,
                 attribute_names: Sequence[str], split: Tensor, spec: Mapping[str, Any],
                 to_model: Callable[[Tensor], Tensor] | None = None, meta: Mapping[str, Any] | None = None,
                 continuous: Tensor | None = None, continuous_names: Sequence[str] = (),
                 safe_augmentations: Sequence[str] = ()):
        if not (len(examples) == len(attributes) == len(split)):
            raise ValueError("examples, attributes and split must have the same length")
        continuous = torch.zeros(len(examples), 0) if continuous is None else continuous.float()
        if continuous.shape != (len(examples), len(continuous_names)):
            raise ValueError("continuous must have one row per example and one column per continuous name")
        self.name, self.modality = name, modality
        self.examples = examples
        self._attributes = attributes.bool()
        self._names = [n.lower() for n in attribute_names]
        self._split = split.to(torch.int8)
        self._spec = dict(spec)
        self.to_model = to_model or (lambda t: t)
        self.meta = dict(meta or {})
        self._continuous, self._continuous_names = continuous, [n.lower() for n in continuous_names]
        self.safe_augmentations = frozenset(safe_augmentations)

    @property
    def spec(self) -> dict[str, Any]:
        return dict(self._spec)

    @property
    def attribute_names(self) -> list[str]:
        return list(self._names)

    @property
    def attributes(self) -> Tensor:
        return self._attributes

    @property
    def split(self) -> Tensor:
        return self._split

    @property
    def continuous_names(self) -> list[str]:
        return list(self._continuous_names)

    @property
    def continuous(self) -> Tensor:
        return self._continuous

    def with_continuous(self, values: Tensor, names: Sequence[str]) -> "InMemoryDataset":
        """Add continuous attribute columns ``values (N, C)`` named ``names`` (in place); returns self."""
        values = values.float()
        if values.shape != (len(self), len(names)):
            raise ValueError("continuous values must have one row per example and one column per name")
        self._continuous = torch.cat([self._continuous, values], dim=1)
        self._continuous_names += [n.lower() for n in names]
        return self

    def fetch(self, indices: Tensor) -> Tensor:
        return self.to_model(self.examples[indices])
