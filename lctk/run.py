"""The run folder, the unit users pass around: backbone config and weights, latents, constraints, pictures.

Layout::

    RUN/run.json                    the run record (`lctk.record.RunRecord`): backbone name, config and providing
                                    distribution, dataset request, training settings and history; for an
                                    imported model, ``source``: its format, path and file hashes
    RUN/backbone.safetensors        final backbone weights (none for an imported model: its own files are read)
    RUN/checkpoint.safetensors      training state for --resume (weights, optimizer, RNG, step)
    RUN/latents.h5                  posterior mu/sigma per example, attributes, split, backbone fingerprint
    RUN/constraints/NAME/           one folder per constraint (constraint.json, weights, metrics)
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any, Mapping

import torch

from lctk import FORMAT_VERSION, __version__
from lctk.util.config import check_parameters
from lctk.util.errors import LctkError
from lctk.interfaces import Backbone, DataRequest, Dataset
from lctk.util.io import is_temp, load_json, load_tensors, save_json, save_tensors
from lctk.plugins import get_registries
from lctk.record import RECORD_VERSION, DatasetRecord, Provider, RunRecord


def fingerprint(backbone: torch.nn.Module) -> str:
    """A short hex digest of the backbone's weights (names, shapes, bytes); changes when any weight does."""
    h = hashlib.sha256()
    for name, value in sorted(backbone.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(value.shape)).encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def load_dataset(spec: DatasetRecord | Mapping[str, Any], progress=None) -> Dataset:
    """Load a dataset from a `DatasetRecord` (or a run.json-style ``{"name", "data_dir", "options",
    "max_examples", "seed"}``)."""
    if not isinstance(spec, DatasetRecord):
        spec = DatasetRecord(**{k: v for k, v in spec.items() if k in DatasetRecord.__dataclass_fields__})
    entry = get_registries().dataset(spec.name)
    request = DataRequest(data_dir=Path(spec.data_dir) if spec.data_dir else None, options=dict(spec.options or {}),
                          max_examples=spec.max_examples, seed=int(spec.seed), progress=progress)
    dataset = entry.value(request)
    if len(dataset) == 0:
        raise LctkError(f"dataset {spec.name} has no examples; check --data-dir")
    if len(dataset.indices("train")) == 0:
        raise LctkError(f"dataset {spec.name} has no training examples; check its split")
    check_attribute_names(spec.name, [*dataset.attribute_names, *dataset.continuous_names])
    return dataset


def check_attribute_names(dataset: str, names: list[str]) -> None:
    """Refuse two attributes (binary or continuous) that are one name once normalised (``Big_Lips`` and
    ``big lips``): a target could not say which it means."""
    from lctk.datasets import attribute_name

    seen: dict[str, str] = {}
    for name in names:
        key = attribute_name(name)
        if key in seen:
            both = f"{key!r}" if seen[key] == name else f"{seen[key]!r} and {name!r}, both {key!r}"
            raise LctkError(f"dataset {dataset} names two attributes {both} (once normalised); rename one of them in "
                            "the data")
        seen[key] = name


def dataset_record(data: str, data_dir: str | Path | None = None, options: Mapping[str, str] | None = None,
                   max_examples: int | None = None, seed: int = 0, progress=None) -> tuple[Dataset, DatasetRecord]:
    """Load dataset ``data`` as the user asked (``--data-dir``, ``--data-option``, ``--max-examples``) and return
    it with its record (the request plus modality, spec and attribute names)."""
    spec = DatasetRecord(get_registries().dataset(data).name, str(data_dir) if data_dir else None,
                         dict(options or {}), max_examples, seed)
    dataset = load_dataset(spec, progress)
    spec.modality, spec.spec, spec.attribute_names = dataset.modality, dataset.spec, dataset.attribute_names
    return dataset, spec


def check_new_folder(path: Path, hint: str = "choose another --out") -> None:
    """Refuse to make a new run in a folder that holds anything (leftover temporary files aside)."""
    if path.exists():
        if not path.is_dir():
            raise LctkError(f"--out {path} is a file; choose a folder for the run")
        if any(not is_temp(p) for p in path.iterdir()):
            raise LctkError(f"run folder {path} already exists; {hint}")


