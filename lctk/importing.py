"""`lctk import-backbone`: a run folder from a model trained elsewhere, read by an importer plugin.

The run records where the model came from (``source`` in run.json: format, absolute path, SHA-256 of every file
the importer reads). The model's files are never copied or written; each later command re-reads them through
the importer after checking the hashes, and refuses to go on when a file changed or disappeared.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any, Mapping

import torch

from lctk.util.errors import LctkError
from lctk.interfaces import Backbone, Dataset, Importer
from lctk.plugins import Entry, get_registries
from lctk.util.progress import Progress
from lctk.record import RunRecord, SourceRecord
from lctk.run import RunDir, check_new_folder, dataset_record

_CHUNK = 1 << 20


def file_digest(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def hash_source(importer: Importer, path: Path) -> dict[str, str]:
    """``{relative file name: sha256}`` of the files ``importer`` reads at ``path``."""
    base = path if path.is_dir() else path.parent
    try:
        return {str(p.relative_to(base)): file_digest(p) for p in importer.files(path)}
    except OSError as e:
        raise LctkError(f"cannot read the model files at {path} ({e.strerror or e}); check the path and permissions") from None


def detect_format(path: Path) -> Entry:
    """The one importer whose detector accepts ``path``; one-line errors listing the known formats otherwise."""
    importers = get_registries().importers
    known = "; ".join(f"{name} ({entry.help})" if entry.help else name for name, entry in sorted(importers.items()))
    matches = []
    for name, entry in sorted(importers.items()):
        try:
            if entry.value.detect(path):
                matches.append(entry)
        except Exception:  # noqa: BLE001 - a detector that cannot read the folder does not match it
            continue
    if not matches:
        raise LctkError(f"{path} is in no known model format; known formats: {known or 'none installed'} "
                        "(pass --format NAME, or install the importer plugin for this format)")
    if len(matches) > 1:
        raise LctkError(f"{path} looks like several formats ({', '.join(m.name for m in matches)}); choose one with --format")
    return matches[0]


def read_with(entry: Entry, path: Path, data_spec: Mapping[str, Any]) -> Backbone:
    """``entry``'s importer loads ``path``; anything it raises besides LctkError becomes one line naming the format."""
    try:
        backbone = entry.value.load(path, data_spec)
    except LctkError:
        raise
    except Exception as e:  # noqa: BLE001 - a file the importer cannot make sense of is the user's input
        text = " ".join(str(e).split())[:200] or type(e).__name__
        raise LctkError(f"the {entry.name} importer cannot read {path} ({type(e).__name__}: {text}); "
                        "check that the folder is complete and in that format") from None
    if not isinstance(backbone, Backbone):
        raise LctkError(f"the {entry.name} importer returned {type(backbone).__name__}, not a Backbone; "
                        f"fix the importer plugin ({entry.plugin})")
    return backbone


def verify_source(source: Mapping[str, Any]) -> tuple[Entry, Path]:
    """Check that the imported model's files are still those recorded at import; one-line error if not."""
    path = Path(source["path"])
    entry = get_registries().importer(source["format"])
    if not path.exists():
        raise LctkError(f"the imported model {path} is gone; restore it there, or import it again into a new run")
    recorded: dict[str, str] = dict(source.get("files") or {})
    base = path if path.is_dir() else path.parent
    for name, digest in sorted(recorded.items()):
        file = base / name
        if not file.is_file():
            raise LctkError(f"file {file} of the imported model is gone; restore it, or import the model again into a new run")
        if file_digest(file) != digest:
            raise LctkError(f"file {file} of the imported model changed since the import (sha256 {digest[:12]}... recorded); "
                            "restore the original, or import the model again into a new run")
    return entry, path


def load_source(source: Mapping[str, Any], data_spec: Mapping[str, Any]) -> Backbone:
    """The backbone of an imported run, after checking that its files did not change."""
    entry, path = verify_source(source)
    return read_with(entry, path, data_spec)


