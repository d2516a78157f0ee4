"""`lctk train-vae` as a Python function: create (or resume) a run folder and train its backbone, in one
process or in each of the processes torchrun starts (see docs/distributed.md)."""

from __future__ import annotations

import dataclasses
import gc
import json
from pathlib import Path
from typing import Any, Mapping

import torch

from lctk.util import distributed
from lctk.util.config import check_parameters, check_values, to_dict
from lctk.util.distributed import DistInfo
from lctk.util.errors import LctkError, describe
from lctk.interfaces import Backbone, Dataset
from lctk.util.io import sweep_stale_temps
from lctk.util.outputs import check_writable
from lctk.plugins import get_registries
from lctk.util.progress import Progress
from lctk.record import RunRecord
from lctk.run import RunDir, check_new_folder, check_provider, dataset_record, load_dataset, provider_of
from lctk.trainer import TrainSettings, VAETrainer

PICTURE_COUNT = 64


def write_pictures(run: RunDir, backbone: Backbone, dataset: Dataset, seed: int = 0) -> list[Path]:
    """Reconstructions of test examples beside their originals (when the backbone has an encoder), and prior
    samples, via the modality's writer."""
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
        recon = backbone.reconstruct(x).cpu() if backbone.has_encoder else None
        samples = backbone.sample(PICTURE_COUNT, generator=None if device.type != "cpu" else gen).cpu()
    backbone.train(was_training)
    files = [] if recon is None else writer.write_pairs(x.cpu(), recon, run.path / f"reconstructions{writer.default_suffix}")
    files += writer.write_batch(samples, run.path / f"prior-samples{writer.default_suffix}")
    return files


def train_vae(out: str | Path, *, backbone: str | None = None, data: str | None = None, data_dir: str | Path | None = None,
              data_options: Mapping[str, str] | None = None, max_examples: int | None = None,
              settings: TrainSettings | Mapping[str, Any] | None = None, overrides: Mapping[str, Any] | None = None,
              resume: bool = False, device: str = "auto", progress: Progress | None = None) -> RunDir:
    """Train a backbone on a dataset into run folder ``out`` and return it.

    ``settings``: a full `TrainSettings`, or only the fields to change (a mapping) on top of the defaults or,
    with ``resume``, of the run's recorded settings. ``overrides`` set backbone config fields (``latent_dim``,
    ``sigma_x``, ...). With ``resume``, continue the run in ``out`` from its checkpoint (``epochs`` may extend
    it); a run folder that already exists is never overwritten otherwise. Under torchrun every process calls
    this; rank 0 alone reads and writes ``out``.
    """
    run = RunDir(out)
    dist = distributed.setup(device)
    try:
        result = _train_vae(run, dist, backbone, data, data_dir, data_options, max_examples,
                            settings, overrides, resume, progress or Progress(enabled=dist.is_main))
    except BaseException:
        if dist.owns_group:
            gc.collect()  # what still refers to the process group goes first
            distributed.teardown(synchronise=False)
        raise
    if dist.owns_group:
        gc.collect()
        distributed.teardown()
    return result


def _settings(given: TrainSettings | Mapping[str, Any] | None, stored: Any) -> TrainSettings:
    """``given`` if complete, else the defaults updated by ``stored`` (a run's record, or the backbone's
    training defaults) and then ``given``."""
    if isinstance(given, TrainSettings):
        return given
    fields = {f.name for f in dataclasses.fields(TrainSettings)}
    unknown = sorted(set(given or {}) - fields)
    if unknown:
        raise LctkError(f"unknown training setting(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}")
    values = {k: v for k, v in (stored if isinstance(stored, dict) else {}).items() if k in fields}
    values.update(given or {})
    values = check_values(TrainSettings, values, "training setting")
    return TrainSettings(**{**dataclasses.asdict(TrainSettings()), **values})