def state_dict_problem(e: RuntimeError) -> str:
    """The telling line of a ``load_state_dict`` error (the first one only says "Error(s) in loading")."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    telling = [line for line in lines[1:] if line.startswith(("size mismatch", "Missing key", "Unexpected key"))]
    text = (telling or lines or [type(e).__name__])[0]
    return text if len(text) <= 200 else text[:197] + "..."


def _in_run(name: str, doc: str) -> property:
    """A property: the path of ``name`` in the run folder."""
    return property(lambda self: self.path / name, doc=doc)


class RunDir:
    """A run folder on disk: its paths, its record (run.json, read once and cached), and loading the backbone
    and dataset the record names."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._record: RunRecord | None = None

    # -- paths ---------------------------------------------------------------------------------------------
    config_path = _in_run("run.json", "The run record.")
    weights_path = _in_run("backbone.safetensors", "The trained backbone's weights.")
    checkpoint_path = _in_run("checkpoint.safetensors", "Training state for --resume.")
    latents_path = _in_run("latents.h5", "The latent store.")
    constraints_dir = _in_run("constraints", "One folder per constraint.")
    metrics_path = _in_run("metrics.json", "What `lctk evaluate` measured.")

    # -- the record ----------------------------------------------------------------------------------------
    @property
    def record(self) -> RunRecord:
        """The run record, read from run.json on first use and validated; one-line errors when missing,
        damaged or foreign."""
        if self._record is None:
            self._record = self._read()
        return self._record

    def read(self) -> dict[str, Any]:
        """run.json as a plain dict, read again from disk and validated (see `record`)."""
        self._record = self._read()
        return self._record.to_dict()

    def _read(self) -> RunRecord:
        if not self.path.is_dir():
            raise LctkError(f"run folder {self.path} does not exist; create it with `lctk train-vae --out {self.path}`")
        if not self.config_path.is_file():
            raise LctkError(f"{self.path} is not an lctk run (no run.json); create one with `lctk train-vae --out {self.path}`")
        info = load_json(self.config_path, "run config")
        version = info.get("format_version")
        if version != FORMAT_VERSION:
            newer = isinstance(version, int) and version > FORMAT_VERSION
            raise LctkError(f"run {self.path} has format version {version} from lctk {info.get('lctk_version', '?')}, "
                            f"this lctk {__version__} reads version {FORMAT_VERSION}; "
                            + ("upgrade lctk" if newer else "re-train it with this lctk or use the version that wrote it"))
        return RunRecord.from_dict(info, f"run config {self.config_path}")

    def write(self, record: RunRecord) -> None:
        """Atomically (re)write run.json from ``record`` (stamped with this lctk's versions); it becomes the
        cached record."""
        record.lctk_version, record.format_version, record.record_version = __version__, FORMAT_VERSION, RECORD_VERSION
        save_json(self.config_path, record.to_dict())
        self._record = record

    # -- backbone ------------------------------------------------------------------------------------------
    def backbone_class(self) -> type[Backbone]:
        """The run's backbone class, refused when another distribution than the one that trained the run
        provides it now."""
        rec = self.record
        entry = get_registries().entry("backbones", rec.backbone)
        check_provider(entry, rec.backbone_provider, f"run {self.path}")
        return entry.value

    def build_backbone(self) -> Backbone:
        """A backbone with the run's class and config and freshly initialised weights."""
        cls = self.backbone_class()
        config = cls.configure({}, self.record.backbone_config)
        check_parameters(lambda: cls(config), f"backbone of {self.config_path}")
        return cls(config)

    def load_backbone(self) -> Backbone:
        """The trained (or imported) backbone in eval mode; a one-line error when it has not finished training,
        or when the files of an imported model changed since the import."""
        if self.record.source is not None:
            from lctk.importing import load_source

            return _frozen(load_source(dataclasses.asdict(self.record.source), self.record.dataset.spec))
        if not self.weights_path.is_file():
            raise LctkError(f"run {self.path} has no trained backbone yet; finish it with "
                            f"`lctk train-vae --out {self.path} --resume`")
        backbone = self.build_backbone()
        tensors, _ = load_tensors(self.weights_path, what="backbone weights")
        try:
            backbone.load_state_dict(tensors)
        except RuntimeError as e:
            raise LctkError(f"backbone weights {self.weights_path} do not fit the config in run.json "
                            f"({state_dict_problem(e)})") from None
        return _frozen(backbone)

    def save_backbone(self, backbone: Backbone) -> None:
        """Atomically write the backbone weights."""
        save_tensors(self.weights_path, backbone.state_dict(), {"fingerprint": fingerprint(backbone)})

    def load_dataset(self, progress=None) -> Dataset:
        """The dataset the run was trained on, as recorded in run.json."""
        return load_dataset(self.record.dataset, progress)

    @property
    def modality(self) -> str:
        """The modality of the run's data (selects writer and evaluator)."""
        return self.record.modality


def _frozen(backbone: Backbone) -> Backbone:
    """``backbone`` in eval mode with gradients off: constraints never change it."""
    backbone.eval()
    for p in backbone.parameters():
        p.requires_grad_(False)
    return backbone


def provider_of(entry) -> Provider:
    """The distribution and version behind a registry entry, for the run record."""
    return Provider(entry.plugin, entry.version or "")


def check_provider(entry, recorded: Provider | None, what: str) -> None:
    """Refuse when ``entry`` comes from another distribution than ``recorded`` (runs from before the provider
    was recorded pass)."""
    if recorded is None or recorded.distribution == entry.plugin:
        return
    remedy = (f"uninstall {entry.plugin}, or list the distributions to load without it in LCTK_PLUGINS"
              if recorded.distribution in entry.also else f"install {recorded.distribution} again")
    raise LctkError(f"{what} was trained with backbone {entry.name!r} from {recorded.distribution} "
                    f"{recorded.version}, but {entry.name!r} now comes from {entry.plugin}; {remedy}")
