"""The image evaluator as a judge that carries over: it trains to its held-out plateau, flips images only when
the dataset says its classes are mirror-symmetric, reports per-class real-test accuracy, and flags a weak judge."""

from __future__ import annotations

import torch

from lctk.interfaces import InMemoryDataset
from lctk.util.progress import Progress
from lctk_conv.evaluator import ImageEvaluator, judge_weakness, stop_training
from lctk_conv.pixels import add_pixel_attributes, ink


def mirrored_classes(safe=()) -> InMemoryDataset:
    """Two classes that are mirror images of each other: a bar on the left (``left``) or on the right."""
    gen = torch.Generator().manual_seed(0)
    n = 240
    labels = torch.arange(n) % 2  # (N,)
    images = torch.rand(n, 1, 8, 8, generator=gen) * 0.3  # (N, 1, 8, 8) noise
    images[labels == 0, :, :, 1:3] += 0.7
    images[labels == 1, :, :, 5:7] += 0.7
    attributes = torch.nn.functional.one_hot(labels, 2).bool()
    split = (torch.arange(n) >= 200).to(torch.int8)
    return InMemoryDataset("mirrored", "image", images, attributes, ["left", "right"], split,
                           {"input_shape": [1, 8, 8]}, safe_augmentations=safe)


def test_stopping_rule():
    assert not stop_training(epoch=2, best_epoch=1, min_epochs=3, patience=1)  # too early
    assert not stop_training(epoch=5, best_epoch=4, min_epochs=3, patience=3)  # improved lately
    assert stop_training(epoch=7, best_epoch=4, min_epochs=3, patience=3)


def test_no_mirror_flip_unless_declared_safe():
    ds = mirrored_classes()
    x = ds.fetch(torch.arange(8))
    judge = ImageEvaluator(ds, None)
    gen = torch.Generator().manual_seed(0)
    assert all(torch.equal(judge._augment(x, gen), x) for _ in range(20))
    flipping = ImageEvaluator(mirrored_classes(safe=("hflip",)), None)
    assert any(torch.equal(flipping._augment(x, gen), x.flip(-1)) for _ in range(20))


def test_judge_trains_to_its_plateau_and_reports_each_class(tmp_path):
    honest = ImageEvaluator(mirrored_classes(), tmp_path / "a", Progress())
    honest.batch_size = 16
    figures = honest.prepare()
    assert figures["classifier_test_accuracy"] == 1.0 and not figures["weak_judge"]
    assert figures["classifier_test_accuracy_per_class"] == {"left": 1.0, "right": 1.0}
    assert figures["classifier_epochs"] < honest.max_epochs  # stopped at the plateau, not at a fixed count
    assert figures["classifier_epochs"] - figures["classifier_best_epoch"] == honest.patience


def test_a_weak_judge_is_flagged_with_its_reason():
    assert judge_weakness(0.97, {"3": 0.95, "5": 0.96}) == ""
    assert "0.847" in judge_weakness(0.847, {"3": 0.95, "5": 0.75})
    assert "5 (0.42" in judge_weakness(0.93, {"3": 0.99, "5": 0.42})


def test_ink_is_the_share_of_lit_pixels():
    images = torch.zeros(2, 1, 4, 4)
    images[0, 0, :2] = 1.0
    assert torch.equal(ink(images), torch.tensor([0.5, 0.0]))
    ds = add_pixel_attributes(mirrored_classes())
    assert ds.continuous_names == ["ink"] and ds.continuous.shape == (240, 1)
