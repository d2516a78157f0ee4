"""Encode every example of a run's dataset into the run's latent store, in bounded memory, resumably."""

from __future__ import annotations

import errno
from pathlib import Path

import torch

from lctk.errors import LctkError
from lctk.latents import LatentStore, LatentWriter
from lctk.progress import Progress
from lctk.run import RunDir, fingerprint
from lctk.interrupt import GracefulStop


def encode_run(run: RunDir, batch_size: int = 1024, force: bool = False, progress: Progress | None = None) -> Path:
    """Write ``RUN/latents.h5``: mu and sigma for every example, attributes, split, backbone fingerprint.

    An existing store from the same backbone is kept unless ``force``; an interrupted encode resumes.
    """
    progress = progress or Progress()
    info = run.read()
    backbone = run.load_backbone(info)
    fp = fingerprint(backbone)
    if run.latents_path.exists() and not force:
        try:
            with LatentStore.open(run.latents_path) as store:
                if store.fingerprint == fp:
                    return run.latents_path
        except LctkError:
            pass
        raise LctkError(f"{run.latents_path} exists but does not match the backbone; re-encode with "
                        f"`lctk encode {run.path} --force`")
    dataset = run.load_dataset(info, progress)
    n = len(dataset)
    meta = {"backbone": info["backbone"], "dataset": info["dataset"]["name"], "modality": dataset.modality}
    partial = run.latents_path.with_name(run.latents_path.name + ".partial")
    continuous = dataset.continuous  # (N, C)
    if not torch.isfinite(continuous).all():
        raise LctkError(f"dataset {dataset.name} has NaN or infinite continuous attribute values; fix the data")
    try:
        with GracefulStop() as stop, LatentWriter(run.latents_path, n, backbone.latent_dim, dataset.attribute_names, fp, meta,
                                                  dataset.continuous_names) as writer, \
                progress.task("encode", total=n, completed=writer.rows_done) as bar, torch.inference_mode():
            for start in range(writer.rows_done, n, batch_size):
                idx = torch.arange(start, min(n, start + batch_size))  # (b,)
                x = dataset.fetch(idx)  # (b, ...)
                if x.is_floating_point() and not torch.isfinite(x).all():
                    bad = idx[~torch.isfinite(x.reshape(len(x), -1)).all(dim=1)][0].item()
                    raise LctkError(f"example {bad} of dataset {dataset.name} holds NaN or infinite values; fix the data")
                mu, sigma = backbone.encode(x)  # (b, D) each
                writer.write(mu, sigma, dataset.attributes[idx], dataset.split[idx], continuous[idx])
                bar.advance(len(idx))
                if stop.requested:
                    raise KeyboardInterrupt
    except KeyboardInterrupt:
        raise LctkError(f"interrupted; run `lctk encode {run.path}` again to continue where it stopped") from None
    except OSError as e:  # a full disk, a failing HDF5 write: latents.h5 itself was not touched
        full = getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "space" in str(e).lower()
        raise LctkError(f"{'disk full' if full else 'writing failed'} while writing {partial} "
                        f"({' '.join(str(e).split()) or type(e).__name__}); {run.latents_path.name} was left as it "
                        f"was; {'free space and ' if full else ''}run `lctk encode {run.path}` again to continue") from None
    return run.latents_path
