"""`lctk train-vae` as a Python function: create (or resume) a run folder and train its backbone."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

import torch

from lctk import distributed
from lctk.config import to_dict
from lctk.errors import LctkError
from lctk.interfaces import Backbone, Dataset
from lctk.plugins import get_registries
from lctk.progress import Progress
from lctk.run import RunDir, load_dataset
from lctk.trainer import TrainSettings, VAETrainer

PICTURE_COUNT = 64


def write_pictures(run: RunDir, backbone: Backbone, dataset: Dataset, seed: int = 0) -> list[Path]:
    """Reconstructions of test examples beside their originals, and prior samples, via the modality's writer."""
    writer = get_registries().writer(dataset.modality)
    gen = torch.Generator().manual_seed(seed)
    test = dataset.indices("test")
    test = test if len(test) else dataset.indices("train")
    idx = test[torch.randperm(len(test), generator=gen)[:PICTURE_COUNT // 2]]
    device = next(backbone.parameters()).device
    was_training = backbone.training
    backbone.eval()
    with torch.inference_mode():
        x = dataset.fetch(idx).to(device)
        recon = backbone.reconstruct(x).cpu()
        samples = backbone.sample(PICTURE_COUNT, generator=None if device.type != "cpu" else gen).cpu()
    backbone.train(was_training)
    files = writer.write_pairs(x.cpu(), recon, run.path / f"reconstructions{writer.default_suffix}")
    files += writer.write_batch(samples, run.path / f"prior-samples{writer.default_suffix}")
    return files


def train_vae(out: str | Path, *, backbone: str | None = None, data: str | None = None, data_dir: str | Path | None = None,
              data_options: Mapping[str, str] | None = None, max_examples: int | None = None,
              settings: TrainSettings | None = None, overrides: Mapping[str, Any] | None = None,
              resume: bool = False, device: str = "auto", progress: Progress | None = None) -> RunDir:
    """Train a backbone on a dataset into run folder ``out`` and return it.

    ``overrides`` set backbone config fields (``latent_dim``, ``sigma_x``, ...). With ``resume``, continue the
    run in ``out`` from its checkpoint (``settings.epochs`` may extend it); a run folder that already exists
    is never overwritten otherwise.
    """
    run = RunDir(out)
    dist = distributed.setup(device)
    progress = progress or Progress(enabled=dist.is_main)
    settings = settings or TrainSettings()
    if resume:
        info = run.read()
        _refuse_changes(info, backbone, data, data_dir, data_options, max_examples, overrides)
        dataset = load_dataset(info["dataset"], progress)
        backbone_cls = get_registries().backbone(info["backbone"])
        config = backbone_cls.configure({}, info["backbone_config"])
    else:
        if run.path.exists() and any(run.path.iterdir()):
            raise LctkError(f"run folder {run.path} already exists; pass --resume to continue it or choose another --out")
        if not backbone or not data:
            raise LctkError("a new run needs --backbone and --data (see `lctk plugins` for what is installed)")
        backbone_cls = get_registries().backbone(backbone)
        entry = get_registries().dataset(data)
        spec = {"name": entry.name, "data_dir": str(data_dir) if data_dir else None, "options": dict(data_options or {}),
                "max_examples": max_examples, "seed": settings.seed}
        dataset = load_dataset(spec, progress)
        spec["modality"] = dataset.modality
        spec["spec"] = dataset.spec
        spec["attribute_names"] = dataset.attribute_names
        config = backbone_cls.configure(dataset.spec, overrides)
        info = {"backbone": backbone.lower(), "backbone_config": to_dict(config), "dataset": spec}
    info["training"] = dataclasses.asdict(settings)
    info["status"] = "training"
    torch.manual_seed(settings.seed)
    model = backbone_cls(config)
    if dist.is_main:
        run.path.mkdir(parents=True, exist_ok=True)
        run.write(info)
    distributed.barrier()

    def on_epoch_end(epoch: int, record: dict[str, Any]) -> None:
        info["history"] = trainer.history
        run.write(info)

    trainer = VAETrainer(model, dataset, settings, run.checkpoint_path, dist=dist, progress=progress,
                         on_epoch_end=on_epoch_end)
    try:
        trainer.train(resume=resume and run.checkpoint_path.exists())
    except KeyboardInterrupt:
        raise LctkError(f"interrupted at step {trainer.step}; continue with `lctk train-vae --out {run.path} --resume`") from None
    if dist.is_main:
        run.save_backbone(model)
        info.update(status="trained", history=trainer.history)
        run.write(info)
        write_pictures(run, model, dataset, settings.seed)
    distributed.barrier()
    return run


def _refuse_changes(info, backbone, data, data_dir, data_options, max_examples, overrides) -> None:
    """On --resume, flags that would change the run are refused rather than silently ignored."""
    ds = info["dataset"]
    checks = [("--backbone", backbone, info["backbone"]), ("--data", data, ds["name"]),
              ("--data-dir", str(data_dir) if data_dir else None, ds.get("data_dir")),
              ("--max-examples", max_examples, ds.get("max_examples"))]
    for key, value in (overrides or {}).items():
        checks.append((f"--{key.replace('_', '-')}", value, info["backbone_config"].get(key)))
    for flag, given, stored in checks:
        if given is not None and str(given).lower() != str(stored).lower():
            raise LctkError(f"{flag} {given} differs from the run's {stored}; a resumed run keeps its settings")
    if data_options and dict(data_options) != ds.get("options", {}):
        raise LctkError("--data-option differs from the run's; a resumed run keeps its settings")
