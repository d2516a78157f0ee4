"""The Python API, one function per command; the ``lctk`` command line calls these functions and nothing
else, so the two cannot drift::

    from lctk import api
    run = api.train_vae("runs/fm", backbone="conv", data="fashion-mnist", epochs=8)
    # or: run = api.import_backbone("pythae-folder", "runs/fm", data="fashion-mnist")
    api.encode(run)
    api.add_constraint(run, attrs=["sandal"])                   # method="diffusion" for a latent diffusion model
    images = api.sample(run, attrs=["sandal"], n=16)            # (16, 1, 28, 28) tensor; out= writes a file
    before, after = api.transform(run, test_indices=[0], attrs=["sandal"])
    metrics = api.evaluate(run)

`write_samples` and `write_transform` are what ``lctk sample`` and ``lctk transform`` do: they write files
(under RUN/ unless ``out`` is given) and return what was written. Errors are `lctk.LctkError` with a
one-line message. Import lctk before torch (or set ``OMP_WAIT_POLICY=PASSIVE`` before Python starts): torch
reads its thread wait policy once, on import, and spinning threads make training several times slower on
shared cores (training warns when torch came first; see docs/performance.md).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from lctk.engine.constraint_set import folder_name
from lctk.engine.optimize import TRANSFORM_SETTINGS, OptimizeSettings
from lctk.engine.sampling import Sampler
from lctk.engine.targets import Target
from lctk.util.errors import LctkError
from lctk.interfaces import Writer
from lctk.util.outputs import check_count, check_out, check_writable, default_name
from lctk.plugins import get_registries
from lctk.util.progress import Progress
from lctk.run import RunDir

__all__ = ["train_vae", "import_backbone", "encode", "add_constraint", "sample", "write_samples", "transform", "write_transform",
           "evaluate", "RunDir", "Samples", "Edits", "Sampler"]

Run = RunDir | str | Path


def train_vae(out: str | Path | None = None, *, backbone: str | None = None, data: str | None = None,
              data_dir: str | Path | None = None, data_options: Mapping[str, str] | None = None,
              max_examples: int | None = None, overrides: Mapping[str, Any] | None = None, resume: bool = False,
              device: str = "auto", progress: Progress | None = None, **settings: Any) -> RunDir:
    """`lctk train-vae`: train ``backbone`` on ``data`` into run folder ``out`` (default runs/BACKBONE-DATA).
    ``settings``: training settings (epochs, batch_size, lr, seed, checkpoint_every); ``overrides``: backbone
    config fields (latent_dim, beta, and the backbone's own, e.g. sigma_x). ``resume`` continues ``out``."""
    from lctk.train_vae import train_vae as train

    if out is None:
        if resume or not backbone or not data:
            raise LctkError("--out RUN is required" + (" with --resume" if resume else
                                                       " unless --backbone and --data are given"))
        out = Path("runs") / f"{backbone}-{data}"
    return train(out, backbone=backbone, data=data, data_dir=data_dir, data_options=data_options,
                 max_examples=max_examples, settings=settings, overrides=overrides, resume=resume, device=device,
                 progress=progress)


def import_backbone(path: str | Path, out: str | Path, *, data: str, fmt: str | None = None, **dataset: Any) -> RunDir:
    """`lctk import-backbone`: a run folder from a model trained elsewhere (``dataset``: data_dir, data_options,
    max_examples, seed), without training it or changing its files."""
    from lctk.importing import import_backbone as import_

    return import_(path, out, data=data, fmt=fmt, **dataset)


def encode(run: Run, batch_size: int = 1024, force: bool = False, device: str = "auto", prefetch: int = 2,
           progress: Progress | None = None) -> Path:
    """`lctk encode`: write ``RUN/latents.h5`` and return its path (under torchrun: each process its share;
    ``prefetch`` batches are read ahead while the encoder runs)."""
    from lctk.encode import encode_run

    return encode_run(_run(run), batch_size=batch_size, force=force, device=device, prefetch=prefetch,
                      progress=progress)


def add_constraint(run: Run, attrs: Sequence[str] = (), rules: Sequence[str] = (), *, all_attributes: bool = False,
                   name: str | None = None, overrides: Mapping[str, Any] | None = None, force: bool = False,
                   memory_budget: str | int | None = None, progress: Progress | None = None,
                   method: str = "actor") -> Path:
    """`lctk add-constraint`: train a constraint of ``method`` (``actor``: critics and an actor; ``diffusion``:
    a conditional denoiser; or a plugin's) for ``attrs`` and ``rules`` (every attribute of the data with
    ``all_attributes``; realism only with none); ``overrides`` are the method's settings (steps, seed, width,
    ...); latents are streamed from the store when they take more than ``memory_budget`` (e.g. ``"512MiB"``;
    default LCTK_MEMORY_BUDGET, else 1 GiB). Returns the constraint's folder."""
    from lctk.engine.add import add_constraint as add

    run = _run(run)
    if all_attributes:
        attrs = tuple(attrs) + tuple(a for a in run.record.dataset.attribute_names if a not in attrs)
    return add(run, attrs, rules, name=name, overrides=overrides, force=force, progress=progress,
               memory_budget=memory_budget, method=method)


#: Allowed guidance weights (``--guidance``) and edit strengths (``--strength``).
GUIDANCE_RANGE, STRENGTH_RANGE = (0.0, 50.0), (0.0, 1.0)


def check_method_options(method: str, guidance: float | None = None, strength: float | None = None) -> str:
    """``method`` checked (a registered constraint method, or ``optimize``), and so are ``guidance`` (0 to 50,
    for methods that take one) and ``strength`` (above 0, at most 1; for edits of methods with their own)."""
    from lctk.engine.method import OPTIMIZE, check_sampling_method

    method = check_sampling_method(method)
    guided = method != OPTIMIZE and getattr(get_registries().constraint_method(method), "guided", False)
    if guidance is not None:
        if not guided:
            raise LctkError(f"--guidance is for methods with classifier-free guidance (diffusion), not {method}")
        if not GUIDANCE_RANGE[0] <= guidance <= GUIDANCE_RANGE[1]:
            raise LctkError(f"--guidance {guidance:g} is out of range; give a weight from {GUIDANCE_RANGE[0]:g} "
                            f"(unconditional) to {GUIDANCE_RANGE[1]:g} (1 is plain conditional sampling)")
    if strength is not None:
        if method in ("actor", OPTIMIZE):
            raise LctkError(f"--strength is for edits of methods that noise the input (diffusion), not {method}; "
                            "use --w-dist for the actor's edits")
        if not STRENGTH_RANGE[0] < strength <= STRENGTH_RANGE[1]:
            raise LctkError(f"--strength {strength:g} is out of range; give a value above 0 and at most 1 (how far "
                            "the input is noised before it is denoised under the condition)")
    return method


@dataclasses.dataclass
class Samples:
    """Samples drawn and (by `write_samples`) written: ``outputs`` (decoded, batch first), ``label`` (the file
    name's stem), row ``labels`` and ``columns`` (one row per target with ``each``), ``draws`` (samples drawn
    in all; more than asked with ``check``), ``failing`` (with ``check``: samples that broke a rule in every
    draw and were left out) and the ``files`` written."""

    outputs: torch.Tensor
    label: str
    labels: list[str] | None = None
    columns: int | None = None
    draws: int = 0
    failing: int = 0
    files: list[Path] = dataclasses.field(default_factory=list)


def sample(run: Run, attrs: Sequence[str] = (), rules: Sequence[str] = (), n: int = 64, method: str = "actor",
           seed: int = 0, *, prior: bool = False, each: bool = False, check: bool = False,
           out: str | Path | None = None, guidance: float | None = None) -> torch.Tensor:
    """`lctk sample`: ``n`` decoded outputs satisfying ``attrs``/``rules`` (realism only when none; raw prior
    draws with ``prior``; ``n`` per target with ``each``; with ``check``, rules checked exactly and breaking
    samples drawn again); written with the modality's writer when ``out`` is given. A sweep among ``attrs``
    (``density=4..16``) gives ``n`` outputs per value, in order (one row per value when written). ``method``:
    ``actor``, ``optimize``, ``diffusion`` (``guidance``: its guidance weight) or a plugin's."""
    method = check_method_options(method, guidance)
    with Sampler(_run(run)) as sampler:
        drawn = _draw(sampler, attrs, rules, n, method, seed, prior, each, check, guidance)
        if out is not None:
            _write(sampler, drawn, out)
    return drawn.outputs


def write_samples(run: Run, attrs: Sequence[str] = (), rules: Sequence[str] = (), n: int = 64, method: str = "actor",
                  seed: int = 0, *, prior: bool = False, each: bool = False, check: bool = False,
                  out: str | Path | None = None, guidance: float | None = None) -> Samples:
    """What ``lctk sample`` does: `sample`, written to ``out`` (default ``RUN/samples/LABEL.SUFFIX``)."""
    method = check_method_options(method, guidance)
    with Sampler(_run(run)) as sampler:
        drawn = _draw(sampler, attrs, rules, n, method, seed, prior, each, check, guidance)
        _write(sampler, drawn, out)
    return drawn


def _draw(sampler: Sampler, attrs, rules, n, method, seed, prior, each, check, guidance=None) -> Samples:
    if n < 1:
        raise LctkError(f"-n {n} should be at least 1")
    sweep = None if prior else sampler.sweep(attrs, rules)
    if check and (prior or each or sweep):
        raise LctkError("--check redraws --rule samples; it does not go with --prior, --each or a sweep")
    if prior:
        if attrs or rules or each:
            raise LctkError("--prior draws unconstrained samples; drop --attr/--rule/--each or --prior")
        z = sampler.backbone.prior_sample(n, torch.Generator().manual_seed(seed))
        return Samples(sampler.decode(z), "prior", draws=n)
    if sweep:
        if each:
            raise LctkError("a sweep already gives one row per value; drop --each")
        outputs, labels = sampler.rows(sweep, n, method=method, seed=seed, guidance=guidance)
        label = folder_name(default_name([*attrs, *rules], "realism").replace("..", "-to-"))
        return Samples(outputs, f"{label}-{method}", labels, n, len(outputs))
    if each:
        wants = sampler.wants(attrs, rules) or [Target(a, "attribute") for a in sampler.constrained_attributes()]
        if not wants:
            raise LctkError(f"run {sampler.run.path} has no attribute constraints for --each; add one first")
        outputs, labels = sampler.rows([[t] for t in wants], n, method=method, seed=seed, guidance=guidance)
        return Samples(outputs, f"each-{method}", labels, n, len(outputs))
    label = folder_name(default_name([*attrs, *rules], "realism")) if attrs or rules else "realism"
    if check:
        if not rules:
            raise LctkError("--check redraws samples that break a --rule; give at least one --rule")
        outputs, draws, ok = sampler.checked(sampler.wants(attrs, rules), n, method=method, seed=seed,
                                             guidance=guidance)
        if not ok.any():
            raise LctkError(f"none of {draws} samples drawn satisfied {' and '.join(rules)}; nothing was written; "
                            "train the constraint longer (--steps) or relax the rule")
        return Samples(outputs[ok], f"{label}-checked-{method}", draws=draws, failing=int((~ok).sum()))
    z = sampler.latents(sampler.wants(attrs, rules), n, method=method, seed=seed, guidance=guidance)[1]
    return Samples(sampler.decode(z), f"{label}-{method}", draws=n)


def _writer(sampler: Sampler, out: str | Path | None) -> Writer:
    """The run's writer, refusing an ``out`` whose suffix it cannot produce."""
    writer = get_registries().writer(sampler.run.modality)
    suffix = Path(out).suffix.lower() if out is not None else ""
    allowed = tuple(writer.suffixes) or (writer.default_suffix,)
    if out is not None and writer.default_suffix and suffix and suffix not in allowed:
        raise LctkError(f"--out {out}: the {sampler.run.modality} writer writes {', '.join(allowed)} files, "
                        f"not {suffix}; name the output {Path(out).with_suffix(writer.default_suffix).name}")
    return writer


def _write(sampler: Sampler, drawn: Samples, out: str | Path | None) -> None:
    writer = _writer(sampler, out)
    check_count(len(drawn.outputs), writer)
    if out is not None:
        check_out(out, writer.default_suffix)
    else:
        check_writable(sampler.run.path / "samples", f"run folder {sampler.run.path}")
    path = Path(out) if out is not None else sampler.run.path / "samples" / f"{drawn.label}{writer.default_suffix}"
    drawn.files = writer.write_batch(drawn.outputs, path, columns=drawn.columns, labels=drawn.labels)


@dataclasses.dataclass
class Edits:
    """Identity-preserving edits: ``before`` (reconstructions of the inputs), ``after`` (edited), the files
    written."""

    before: torch.Tensor
    after: torch.Tensor
    files: list[Path] = dataclasses.field(default_factory=list)


def transform(run: Run, x: torch.Tensor | None = None, indices: Sequence[int] = (), *, test_indices: Sequence[int] = (),
              input: str | Path | None = None, attrs: Sequence[str] = (), rules: Sequence[str] = (),
              settings: OptimizeSettings | None = None, seed: int = 0, out: str | Path | None = None,
              method: str = "actor", strength: float | None = None, guidance: float | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """`lctk transform`: (reconstructions, edited outputs) of examples ``x``, of a file ``input``, of dataset
    rows ``indices`` or of test examples ``test_indices`` (0 is the first test example); written as pairs
    when ``out`` is given. ``method``: ``actor`` (the smallest move its critics approve, ``settings``) or
    ``diffusion`` (noised to ``strength`` and denoised under the condition with ``guidance``)."""
    edits = _edit(_run(run), x, indices, test_indices, input, attrs, rules, settings, seed, out, out is not None,
                  method, strength, guidance)
    return edits.before, edits.after


def write_transform(run: Run, x: torch.Tensor | None = None, indices: Sequence[int] = (), *,
                    test_indices: Sequence[int] = (), input: str | Path | None = None, attrs: Sequence[str] = (),
                    rules: Sequence[str] = (), settings: OptimizeSettings | None = None, seed: int = 0,
                    out: str | Path | None = None, method: str = "actor", strength: float | None = None,
                    guidance: float | None = None) -> Edits:
    """What ``lctk transform`` does: `transform`, written to ``out`` (default ``RUN/transforms/LABEL.SUFFIX``)."""
    return _edit(_run(run), x, indices, test_indices, input, attrs, rules, settings, seed, out, True, method,
                 strength, guidance)


def _edit(run: RunDir, x, indices, test_indices, input, attrs, rules, settings, seed, out, write,
          method="actor", strength=None, guidance=None) -> Edits:
    method = check_method_options(method, guidance, strength)
    if sum(bool(v) for v in (x is not None, input, list(indices), list(test_indices))) != 1:
        raise LctkError("give exactly one of --input FILE, --index N or --test-index N")
    with Sampler(run) as sampler:
        writer = _writer(sampler, out)
        if out is not None:
            check_out(out, writer.default_suffix)
        wants = sampler.wants(attrs, rules)
        if input:
            x = writer.read_input(Path(input), sampler.record.dataset.spec)
        elif x is None:
            x = _fetch(run.load_dataset(), indices, test_indices)
        z0, z1 = sampler.transform_latents(x, wants, seed=seed, settings=settings or TRANSFORM_SETTINGS, method=method,
                                           strength=strength, guidance=guidance)
        edits = Edits(sampler.decode(z0), sampler.decode(z1))
        if write:
            name = (folder_name("+".join([*attrs, *rules])) or "edit") + ("" if method == "actor" else f"-{method}")
            path = Path(out) if out is not None else run.path / "transforms" / f"{name}{writer.default_suffix}"
            edits.files = writer.write_pairs(edits.before, edits.after, path)
    return edits


def _fetch(dataset, indices: Sequence[int], test_indices: Sequence[int]) -> torch.Tensor:
    """The dataset's examples at ``indices`` (of all rows) or ``test_indices`` (of its test part)."""
    if test_indices:
        test = dataset.indices("test")
        bad = [i for i in test_indices if not 0 <= i < len(test)]
        if bad:
            raise LctkError(f"--test-index {bad[0]} is out of range; the dataset has {len(test)} test examples")
        return dataset.fetch(test[torch.tensor(list(test_indices))])
    bad = [i for i in indices if not 0 <= i < len(dataset)]
    if bad:
        raise LctkError(f"--index {bad[0]} is out of range; the dataset has {len(dataset)} examples")
    return dataset.fetch(torch.tensor(list(indices)))


def evaluate(run: Run, n: int = 2000, seed: int = 0, progress: Progress | None = None,
             guidance: float | None = None) -> dict[str, Any]:
    """`lctk evaluate`: independent measures, also written to ``RUN/metrics.json``. ``guidance``: the guidance
    weight diffusion constraints sample with (default: each one's ``sample_guidance``)."""
    from lctk.engine.evaluate import evaluate_run

    if n < 10:
        raise LctkError(f"-n {n} should be at least 10")
    if guidance is not None:
        check_method_options("diffusion", guidance)
    return evaluate_run(_run(run), n=n, seed=seed, progress=progress, guidance=guidance)


def _run(run: Run) -> RunDir:
    return run if isinstance(run, RunDir) else RunDir(run)
