"""The image labeler: a small CNN trained on the dataset's real training images and labels, that labels the
decoded outputs of generator-only backbones (GANs) so their attributes can be constrained.

It is a model of its own, apart from the evaluator's classifier (`lctk_conv.evaluator`): another architecture
(5x5 then 3x3 convolutions without batch norm, a flattened fully connected head), another seed and its own
cache file (``RUN/labeler/labeler.safetensors``), so that `lctk evaluate` still judges with a model the
constraints never saw.
"""

from __future__ import annotations

import contextlib
import hashlib
import json

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from lctk.plugin_api import Labeler, load_tensors, save_tensors

LABELER_VERSION = 1
#: Added to the requested seed, so the labeler never starts from the evaluator's initial weights.
SEED_OFFSET = 7919


class LabelerNet(nn.Module):
    """Conv 5x5 (16) and conv 3x3 (32), each with ReLU and 2x2 max-pooling, then a 256-unit fully connected
    layer with dropout and one logit per attribute."""

    def __init__(self, input_shape: tuple[int, int, int], n_out: int):
        super().__init__()
        c, h, w = input_shape
        self.convs = nn.Sequential(nn.Conv2d(c, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                                   nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Linear(32 * (h // 4) * (w // 4), 256), nn.ReLU(), nn.Dropout(0.5),
                                  nn.Linear(256, n_out))

    def forward(self, x: Tensor) -> Tensor:
        h = rearrange(self.convs(x), "b c h w -> b (c h w)")  # (B, 32 * H/4 * W/4)
        return self.head(h)  # (B, A) logits


class ImageLabeler(Labeler):
    """Trains (once, cached) `LabelerNet` on the real training images; labels outputs by argmax for class
    labels (every example has exactly one attribute) and by sign otherwise."""

    epochs = 3
    batch_size = 128
    lr = 1e-3

    @property
    def path(self):
        """The cache file of the trained labeler."""
        return self.cache_dir / "labeler.safetensors"

    @property
    def exclusive(self) -> bool:
        """True when every example has exactly one attribute (class labels)."""
        return bool((self.dataset.attributes.sum(dim=1) == 1).all())

    def _key(self, seed: int) -> str:
        ds = self.dataset
        text = json.dumps([LABELER_VERSION, ds.name, len(ds), int((ds.split == 0).sum()), ds.attribute_names,
                           ds.spec, seed, self.epochs])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def prepare(self, seed: int = 0) -> dict[str, float]:
        ds = self.dataset
        self.model = LabelerNet(tuple(ds.spec["input_shape"]), len(ds.attribute_names))
        key, cached = self._key(seed), False
        if self.path.is_file():
            tensors, meta = load_tensors(self.path, "labeler weights")
            if meta.get("key") == key:
                self.model.load_state_dict(tensors)
                cached = True
        if not cached:
            self._train(seed + SEED_OFFSET)
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            save_tensors(self.path, self.model.state_dict(), {"key": key})
        self.model.eval()
        test = ds.indices("test")
        test = test if len(test) else ds.indices("train")
        predicted = torch.cat([self.label(ds.fetch(test[i:i + 512])) for i in range(0, len(test), 512)])
        truth = ds.attributes[test]
        ok = (predicted == truth).all(dim=1) if self.exclusive else (predicted == truth).float().mean(dim=1)
        return {"labeler_test_accuracy": round(ok.float().mean().item(), 4), "labeler_cached": cached}

    def _train(self, seed: int) -> None:
        ds, model = self.dataset, self.model
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        train = ds.indices("train")
        steps = max(1, len(train) // self.batch_size)
        opt = torch.optim.Adam(model.parameters(), lr=self.lr)
        model.train()
        with self.progress.task("labeler", total=self.epochs * steps) if self.progress else contextlib.nullcontext() as bar:
            for _ in range(self.epochs):
                perm = train[torch.randperm(len(train), generator=gen)]
                for i in range(steps):
                    idx = perm[i * self.batch_size:(i + 1) * self.batch_size]
                    logits, y = model(ds.fetch(idx)), ds.attributes[idx].float()  # (B, A) each
                    loss = F.cross_entropy(logits, y.argmax(dim=1)) if self.exclusive else \
                        F.binary_cross_entropy_with_logits(logits, y)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    if bar is not None:
                        bar.advance(1, info=f"loss {loss.item():.3f}")

    def label(self, outputs: Tensor) -> Tensor:
        with torch.no_grad():
            logits = torch.cat([self.model(outputs[i:i + 512].float()) for i in range(0, len(outputs), 512)])
        if self.exclusive:
            return F.one_hot(logits.argmax(dim=1), logits.shape[1]).bool()  # (B, A)
        return logits > 0  # (B, A)