def check_fits(backbone: Backbone, dataset: Dataset) -> None:
    """Encode two examples and decode them (decode two prior draws for a generator-only backbone): shapes must
    match the data, values must be finite."""
    idx = dataset.indices("train")[:2]
    x = dataset.fetch(idx)  # (2, ...)
    try:
        with torch.no_grad():
            if backbone.has_encoder:
                mu, sigma = backbone.encode(x)  # (2, D) each
            else:
                mu = backbone.prior_sample(len(x), torch.Generator().manual_seed(0))  # (2, D)
                sigma = torch.ones_like(mu)
            out = backbone.decode(mu)  # (2, ...)
    except LctkError:
        raise
    except Exception as e:  # noqa: BLE001 - a model that cannot run on this data does not fit it
        raise LctkError(f"the model cannot encode and decode examples of {dataset.name} ({type(e).__name__}: "
                        f"{' '.join(str(e).split())[:160]}); it was made for other data") from None
    if mu.shape != (len(x), backbone.latent_dim) or sigma.shape != mu.shape:
        raise LctkError(f"the model encodes to {tuple(mu.shape[1:])}, not to its latent_dim {backbone.latent_dim}; "
                        "fix the importer")
    if tuple(out.shape) != tuple(x.shape):
        raise LctkError(f"the model outputs examples of shape {tuple(out.shape[1:])} but {dataset.name} has "
                        f"{tuple(x.shape[1:])}; use data of the model's size")
    if not (torch.isfinite(mu).all() and torch.isfinite(sigma).all() and (sigma > 0).all() and torch.isfinite(out).all()):
        raise LctkError("the model gives NaN, infinite or non-positive values on the data; its weights are damaged")


def import_backbone(path: str | Path, out: str | Path, *, data: str, fmt: str | None = None,
                    data_dir: str | Path | None = None, data_options: Mapping[str, str] | None = None,
                    max_examples: int | None = None, seed: int = 0, progress: Progress | None = None) -> RunDir:
    """Make run folder ``out`` from the model at ``path`` (format ``fmt``, detected when None) for dataset
    ``data``, without training and without changing the model's files. Everything is checked before the run
    folder is created, so a refusal leaves no folder behind."""
    from lctk.train_vae import write_pictures

    run = RunDir(out)
    source = Path(path).expanduser().absolute()
    if not source.exists():
        raise LctkError(f"model path {source} does not exist")
    check_new_folder(run.path)
    entry = get_registries().importer(fmt) if fmt else detect_format(source)
    progress = progress or Progress()
    dataset, record = dataset_record(data, data_dir, data_options, max_examples, seed, progress)
    before = hash_source(entry.value, source)
    backbone = read_with(entry, source, dataset.spec)
    backbone.eval()
    check_fits(backbone, dataset)
    if hash_source(entry.value, source) != before:
        raise LctkError(f"the model files at {source} changed while they were read; import again when nothing writes them")
    config = getattr(backbone, "config", None)
    info = RunRecord(entry.name, _json_config(config), record, status="imported",
                     source=SourceRecord(entry.name, str(source), before))
    check_new_folder(run.path)
    created = not run.path.exists()
    run.path.mkdir(parents=True, exist_ok=True)
    try:
        write_pictures(run, backbone, dataset, seed)
        run.write(info)  # last: a folder with run.json is a complete run
    except BaseException:
        if created:
            shutil.rmtree(run.path, ignore_errors=True)
        raise
    return run


def _json_config(config) -> dict[str, Any]:
    """The backbone's config as JSON (for run.json; informative: imported runs are rebuilt by the importer)."""
    import dataclasses

    from lctk.util.config import to_dict

    if config is not None and dataclasses.is_dataclass(config):
        return to_dict(config)
    return {"latent_dim": int(getattr(config, "latent_dim", 0))} if config is not None else {}