def _train_vae(run: RunDir, dist: DistInfo, backbone, data, data_dir, data_options, max_examples,
               given, overrides, resume: bool, progress: Progress) -> RunDir:
    if resume:
        def read_run() -> bytes:
            record = run.record  # validated before anything is written
            if record.source is not None:
                raise LctkError(f"run {run.path} was imported from {record.source.path} by `lctk import-backbone`; "
                                "lctk does not train imported models, so there is nothing to resume")
            _refuse_changes(record, backbone, data, data_dir, data_options, max_examples, overrides)
            return json.dumps({"record": record.to_dict(), "has_checkpoint": run.checkpoint_path.is_file()}).encode()

        shared = json.loads(distributed.share_from_main(read_run, "reading the run"))
        record, has_checkpoint = RunRecord.from_dict(shared["record"]), shared["has_checkpoint"]
        settings = _settings(given, record.training)

        def prepare():
            entry = get_registries().entry("backbones", record.backbone)
            check_provider(entry, record.backbone_provider, f"run {run.path}")
            dataset = load_dataset(record.dataset, progress)
            return dataset, entry.value, entry.value.configure({}, record.backbone_config)

        dataset, backbone_cls, config = distributed.main_first(prepare, "loading the dataset")
    else:
        # the backbone's own training defaults (e.g. a batch size it learns best with) apply unless given
        defaults = get_registries().backbone(backbone).training_defaults if backbone else None
        if backbone:  # the ranges of the backbone settings given, before the dataset is loaded
            backbone_cls = get_registries().backbone(backbone)
            check_values(backbone_cls.config_class, overrides or {}, f"{backbone_cls.__name__} config")
        settings, has_checkpoint = _settings(given, defaults), False
        distributed.share_from_main(lambda: _check_new(run, backbone, data), "checking the run folder")

        def prepare():
            entry = get_registries().entry("backbones", backbone)
            dataset, spec = dataset_record(data, data_dir, data_options, max_examples, settings.seed, progress)
            config = entry.value.configure(dataset.spec, overrides)
            record = RunRecord(entry.name, to_dict(config), spec, backbone_provider=provider_of(entry))
            return dataset, entry.value, config, record

        dataset, backbone_cls, config, record = distributed.main_first(prepare, "loading the dataset")
    record.training = dataclasses.asdict(settings)
    record.status = "training"
    check_parameters(lambda: backbone_cls(config), f"backbone {record.backbone}")
    torch.manual_seed(settings.seed)
    model = backbone_cls(config)
    if not resume:  # before the run folder exists: a backbone that cannot take this data leaves nothing behind
        check_fits(model, dataset, record)

    def on_epoch_end(epoch: int, last: dict[str, Any]) -> None:
        record.history = list(trainer.history)
        run.write(record)

    trainer = VAETrainer(model, dataset, settings, run.checkpoint_path, dist=dist, progress=progress,
                         on_epoch_end=on_epoch_end)

    if has_checkpoint:  # before run.json changes: a checkpoint that cannot be read leaves the run as it was
        trainer.restore()

    def start() -> bytes:
        run.path.mkdir(parents=True, exist_ok=True)
        sweep_stale_temps(run.path)
        run.write(record)
        return b""

    distributed.share_from_main(start, "writing run.json")
    try:
        trainer.train()
    except KeyboardInterrupt:
        raise distributed.everywhere(LctkError(f"interrupted at step {trainer.step}; continue with "
                                               f"`lctk train-vae --out {run.path} --resume`")) from None
    finally:
        trainer.close()

    def finish() -> bytes:
        run.save_backbone(model)
        record.status, record.history = "trained", list(trainer.history)
        run.write(record)
        write_pictures(run, model, dataset, settings.seed)
        return b""

    distributed.share_from_main(finish, "writing the trained backbone")
    return run


def check_fits(model: Backbone, dataset: Dataset, record: RunRecord) -> None:
    """Refuse, in one line, a backbone that cannot compute its loss on two of the dataset's examples."""
    try:
        with torch.no_grad():
            model.elbo_terms(dataset.fetch(dataset.indices("train")[:2]), generator=torch.Generator().manual_seed(0))
    except LctkError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure here means the two do not fit
        raise distributed.everywhere(LctkError(
            f"backbone {record.backbone} cannot train on dataset {record.dataset.name} (modality "
            f"{record.dataset.modality or '?'}, spec {json.dumps(record.dataset.spec)}): {describe(e)}; choose a "
            "backbone made for this data (see `lctk plugins --details`)")) from None


def _check_new(run: RunDir, backbone: str | None, data: str | None) -> bytes:
    """Refuse to start a new run in a folder that holds anything (leftover temporary files aside)."""
    check_new_folder(run.path, "pass --resume to continue it or choose another --out")
    check_writable(run.path, f"--out {run.path}")
    if not backbone or not data:
        raise LctkError("a new run needs --backbone and --data (see `lctk plugins` for what is installed)")
    return b""


def _refuse_changes(record: RunRecord, backbone, data, data_dir, data_options, max_examples, overrides) -> None:
    """On --resume, flags that would change the run are refused rather than silently ignored."""
    ds = record.dataset
    checks = [("--backbone", backbone, record.backbone), ("--data", data, ds.name),
              ("--data-dir", str(data_dir) if data_dir else None, ds.data_dir),
              ("--max-examples", max_examples, ds.max_examples)]
    for key, value in (overrides or {}).items():
        checks.append((f"--{key.replace('_', '-')}", value, record.backbone_config.get(key)))
    for flag, given, stored in checks:
        if given is not None and str(given).lower() != str(stored).lower():
            raise LctkError(f"{flag} {given} differs from the run's {stored}; a resumed run keeps its settings")
    if data_options and dict(data_options) != ds.options:
        raise LctkError("--data-option differs from the run's; a resumed run keeps its settings")
