"""What the explorer does with one run, without any web code: sample, edit, list examples, describe the run.

One `ExplorerSession` holds the run's backbone, constraints and (once an edit asks for it) dataset. It only
reads the run folder. Requests arrive as plain dicts (decoded JSON); every bad value is an `LctkError` with a
one-line message, which the web layer turns into a 400 answer.
"""

from __future__ import annotations

import io
import tempfile
import threading
import zipfile
from pathlib import Path
from typing import Any, Mapping

import torch

from lctk.engine.losses import sigma_weighted_shift
from lctk.engine.optimize import TRANSFORM_SETTINGS, OptimizeSettings
from lctk.engine.method import sampling_methods
from lctk.engine.sampling import Sampler
from lctk.util.errors import LctkError
from lctk.util.io import load_json
from lctk.util.media import Media
from lctk.plugins import get_registries
from lctk.serve.params import Params

#: Most outputs one request may ask for (the page asks for 16).
MAX_SAMPLES = 64
#: Most examples one strip may show.
MAX_STRIP = 32
#: Most optimisation steps an edit may ask for.
MAX_STEPS = 2000
#: Largest uploaded file, in bytes.
MAX_UPLOAD = 2 * 1024 * 1024


def media_json(media: Media) -> dict[str, Any]:
    """A `Media` as JSON: type, file name and the bytes as base64 (for a ``data:`` URL)."""
    import base64

    return {"mime": media.mime, "name": media.name, "inline": media.inline,
            "data": base64.b64encode(media.data).decode("ascii")}


