"""Independent image measures: a small CNN trained on the real training images (never on lctk's latents)
judges attribute accuracy, and its penultimate features give Frechet distances to the real test images."""

from __future__ import annotations

import hashlib
import json
from typing import Mapping

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from lctk.plugin_api import Evaluator, feature_stats, frechet_distance, load_tensors, save_tensors
from lctk_conv import pixels

CLASSIFIER_VERSION = 2
#: Augmentations the judge knows; it applies those the dataset declares safe.
AUGMENTATIONS = frozenset({"hflip", "shift"})
#: A judge is weak below this accuracy on the real test images, or below `WEAK_CLASS_ACCURACY` on a class.
WEAK_ACCURACY, WEAK_CLASS_ACCURACY = 0.9, 0.6


def split_holdout(train: Tensor, fraction: float, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """``train`` indices split at random into the ones to learn from and a held-out ``fraction`` (at least one)."""
    perm = train[torch.randperm(len(train), generator=gen)]
    k = min(len(perm) - 1, max(1, round(fraction * len(perm))))
    return perm[k:], perm[:k]


def stop_training(epoch: int, best_epoch: int, min_epochs: int, patience: int) -> bool:
    """True when ``patience`` epochs have passed without a better held-out accuracy (and ``min_epochs`` ran)."""
    return epoch >= min_epochs and epoch - best_epoch >= patience


def judge_weakness(accuracy: float, per_class: Mapping[str, float]) -> str:
    """Why a judge of real-test ``accuracy`` and ``per_class`` accuracies is too weak to trust ("" if it is not)."""
    reasons = []
    if accuracy < WEAK_ACCURACY:
        reasons.append(f"accuracy {accuracy:.3f} on real test images is below {WEAK_ACCURACY}")
    low = {k: v for k, v in per_class.items() if v == v and v < WEAK_CLASS_ACCURACY}
    if low:
        reasons.append("below " + str(WEAK_CLASS_ACCURACY) + " on " + ", ".join(f"{k} ({v:.3f})" for k, v in low.items()))
    return "; ".join(reasons)


class ImageClassifier(nn.Module):
    """Three conv blocks (conv, batch norm, ReLU, max-pool), global average pooling, a 128-d feature layer and
    attribute logits. Small on purpose: it trains on 60,000 images in about a minute on 2 CPU cores."""

    def __init__(self, channels: int, n_out: int, width: int = 16):
        super().__init__()
        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2))
        self.body = nn.Sequential(block(channels, width), block(width, 2 * width), block(2 * width, 4 * width))
        self.features = nn.Sequential(nn.Linear(4 * width, 128), nn.ReLU())
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(128, n_out)

    def embed(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` -> ``(B, 128)`` features."""
        h = self.body(x.contiguous(memory_format=torch.channels_last))  # (B, 4w, H/8, W/8)
        return self.features(rearrange(h, "b c h w -> b c (h w)").mean(dim=2))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.dropout(self.embed(x)))


class ImageEvaluator(Evaluator):
    """Trains (once, cached) an independent classifier; reports accuracy and Frechet distance.

    The classifier is a judge that must carry over to any image dataset: it trains until its accuracy on a
    held-out tenth of the training images stops improving (``patience`` epochs without a better one, between
    ``min_epochs`` and ``max_epochs``; the best epoch's weights are kept), it uses only the augmentations the
    dataset declares safe (`Dataset.safe_augmentations`: no mirror flip unless the classes are mirror-symmetric),
    and it reports its own accuracy on the real test images per class. A judge below `WEAK_ACCURACY` overall or
    `WEAK_CLASS_ACCURACY` on some class is flagged as weak (``weak_judge``) rather than trusted silently.
    """

    min_epochs, max_epochs, patience = 3, 40, 3
    batch_size = 128
    lr = 2e-3
    #: Share of the training images held out to decide when to stop.
    holdout = 0.1
    #: Largest translation of the ``shift`` augmentation, in pixels.
    max_shift = 2

    def _key(self, seed: int) -> str:
        ds = self.dataset
        text = json.dumps([CLASSIFIER_VERSION, ds.name, len(ds), int((ds.split == 0).sum()), ds.attribute_names,
                           ds.spec, seed, self.min_epochs, self.max_epochs, self.patience, self.holdout,
                           sorted(ds.safe_augmentations)])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def exclusive(self) -> bool:
        """True when every example has exactly one attribute (class labels): then softmax and argmax."""
        return bool((self.dataset.attributes.sum(dim=1) == 1).all())

    def _batches(self, indices: Tensor):
        for i in range(0, len(indices), 512):
            yield self.dataset.fetch(indices[i:i + 512])

    def prepare(self, seed: int = 0) -> dict[str, float]:
        ds = self.dataset
        self.model = ImageClassifier(ds.spec["input_shape"][0], len(ds.attribute_names)).to(memory_format=torch.channels_last)
        path = self.cache_dir / "classifier.safetensors"
        key = self._key(seed)
        cached, info = False, {}
        if path.is_file():
            tensors, meta = load_tensors(path, "evaluation classifier")
            if meta.get("key") == key:
                self.model.load_state_dict(tensors)
                cached, info = True, json.loads(meta.get("training", "{}"))
        if not cached:
            info = self._train(seed)
            save_tensors(path, self.model.state_dict(), {"key": key, "training": json.dumps(info)})
        self.model.eval()
        test = ds.indices("test")
        with torch.no_grad():
            feats_t = torch.cat([self.model.embed(x) for x in self._batches(test)])  # (N, 128)
            logits = self.model.head(feats_t)
        self.real_stats = feature_stats(feats_t)
        labels = ds.attributes[test]
        right = self._right(logits, labels)  # (N, A)
        overall = right[labels].float().mean().item() if self.exclusive else right.float().mean().item()
        per_class = {name: round(self._class_accuracy(right, labels, j), 4) for j, name in enumerate(ds.attribute_names)}
        figures = {"classifier_test_accuracy": round(overall, 4), "classifier_cached": cached, "test_examples": len(test),
                   **info, "classifier_augmentations": sorted(ds.safe_augmentations & AUGMENTATIONS),
                   "classifier_test_accuracy_per_class": per_class}
        weak = judge_weakness(overall, per_class)
        figures["weak_judge"] = bool(weak)
        if weak:
            figures["weak_judge_reason"] = weak
        return figures

    def _right(self, logits: Tensor, labels: Tensor) -> Tensor:
        """``(N, A)`` bool: per example and attribute, whether the judge's call is right."""
        if self.exclusive:
            predicted = F.one_hot(logits.argmax(dim=1), labels.shape[1]).bool()
            return predicted == labels
        return (logits > 0) == labels

    def _class_accuracy(self, right: Tensor, labels: Tensor, j: int) -> float:
        """Accuracy on class ``j``: among its examples (exclusive classes), else on its column."""
        if self.exclusive:
            mine = labels[:, j]
            return right[mine, j].float().mean().item() if mine.any() else float("nan")
        return right[:, j].float().mean().item()

    def _augment(self, x: Tensor, gen: torch.Generator) -> Tensor:
        """The dataset's safe augmentations on a batch ``(B, C, H, W)``."""
        safe = self.dataset.safe_augmentations
        if "hflip" in safe and torch.rand((), generator=gen) < 0.5:
            x = x.flip(-1)  # mirror: only for mirror-symmetric classes
        if "shift" in safe:
            s = self.max_shift
            dy, dx = (int(v) for v in torch.randint(-s, s + 1, (2,), generator=gen))
            padded = F.pad(x, (s, s, s, s))  # (B, C, H + 2s, W + 2s)
            x = padded[..., s + dy:s + dy + x.shape[-2], s + dx:s + dx + x.shape[-1]]
        return x

    def _accuracy(self, indices: Tensor) -> float:
        """Accuracy on the examples ``indices`` (all attributes right)."""
        self.model.eval()
        with torch.no_grad():
            logits = torch.cat([self.model(x) for x in self._batches(indices)])
        self.model.train()
        labels = self.dataset.attributes[indices]
        return self._right(logits, labels).all(dim=1).float().mean().item()

    def _train(self, seed: int) -> dict:
        """Train to the held-out plateau; returns how (epochs, held-out accuracy)."""
        ds, model = self.dataset, self.model
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        train, held = split_holdout(ds.indices("train"), self.holdout, gen)
        opt = torch.optim.Adam(model.parameters(), lr=self.lr)
        steps_per_epoch = max(1, len(train) // self.batch_size)
        model.train()
        best, best_state, best_epoch, epoch = -1.0, None, 0, 0
        task = self.progress.task("evaluation classifier", total=self.max_epochs * steps_per_epoch) if self.progress else None
        bar = task.__enter__() if task else None
        try:
            for epoch in range(1, self.max_epochs + 1):
                perm = train[torch.randperm(len(train), generator=gen)]
                for i in range(steps_per_epoch):
                    idx = perm[i * self.batch_size:(i + 1) * self.batch_size]
                    x, y = self._augment(ds.fetch(idx), gen), ds.attributes[idx]
                    logits = model(x)
                    loss = F.cross_entropy(logits, y.float().argmax(dim=1)) if self.exclusive else \
                        F.binary_cross_entropy_with_logits(logits, y.float())
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    if bar:
                        bar.advance(1, info=f"epoch {epoch} loss {loss.item():.3f} held-out {max(best, 0):.3f}")
                accuracy = self._accuracy(held)
                if accuracy > best:
                    best, best_epoch = accuracy, epoch
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                elif stop_training(epoch, best_epoch, self.min_epochs, self.patience):
                    break
                else:
                    for group in opt.param_groups:  # no better epoch: a smaller step may find one
                        group["lr"] *= 0.5
        finally:
            if task:
                task.__exit__(None, None, None)
        model.load_state_dict(best_state)
        return {"classifier_epochs": epoch, "classifier_best_epoch": best_epoch,
                "classifier_heldout_accuracy": round(best, 4)}

    def measure(self, attribute: str, outputs: Tensor) -> Tensor | None:
        """``(B,)`` a pixel attribute (``ink``) of the images, computed from the pixels."""
        return pixels.measure(attribute, outputs)

    def evaluate(self, name: str, outputs: Tensor, target: Mapping[str, bool] | None = None,
                 reference: Tensor | None = None) -> dict[str, float]:
        feats, logits = [], []
        with torch.no_grad():
            for i in range(0, len(outputs), 512):
                f = self.model.embed(outputs[i:i + 512].float())
                feats.append(f)
                logits.append(self.model.head(f))
        feats_t, logits_t = torch.cat(feats), torch.cat(logits)
        out = {"frechet_distance": round(frechet_distance(feature_stats(feats_t), self.real_stats), 3)}
        if target:
            names = self.dataset.attribute_names
            predicted = F.one_hot(logits_t.argmax(dim=1), len(names)).bool() if self.exclusive else logits_t > 0
            ok = torch.ones(len(outputs), dtype=torch.bool)
            for attr, value in target.items():
                ok &= predicted[:, names.index(attr)] == value
            out["accuracy"] = round(ok.float().mean().item(), 4)
        return out
