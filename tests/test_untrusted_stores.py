"""A latent store from someone else's run folder is untrusted: HDF5 external storage, virtual datasets, external
and soft links, odd dtypes and ranks, headers declaring more data than the file holds, empty stores, and a
``latents.h5.partial`` made to be "resumed" into a file outside the run. Each is refused with one ``error:``
line (the crafted partial: deleted and the store started over), every file outside the run byte-identical.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from lctk.util.h5safe import proof
from tests.killing import digest_tree, lctk_env
from tests.test_bad_inputs import TINY_CONSTRAINT, refused, unchanged  # noqa: F401 - a fixture

DATASETS = ("mu", "sigma", "attributes", "split", "sigma_sum", "continuous")


def rebuild(path: Path, make: dict | None = None, attrs: dict | None = None, out: Path | None = None) -> None:
    """Rewrite the store at ``path`` (into ``out``) with the same attributes and data, except datasets that
    ``make[name](f, data)`` creates its own way and attributes overridden by ``attrs``."""
    with h5py.File(path, "r") as f:
        data = {k: f[k][...] for k in DATASETS if k in f}
        meta = dict(f.attrs)
    out = out or path
    out.unlink(missing_ok=True)
    with h5py.File(out, "w") as f:
        for name, array in data.items():
            (make or {}).get(name, lambda f, a, name=name: f.create_dataset(name, data=a))(f, array)
        f.attrs.update({**meta, **(attrs or {})})


@pytest.fixture
def outside(tmp_path):
    """A folder outside the run with a script and some bytes an attacker would like lctk to overwrite or read."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "script.sh").write_text("#!/bin/sh\necho hello\n" + "#" * 4000 + "\n")
    (folder / "secret.bin").write_bytes(np.random.default_rng(0).bytes(200_000))
    return folder


def _external(target: Path):
    def make(f, a):
        f.create_dataset("mu", shape=a.shape, dtype=a.dtype, external=[(str(target), 0, h5py.h5f.UNLIMITED)])
    return make


def _virtual(target: Path):
    def make(f, a):
        with h5py.File(target, "w") as src:
            src.create_dataset("mu", data=a)
        layout = h5py.VirtualLayout(shape=a.shape, dtype=a.dtype)
        layout[...] = h5py.VirtualSource(str(target), "mu", shape=a.shape)
        f.create_virtual_dataset("mu", layout)
    return make


def _external_link(target: Path):
    def make(f, a):
        with h5py.File(target, "w") as src:
            src.create_dataset("mu", data=a)
        f["mu"] = h5py.ExternalLink(str(target), "mu")
    return make


def _soft_link(f, a):
    f.create_dataset("hidden", data=a)
    f["mu"] = h5py.SoftLink("/hidden")


def _declared_rows(n: int):
    """A ``mu`` (and ``sigma``, ``split``) declaring ``n`` rows, chunked and never written: a tiny file."""
    def make(name, shape_of):
        def build(f, a):
            f.create_dataset(name, shape=shape_of(a), dtype=a.dtype, chunks=True, maxshape=(None,) + a.shape[1:])
        return build
    return {"mu": make("mu", lambda a: (n, a.shape[1])), "sigma": make("sigma", lambda a: (n, a.shape[1])),
            "split": make("split", lambda a: (n,)), "attributes": make("attributes", lambda a: (n, a.shape[1]))}


STORE_CASES = {
    "external-storage": (lambda o: {"mu": _external(o / "secret.bin")}, None, "external files"),
    "virtual-dataset": (lambda o: {"mu": _virtual(o / "source.h5")}, None, "virtual dataset"),
    "external-link": (lambda o: {"mu": _external_link(o / "source.h5")}, None, "externallink"),
    "soft-link": (lambda o: {"mu": _soft_link}, None, "softlink"),
    "compressed": (lambda o: {"mu": lambda f, a: f.create_dataset("mu", data=a, compression="gzip")}, None, "filters"),
    "integer-mu": (lambda o: {"mu": lambda f, a: f.create_dataset("mu", data=a.astype("i4"))}, None, "data type"),
    "mu-of-rank-3": (lambda o: {"mu": lambda f, a: f.create_dataset("mu", data=a[:, :, None])}, None, "rank 3"),
    "string-split": (lambda o: {"split": lambda f, a: f.create_dataset("split", data=a.astype("S1"))}, None,
                     "data type"),
    "empty": (lambda o: {k: (lambda k: lambda f, a: f.create_dataset(k, data=a[:0] if k != "sigma_sum" else a))(k)
                         for k in DATASETS}, None, "holds no examples"),
    "no-training-rows": (lambda o: {"split": lambda f, a: f.create_dataset("split", data=np.ones_like(a))}, None,
                         "no training examples"),
}


@pytest.mark.parametrize("case", list(STORE_CASES))
def test_untrusted_latent_store_is_refused(case, tiny_run, run_cli, outside, unchanged):
    make, attrs, needle = STORE_CASES[case]
    rebuild(tiny_run / "latents.h5", make(outside), attrs)
    unchanged(tiny_run)
    unchanged(outside)
    refused(run_cli("add-constraint", tiny_run, "--attr", "3", *TINY_CONSTRAINT), needle)