class ExplorerSession:
    """The model side of `lctk serve` for one run folder; thread-safe (one request at a time uses the model)."""

    def __init__(self, run: str | Path):
        self.sampler = Sampler(run)
        self.run = self.sampler.run
        self.modality = self.run.modality
        self.writer = get_registries().writer(self.modality)
        self.lock = threading.Lock()
        self._dataset = None

    def close(self) -> None:
        """Release the latent store."""
        self.sampler.close()

    # -- describing the run --------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """The run as the page shows it: backbone, dataset, constraints (targets, metrics), methods, last
        evaluation, and what the page may offer (attributes, rules, upload suffixes)."""
        info = self.sampler.record.to_dict()
        dataset = {k: v for k, v in info["dataset"].items() if k not in ("data_dir",)}
        constraints = []
        for c in self.sampler.constraints.all():
            metrics_path = self.sampler.constraints.folder(c.name) / "metrics.json"
            metrics = load_json(metrics_path, "constraint metrics") if metrics_path.is_file() else {}
            constraints.append({"name": c.name, "targets": [t.name for t in c.targets_full],
                                "kinds": [t.kind for t in c.targets_full], "metrics": metrics})
        evaluation = load_json(self.run.metrics_path, "evaluation") if self.run.metrics_path.is_file() else None
        attributes = [a for c in constraints for a, k in zip(c["targets"], c["kinds"]) if k == "attribute"]
        rules = [a for c in constraints for a, k in zip(c["targets"], c["kinds"]) if k == "rule"]
        continuous = [{"name": t.name, "low": t.low, "high": t.high} for t in self.sampler.constrained_continuous()]
        return {"run": self.run.path.name, "modality": self.modality, "backbone": info["backbone"],
                "backbone_config": info["backbone_config"], "dataset": dataset, "constraints": constraints,
                "attributes": sorted(set(attributes), key=attributes.index), "rules": sorted(set(rules), key=rules.index),
                "continuous": continuous,
                "methods": sampling_methods(), "evaluation": evaluation, "test_examples": self.test_count(),
                "upload_suffixes": list(self.writer.input_suffixes), "limits": {"n": MAX_SAMPLES, "upload": MAX_UPLOAD}}

    def test_count(self) -> int | None:
        """How many test examples the run's latent store lists (None without a store)."""
        if not self.run.latents_path.is_file():
            return None
        return int((self.sampler.store.split == 1).sum())

    # -- sampling ------------------------------------------------------------------------------------------
    def sample_outputs(self, request: Mapping[str, Any]) -> tuple[torch.Tensor, str]:
        """Decoded outputs for a sample request and a label for them."""
        p = Params(request)
        mode = p.choice("mode", ("constrained", "prior", "realism"), "constrained")
        n = p.integer("n", 16, 1, MAX_SAMPLES)
        seed = p.integer("seed", 0, 0, 2**31 - 1)
        method = p.choice("method", tuple(sampling_methods()), "actor")
        attrs, rules = p.strings("attrs"), p.strings("rules")
        p.done()
        with self.lock:
            if mode == "prior":
                z = self.sampler.backbone.prior_sample(n, torch.Generator().manual_seed(seed))
                return self.sampler.decode(z), "prior"
            wants = self.sampler.wants(attrs, rules) if mode == "constrained" else []
            z = self.sampler.latents(wants, n, method=method, seed=seed)[1]
            label = "+".join([*attrs, *rules]) if wants else "realism"
            return self.sampler.decode(z), f"{label}-{method}"

    def sample(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Samples as media for the page: ``{"label", "items": [[media, ...], ...]}``."""
        outputs, label = self.sample_outputs(request)
        return {"label": label, "items": [[media_json(m) for m in item] for item in self.writer.render(outputs)]}

    def download(self, request: Mapping[str, Any]) -> tuple[bytes, str]:
        """The samples of a request as a zip of the files the modality's writer writes, and its file name."""
        outputs, label = self.sample_outputs(request)
        safe = "".join(ch if ch.isalnum() or ch in "+-_=." else "_" for ch in label)[:80] or "samples"
        buffer = io.BytesIO()
        with tempfile.TemporaryDirectory(prefix="lctk-serve-") as tmp:
            files = self.writer.write_batch(outputs, Path(tmp) / f"{safe}{self.writer.default_suffix}")
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                for f in files:
                    if f.is_file():
                        archive.write(f, f.relative_to(tmp).as_posix())
        return buffer.getvalue(), f"{safe}.zip"

    # -- examples and edits --------------------------------------------------------------------------------
    def dataset(self):
        """The run's dataset, loaded on first use."""
        if self._dataset is None:
            self._dataset = self.run.load_dataset()
        return self._dataset

    def test_indices(self) -> torch.Tensor:
        """``(M,)`` dataset indices of the test examples."""
        indices = self.dataset().indices("test")
        if len(indices) == 0:
            raise LctkError("the run's dataset has no test examples to edit")
        return indices

    def examples(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """A strip of test examples (reconstructed by the backbone) with their test indices: ``start``..
        or, with ``random``, drawn with ``seed``."""
        p = Params(request)
        count = p.integer("count", 8, 1, MAX_STRIP)
        seed = p.integer("seed", 0, 0, 2**31 - 1)
        random = p.flag("random", False)
        with self.lock:
            test = self.test_indices()
            start = p.integer("start", 0, 0, len(test) - 1)
            p.done()
            if random:
                picked = torch.randperm(len(test), generator=torch.Generator().manual_seed(seed))[:count]
            else:
                picked = torch.arange(start, min(start + count, len(test)))
            x = self.dataset().fetch(test[picked])
            outputs = self.sampler.decode(self.sampler.backbone.encode(x)[0])
        media = self.writer.render(outputs)
        return {"items": [{"test_index": int(i), "media": [media_json(m) for m in item]}
                          for i, item in zip(picked.tolist(), media)]}

    def edit(self, request: Mapping[str, Any], upload: tuple[bytes, str] | None = None) -> dict[str, Any]:
        """An identity-preserving edit of a test example (``test_index``) or of an uploaded file: before and
        after as media, and the sigma-weighted latent shift. ``strength`` scales how far the edit may move
        (it divides the distance weight)."""
        p = Params(request)
        attrs, rules = p.strings("attrs"), p.strings("rules")
        strength = p.number("strength", 1.0, 0.01, 100.0)
        steps = p.integer("steps", TRANSFORM_SETTINGS.steps, 1, MAX_STEPS)
        seed = p.integer("seed", 0, 0, 2**31 - 1)
        index = None if upload else p.integer("test_index", 0, 0, 2**31 - 1)
        p.done()
        settings = OptimizeSettings(steps=steps, lr=TRANSFORM_SETTINGS.lr, w_dist=TRANSFORM_SETTINGS.w_dist / strength)
        with self.lock:
            x = self.read_upload(*upload) if upload else self.test_example(index)
            wants = self.sampler.wants(attrs, rules)
            z0, z1 = self.sampler.transform_latents(x, wants, seed=seed, settings=settings)
            before, after = self.sampler.decode(z0), self.sampler.decode(z1)
            shift = None
            if self.run.latents_path.is_file():
                shift = float(sigma_weighted_shift(z1, z0, self.sampler.store.sigma_bar()).mean())
        rendered = self.writer.render(torch.cat([before, after]))
        return {"before": [media_json(m) for m in rendered[0]], "after": [media_json(m) for m in rendered[1]],
                "shift": shift, "test_index": index}

    def test_example(self, index: int) -> torch.Tensor:
        """The test example ``index`` (counted within the test part) as a model-ready batch of one."""
        test = self.test_indices()
        if index >= len(test):
            raise LctkError(f"test_index {index} is out of range; the run has {len(test)} test examples (0..{len(test) - 1})")
        return self.dataset().fetch(test[index:index + 1])

    def read_upload(self, data: bytes, suffix: str) -> torch.Tensor:
        """An uploaded file read by the modality's writer from a private temporary file (never a path the
        request names: only the suffix comes from the request, checked against the writer's)."""
        suffix = suffix.lower()
        if suffix not in self.writer.input_suffixes:
            known = ", ".join(self.writer.input_suffixes) or "none"
            raise LctkError(f"cannot read {suffix or 'files without a suffix'} here; this run reads {known}")
        if not data:
            raise LctkError("the uploaded file is empty")
        with tempfile.TemporaryDirectory(prefix="lctk-upload-") as tmp:
            path = Path(tmp) / f"upload{suffix}"
            path.write_bytes(data)
            return self.writer.read_input(path, self.sampler.record.dataset.spec)
