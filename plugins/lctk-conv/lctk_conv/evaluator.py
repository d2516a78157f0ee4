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

from lctk.interfaces import Evaluator
from lctk.io import load_tensors, save_tensors
from lctk.metrics import feature_stats, frechet_distance
from lctk_conv import pixels

CLASSIFIER_VERSION = 1


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
    """Trains (once, cached) an independent classifier; reports accuracy and Frechet distance."""

    epochs = 3
    batch_size = 128

    def _key(self, seed: int) -> str:
        ds = self.dataset
        text = json.dumps([CLASSIFIER_VERSION, ds.name, len(ds), int((ds.split == 0).sum()), ds.attribute_names,
                           ds.spec, seed, self.epochs])
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
        cached = False
        if path.is_file():
            tensors, meta = load_tensors(path, "evaluation classifier")
            if meta.get("key") == key:
                self.model.load_state_dict(tensors)
                cached = True
        if not cached:
            self._train(seed)
            save_tensors(path, self.model.state_dict(), {"key": key})
        self.model.eval()
        test = ds.indices("test")
        feats, correct = [], 0.0
        with torch.no_grad():
            for x in self._batches(test):
                f = self.model.embed(x)
                feats.append(f)
            feats_t = torch.cat(feats)
            logits = self.model.head(feats_t)
        self.real_stats = feature_stats(feats_t)
        labels = ds.attributes[test]
        if self.exclusive:
            correct = (logits.argmax(dim=1) == labels.float().argmax(dim=1)).float().mean().item()
        else:
            correct = ((logits > 0) == labels).float().mean().item()
        return {"classifier_test_accuracy": round(correct, 4), "classifier_cached": cached, "test_examples": len(test)}

    def _train(self, seed: int) -> None:
        ds, model = self.dataset, self.model
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        train = ds.indices("train")
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        steps_per_epoch = max(1, len(train) // self.batch_size)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=self.epochs * steps_per_epoch)
        model.train()
        task = self.progress.task("evaluation classifier", total=self.epochs * steps_per_epoch) if self.progress else None
        bar = task.__enter__() if task else None
        try:
            for _ in range(self.epochs):
                perm = train[torch.randperm(len(train), generator=gen)]
                for i in range(steps_per_epoch):
                    idx = perm[i * self.batch_size:(i + 1) * self.batch_size]
                    x, y = ds.fetch(idx), ds.attributes[idx]
                    if torch.rand((), generator=gen) < 0.5 and x.shape[-1] == x.shape[-2]:
                        x = x.flip(-1)  # mirror augmentation
                    logits = model(x)
                    loss = F.cross_entropy(logits, y.float().argmax(dim=1)) if self.exclusive else \
                        F.binary_cross_entropy_with_logits(logits, y.float())
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
                    if bar:
                        bar.advance(1, info=f"loss {loss.item():.3f}")
        finally:
            if task:
                task.__exit__(None, None, None)

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
