"""The Python API, mirroring the CLI one function per command::

    from lctk import api
    run = api.train_vae("runs/fm", backbone="conv", data="fashion-mnist", epochs=8)
    # or: run = api.import_backbone("pythae-folder", "runs/fm", data="fashion-mnist")
    api.encode(run)
    api.add_constraint(run, attrs=["sandal"])
    images = api.sample(run, attrs=["sandal"], n=16)            # (16, 1, 28, 28) tensor; out= writes a file
    before, after = api.transform(run, indices=[60001], attrs=["sandal"])
    metrics = api.evaluate(run)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from lctk.encode import encode_run
from lctk.engine.add import add_constraint
from lctk.engine.evaluate import evaluate_run
from lctk.engine.optimize import OptimizeSettings
from lctk.engine.sampling import Sampler
from lctk.errors import LctkError
from lctk.importing import import_backbone as _import_backbone
from lctk.plugins import get_registries
from lctk.run import RunDir
from lctk.train_vae import train_vae as _train_vae

__all__ = ["train_vae", "import_backbone", "encode", "add_constraint", "sample", "transform", "evaluate", "RunDir"]


def train_vae(out: str | Path, *, backbone: str | None = None, data: str | None = None, resume: bool = False,
              overrides: Mapping[str, Any] | None = None, **settings: Any) -> RunDir:
    """`lctk train-vae`: ``settings`` are training settings (epochs, batch_size, lr, seed, checkpoint_every)
    plus the dataset arguments data_dir, data_options and max_examples; ``overrides`` backbone config fields."""
    data_args = {k: settings.pop(k) for k in ("data_dir", "data_options", "max_examples", "device") if k in settings}
    return _train_vae(out, backbone=backbone, data=data, resume=resume, overrides=overrides, settings=settings,
                      **data_args)


def import_backbone(path: str | Path, out: str | Path, *, data: str, fmt: str | None = None, **dataset: Any) -> RunDir:
    """`lctk import-backbone`: a run folder from a model trained elsewhere (``dataset``: data_dir, data_options,
    max_examples, seed), without training it or changing its files."""
    return _import_backbone(path, out, data=data, fmt=fmt, **dataset)


def encode(run: RunDir | str | Path, batch_size: int = 1024, force: bool = False, device: str = "auto",
           prefetch: int = 2) -> Path:
    """`lctk encode`: write ``RUN/latents.h5`` and return its path (under torchrun: each process its share)."""
    return encode_run(_run(run), batch_size=batch_size, force=force, device=device, prefetch=prefetch)


def sample(run: RunDir | str | Path, attrs: Sequence[str] = (), rules: Sequence[str] = (), n: int = 64,
           method: str = "actor", seed: int = 0, prior: bool = False, out: str | Path | None = None) -> torch.Tensor:
    """`lctk sample`: ``n`` decoded outputs satisfying ``attrs``/``rules`` (realism only when none; raw prior
    draws with ``prior``); also written with the modality's writer when ``out`` is given. A sweep among
    ``attrs`` (``density=4..16``) gives ``n`` outputs per value, in order (one row per value when written)."""
    sampler = Sampler(_run(run))
    try:
        labels = None
        sweep = None if prior else sampler.sweep(attrs, rules)
        if prior:
            outputs = sampler.decode(sampler.backbone.prior_sample(n, torch.Generator().manual_seed(seed)))
        elif sweep:
            outputs, labels = sampler.rows(sweep, n, method=method, seed=seed)
        else:
            outputs = sampler.decode(sampler.latents(sampler.wants(attrs, rules), n, method=method, seed=seed)[1])
        if out is not None:
            get_registries().writer(sampler.run.modality(sampler.info)).write_batch(
                outputs, Path(out), columns=n if labels else None, labels=labels)
        return outputs
    finally:
        sampler.close()


def transform(run: RunDir | str | Path, x: torch.Tensor | None = None, indices: Sequence[int] = (),
              attrs: Sequence[str] = (), rules: Sequence[str] = (), settings: OptimizeSettings | None = None,
              out: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """`lctk transform`: (reconstructions, edited outputs) of examples ``x`` (or dataset ``indices``)."""
    sampler = Sampler(_run(run))
    try:
        if x is None:
            if not indices:
                raise LctkError("transform needs examples x or dataset indices")
            x = sampler.run.load_dataset(sampler.info).fetch(torch.tensor(list(indices)))
        z0, z1 = sampler.transform_latents(x, sampler.wants(attrs, rules), settings=settings)
        before, after = sampler.decode(z0), sampler.decode(z1)
        if out is not None:
            get_registries().writer(sampler.run.modality(sampler.info)).write_pairs(before, after, Path(out))
        return before, after
    finally:
        sampler.close()


def evaluate(run: RunDir | str | Path, n: int = 2000, seed: int = 0) -> dict[str, Any]:
    """`lctk evaluate`: independent measures, also written to ``RUN/metrics.json``."""
    return evaluate_run(_run(run), n=n, seed=seed)


def _run(run: RunDir | str | Path) -> RunDir:
    return run if isinstance(run, RunDir) else RunDir(run)
