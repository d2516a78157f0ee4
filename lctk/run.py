"""The run folder, the unit users pass around: backbone config and weights, latents, constraints, pictures.

Layout::

    RUN/run.json                    backbone name + config, dataset request, training settings and history;
                                    for an imported model, ``source``: its format, path and file hashes
    RUN/backbone.safetensors        final backbone weights (none for an imported model: its own files are read)
    RUN/checkpoint.safetensors      training state for --resume (weights, optimizer, RNG, step)
    RUN/latents.h5                  posterior mu/sigma per example, attributes, split, backbone fingerprint
    RUN/constraints/NAME/           one folder per constraint (constraint.json, weights, metrics)
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from lctk import FORMAT_VERSION, __version__
from lctk.config import check_parameters
from lctk.errors import LctkError
from lctk.interfaces import Backbone, Dataset
from lctk.io import is_temp, load_json, load_tensors, save_json, save_tensors
from lctk.plugins import DataRequest, get_registries


def fingerprint(backbone: torch.nn.Module) -> str:
    """A short hex digest of the backbone's weights (names, shapes, bytes); changes when any weight does."""
    h = hashlib.sha256()
    for name, value in sorted(backbone.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(value.shape)).encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def load_dataset(spec: dict[str, Any], progress=None) -> Dataset:
    """Load a dataset from a run.json-style ``{"name", "data_dir", "options", "max_examples", "seed"}``."""
    entry = get_registries().dataset(spec["name"])
    request = DataRequest(data_dir=Path(spec["data_dir"]) if spec.get("data_dir") else None,
                          options=dict(spec.get("options") or {}), max_examples=spec.get("max_examples"),
                          seed=int(spec.get("seed", 0)), progress=progress)
    dataset = entry.value(request)
    if len(dataset) == 0:
        raise LctkError(f"dataset {spec['name']} has no examples; check --data-dir")
    if len(dataset.indices("train")) == 0:
        raise LctkError(f"dataset {spec['name']} has no training examples; check its split")
    return dataset


def dataset_record(data: str, data_dir: str | Path | None = None, options: dict[str, str] | None = None,
                   max_examples: int | None = None, seed: int = 0, progress=None) -> tuple[Dataset, dict[str, Any]]:
    """Load dataset ``data`` as the user asked (``--data-dir``, ``--data-option``, ``--max-examples``) and return
    it with its run.json record (the request plus modality, spec and attribute names)."""
    entry = get_registries().dataset(data)
    spec = {"name": entry.name, "data_dir": str(data_dir) if data_dir else None, "options": dict(options or {}),
            "max_examples": max_examples, "seed": seed}
    dataset = load_dataset(spec, progress)
    spec.update(modality=dataset.modality, spec=dataset.spec, attribute_names=dataset.attribute_names)
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


class RunDir:
    """A run folder on disk. Paths, run.json, and loading the backbone and dataset it names."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    # -- paths ---------------------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / "run.json"

    @property
    def weights_path(self) -> Path:
        return self.path / "backbone.safetensors"

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoint.safetensors"

    @property
    def latents_path(self) -> Path:
        return self.path / "latents.h5"

    @property
    def constraints_dir(self) -> Path:
        return self.path / "constraints"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.json"

    # -- run.json ------------------------------------------------------------------------------------------
    def read(self) -> dict[str, Any]:
        """run.json, checked for format version; one-line errors when missing, corrupt or foreign."""
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
        for key in ("backbone", "backbone_config", "dataset"):
            if key not in info:
                raise LctkError(f"run config {self.config_path} lacks {key!r}; it is damaged")
        return info

    def write(self, info: dict[str, Any]) -> None:
        """Atomically (re)write run.json, stamping the lctk and format versions."""
        info = {"lctk_version": __version__, "format_version": FORMAT_VERSION, **{k: v for k, v in info.items()
                if k not in ("lctk_version", "format_version")}}
        save_json(self.config_path, info)

    # -- backbone ------------------------------------------------------------------------------------------
    def build_backbone(self, info: dict[str, Any] | None = None) -> Backbone:
        """A backbone with the run's class and config and freshly initialised weights."""
        info = info or self.read()
        cls = get_registries().backbone(info["backbone"])
        config = cls.configure({}, info["backbone_config"])
        check_parameters(lambda: cls(config), f"backbone of {self.config_path}")
        return cls(config)

    def load_backbone(self, info: dict[str, Any] | None = None) -> Backbone:
        """The trained (or imported) backbone in eval mode; a one-line error when it has not finished training,
        or when the files of an imported model changed since the import."""
        info = info or self.read()
        if info.get("source") is not None:
            from lctk.importing import load_source

            return _frozen(load_source(info["source"], info["dataset"].get("spec") or {}))
        if not self.weights_path.is_file():
            raise LctkError(f"run {self.path} has no trained backbone yet; finish it with "
                            f"`lctk train-vae --out {self.path} --resume`")
        backbone = self.build_backbone(info)
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

    def load_dataset(self, info: dict[str, Any] | None = None, progress=None) -> Dataset:
        """The dataset the run was trained on, as recorded in run.json."""
        info = info or self.read()
        return load_dataset(info["dataset"], progress)

    def modality(self, info: dict[str, Any] | None = None) -> str:
        """The modality of the run's data (selects writer and evaluator)."""
        info = info or self.read()
        return info["dataset"].get("modality", "")


def _frozen(backbone: Backbone) -> Backbone:
    """``backbone`` in eval mode with gradients off: constraints never change it."""
    backbone.eval()
    for p in backbone.parameters():
        p.requires_grad_(False)
    return backbone