def test_symlinked_latent_store_is_refused(tiny_run, run_cli, outside, unchanged):
    (tiny_run / "latents.h5").rename(outside / "latents.h5")
    (tiny_run / "latents.h5").symlink_to(outside / "latents.h5")
    unchanged(outside)
    refused(run_cli("add-constraint", tiny_run, "--attr", "3", *TINY_CONSTRAINT), "symbolic link")


def test_store_declaring_a_billion_rows_fails_fast_in_small_memory(tiny_run, outside):
    """A ~10 KB latents.h5 whose headers declare 10^9 rows: one error line from a real process, quickly, in
    little memory (nothing is allocated from the declared size)."""
    rebuild(tiny_run / "latents.h5", _declared_rows(10**9))
    assert (tiny_run / "latents.h5").stat().st_size < 64_000
    before = digest_tree(tiny_run)
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "lctk", "add-constraint", str(tiny_run), "--attr", "3",
                             *TINY_CONSTRAINT], env=lctk_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = proc.stderr.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.monotonic() - started
    lines = stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1 and lines[0].startswith("error:"), stderr
    assert "declare" in lines[0] and "Traceback" not in stderr
    assert usage.ru_maxrss < 1_000_000, usage.ru_maxrss  # KiB: far below the ~32 GB the header asks for
    assert elapsed < 60
    assert digest_tree(tiny_run) == before


# -- a crafted latents.h5.partial: never resumed into ----------------------------------------------------------


def _crafted_partial(run: Path, target: Path, token: str, proven: bool, rows_written: int = 1000) -> None:
    """A partial store whose ``mu`` is external storage over ``target``, with a matching progress file."""
    with h5py.File(run / "latents.h5", "r") as f:
        rows, dim = f["mu"].shape
        names = json.loads(f.attrs["attribute_names"])
        fp = str(f.attrs["fingerprint"])
    rebuild(run / "latents.h5", {"mu": _external(target)},
            {"complete": False, "rows_written": rows_written, "writer_token": token}, out=run / "latents.h5.partial")
    (run / "latents.h5.partial.json").write_text(json.dumps(
        {"fingerprint": fp, "rows": int(rows), "latent_dim": int(dim), "attribute_names": names,
         "rows_written": rows_written, "token": token, "proof": proof(token, fp) if proven else "0" * 64}))
    (run / "latents.h5").unlink()


@pytest.mark.parametrize("proven", [False, True], ids=["unproven-token", "proven-token-external-layout"])
def test_crafted_partial_store_is_never_resumed(proven, tiny_run, run_cli, outside, unchanged):
    """Unproven: someone else's partial (the sender can fake everything but this user's key). Proven: even a
    partial carrying a valid proof is resumed only when its layout is plain."""
    _crafted_partial(tiny_run, outside / "script.sh", "ab" * 16, proven)
    unchanged(outside)
    r = run_cli("encode", tiny_run)
    assert r.exit_code == 0, r
    assert not (tiny_run / "latents.h5.partial").exists()
    with h5py.File(tiny_run / "latents.h5", "r") as f:
        assert f["mu"].id.get_create_plist().get_external_count() == 0
        assert f.attrs.get("writer_token") != "ab" * 16 and np.isfinite(f["mu"][...]).all()


def test_symlinked_partial_store_is_not_followed(tiny_run, run_cli, outside, unchanged):
    """latents.h5.partial as a symlink to a file outside the run (even a valid-looking store there)."""
    _crafted_partial(tiny_run, outside / "script.sh", "cd" * 16, True)
    (tiny_run / "latents.h5.partial").rename(outside / "store.h5")
    (tiny_run / "latents.h5.partial").symlink_to(outside / "store.h5")
    unchanged(outside)
    assert run_cli("encode", tiny_run).exit_code == 0
    assert (tiny_run / "latents.h5").is_file() and not (tiny_run / "latents.h5").is_symlink()


def test_own_partial_store_still_resumes(tmp_path):
    """The proof does not stop lctk resuming what it wrote itself."""
    import torch

    from lctk.latents import LatentWriter

    blocks = [(torch.randn(5, 3), torch.rand(5, 3) + 0.1, torch.zeros(5, 1, dtype=torch.bool),
               torch.zeros(5, dtype=torch.int8)) for _ in range(3)]
    with pytest.raises(KeyboardInterrupt):
        with LatentWriter(tmp_path / "s.h5", 15, 3, ["a"], "f" * 16) as writer:
            writer.write(*blocks[0])
            raise KeyboardInterrupt
    with LatentWriter(tmp_path / "s.h5", 15, 3, ["a"], "f" * 16) as writer:
        assert writer.rows_done == 5
        for block in blocks[1:]:
            writer.write(*block)
    assert (tmp_path / "s.h5").is_file() and not (tmp_path / "s.h5.partial").exists()
