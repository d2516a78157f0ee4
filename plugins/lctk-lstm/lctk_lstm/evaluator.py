"""Independent measures of generated melodies, computed from the tokens (no classifier, no lctk critic):

- ``token_accuracy`` (and ``exact_match``): how well outputs reproduce the ``reference`` melodies;
- ``pitch_class_tv``, ``density_tv``: total-variation distance between the pitch-class histogram (of all
  note-ons) and the note-count histogram (per melody) of the outputs and of the training data; 0 is a
  perfect match, 1 no overlap;
- ``accuracy``: the fraction of outputs whose attributes (or rules) all take the wanted ``target`` values,
  plus ``accuracy/NAME`` per target when there are several;
- with a ``target``, ``pitch_class_tv_matching`` and ``density_tv_matching``: the same distances to the
  training windows that themselves satisfy the target (a melody asked to be in C major is compared with the
  data's C-major melodies, not with all keys).
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor

from lctk.plugin_api import Evaluator, LctkError
from lctk_lstm.encoding import SEQ_LEN
from lctk_lstm.features import ATTRIBUTES, CONTINUOUS, attribute_table, note_counts, pitch_class_counts
from lctk_lstm.rules import parse_rule


def pitch_class_histogram(tokens: Tensor) -> Tensor:
    """``(12,)`` share of note-ons per pitch class (all zero without notes)."""
    counts = pitch_class_counts(tokens).sum(dim=0).float()  # (12,)
    return counts / counts.sum().clamp(min=1)


def density_histogram(tokens: Tensor) -> Tensor:
    """``(T + 1,)`` share of melodies per number of note-ons."""
    counts = torch.bincount(note_counts(tokens), minlength=SEQ_LEN + 1)[:SEQ_LEN + 1].float()
    return counts / counts.sum().clamp(min=1)


def total_variation(p: Tensor, q: Tensor) -> float:
    """Half the L1 distance between two histograms (1.0 when one of them is empty)."""
    if p.sum() == 0 or q.sum() == 0:
        return 1.0
    return 0.5 * (p - q).abs().sum().item()


class MelodyEvaluator(Evaluator):
    """Melody statistics against the dataset's training part."""

    def prepare(self, seed: int = 0) -> dict[str, float]:
        """Histograms of the training windows; returns their count and mean number of notes."""
        train = self.dataset.fetch(self.dataset.indices("train")).cpu()  # (N, T)
        self._train = train
        self._pitch_classes = pitch_class_histogram(train)
        self._densities = density_histogram(train)
        return {"train_windows": float(len(train)), "train_mean_notes": note_counts(train).float().mean().item()}

    def measure(self, attribute: str, outputs: Tensor) -> Tensor | None:
        """``(B,)`` the continuous melody attribute ``attribute`` (density, range, contour, rhythm) of the tokens."""
        fn = CONTINUOUS.get(attribute.lower())
        return None if fn is None else fn(outputs.detach().cpu().long()).float()

    def _target_column(self, name: str, outputs: Tensor) -> Tensor:
        key = name.lower()
        if key in ATTRIBUTES:
            return attribute_table(outputs, [key])[:, 0]
        if any(ch in name for ch in "=<>!"):
            return parse_rule(name)(outputs)
        raise LctkError(f"unknown melody attribute {name!r}; known: {', '.join(ATTRIBUTES)} (or a rule such as key=C)")

    def evaluate(self, name: str, outputs: Tensor, target: Mapping[str, bool] | None = None,
                 reference: Tensor | None = None) -> dict[str, float]:
        """See the module docstring for the figures returned."""
        if not hasattr(self, "_pitch_classes"):
            self.prepare()
        outputs = outputs.detach().cpu().long()
        figures: dict[str, float] = {}
        if reference is not None:
            reference = reference.detach().cpu().long()
            if reference.shape != outputs.shape:
                raise LctkError(f"reference {tuple(reference.shape)} and outputs {tuple(outputs.shape)} differ in shape")
            same = outputs == reference  # (B, T)
            figures["token_accuracy"] = same.float().mean().item()
            figures["exact_match"] = same.all(dim=1).float().mean().item()
        figures["pitch_class_tv"] = total_variation(pitch_class_histogram(outputs), self._pitch_classes)
        figures["density_tv"] = total_variation(density_histogram(outputs), self._densities)
        figures["mean_notes"] = note_counts(outputs).float().mean().item() if len(outputs) else 0.0
        if target:
            hits = []
            for attr, wanted in target.items():
                hit = self._target_column(attr, outputs) == bool(wanted)  # (B,)
                hits.append(hit)
                if len(target) > 1:
                    figures[f"accuracy/{attr}"] = hit.float().mean().item()
            figures["accuracy"] = torch.stack(hits, dim=1).all(dim=1).float().mean().item()
            matching = torch.stack([self._target_column(a, self._train) == bool(w) for a, w in target.items()],
                                   dim=1).all(dim=1)  # (N,)
            if matching.any():
                data = self._train[matching]
                figures["pitch_class_tv_matching"] = total_variation(pitch_class_histogram(outputs),
                                                                     pitch_class_histogram(data))
                figures["density_tv_matching"] = total_variation(density_histogram(outputs), density_histogram(data))
        return figures
