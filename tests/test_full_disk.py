"""A genuinely full file system (a 4 MB tmpfs mounted for the test; root only) ends every writer -- HDF5
(encode), safetensors (add-constraint), PNG (sample), MIDI and JSON -- with one ``error: ... disk full ...`` line,
a non-zero exit, no traceback and no crash, and the previous file byte-identical. Commands on the full disk run
in their own process, so a crash would show as a signal, not take the tests down. docs/reliability.md ("Full disk, for
real") lists the cases.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.killing import digest_tree

ROOT = Path(__file__).resolve().parents[1]
QUICK = ["--steps", "5", "--set", "classifier_steps=5", "--set", "width=16", "--set", "depth=1", "--set", "batch_size=32"]


class SmallDisk:
    """A mounted tmpfs of a few MB; `fill` leaves only a given number of bytes free."""

    def __init__(self, path: Path):
        self.path = path
        self.filler = path / ".filler"

    def free(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self, leave: int = 0) -> None:
        """Take all but ``leave`` bytes (rounded to pages) of the free space."""
        self.filler.unlink(missing_ok=True)
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT)
        try:
            take = self.free() - leave
            if take > 0:
                os.posix_fallocate(fd, 0, take)
        finally:
            os.close(fd)
        assert self.free() <= leave + 4096

    def empty(self) -> None:
        self.filler.unlink(missing_ok=True)


@pytest.fixture
def small_disk(tmp_path) -> SmallDisk:
    if os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    mount = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode})")
    try:
        yield SmallDisk(mount)
    finally:
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def lctk(*args) -> subprocess.CompletedProcess:
    """``lctk ARGS`` in a fresh process (of this source tree)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *(str(ROOT / "plugins" / p) for p in ("lctk-conv", "lctk-lstm")), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "lctk", *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=300)


def full(result: subprocess.CompletedProcess) -> str:
    """Assert the one-line disk-full refusal: exit 2 (not a signal), the only ``error:`` line last, no traceback."""
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr[-2000:]
    assert "disk full" in errors[0], errors[0]
    return errors[0]


def _kept(before: dict[str, str], after: dict[str, str]) -> None:
    """Every file of ``before`` byte-identical; new files only resumable work (inside a ``.NAME.partial``)."""
    before, after = ({k: v for k, v in d.items() if k != ".filler"} for d in (before, after))
    assert {k: after.get(k) for k in before} == before
    new = [k for k in after if k not in before and not any(p.endswith(".partial") for p in k.split("/")[:-1])]
    assert not new, new


def test_encode_on_a_full_disk(small_disk, tiny_run):
    run = small_disk.path / "run"
    shutil.copytree(tiny_run, run)
    before = digest_tree(run)
    for leave in (0, 60_000):  # no room at all; room for part of the store
        small_disk.fill(leave)
        assert "latents.h5 was left as it was" in full(lctk("encode", run, "--force"))
        _kept(before, digest_tree(run))
    small_disk.empty()
    assert lctk("encode", run, "--force").returncode == 0  # nothing left behind stands in the way


def test_add_constraint_on_a_full_disk(small_disk, tiny_run, run_cli):
    run = small_disk.path / "run"
    shutil.copytree(tiny_run, run)
    assert run_cli("add-constraint", run, "--attr", "3", *QUICK).exit_code == 0
    before = digest_tree(run)
    for leave in (0, 20_000):  # no room for the lock; room for the lock and the request, not the weights
        small_disk.fill(leave)
        full(lctk("add-constraint", run, "--attr", "3", "--force", *QUICK))
        _kept(before, digest_tree(run))
        assert sorted(p.name for p in (run / "constraints").iterdir() if not p.name.endswith(".partial")) == ["3"]


def test_sample_png_on_a_full_disk(small_disk, tiny_run, run_cli):
    out = small_disk.path / "samples.png"
    assert run_cli("sample", tiny_run, "--prior", "-n", "16", "--out", out).exit_code == 0
    before = digest_tree(small_disk.path)
    small_disk.fill(0)
    full(lctk("sample", tiny_run, "--prior", "-n", "16", "--seed", "1", "--out", out))
    full(lctk("sample", tiny_run, "--prior", "-n", "16", "--out", small_disk.path / "new" / "folder"))
    _kept(before, digest_tree(small_disk.path))
    assert not (small_disk.path / "new").exists() or not any((small_disk.path / "new").rglob("*.png"))


def test_midi_and_json_writers_on_a_full_disk(small_disk):
    """The melody writer (MIDI files, a piano roll) and lctk's JSON writer, called directly."""
    import torch

    from lctk.util.errors import LctkError
    from lctk.util.io import save_json

    pytest.importorskip("lctk_lstm")
    from lctk_lstm.encoding import FIRST_NOTE, SEQ_LEN
    from lctk_lstm.writer import MelodyWriter

    melodies = torch.full((4, SEQ_LEN), FIRST_NOTE + 30)  # (B, T) tokens: one long note each
    folder = small_disk.path / "melodies"
    MelodyWriter().write_batch(melodies, folder)
    save_json(small_disk.path / "metrics.json", {"figure": 1})
    before = digest_tree(small_disk.path)
    small_disk.fill(0)
    with pytest.raises(LctkError, match="disk full while writing"):
        MelodyWriter().write_batch(melodies + 1, folder)
    with pytest.raises(LctkError, match="disk full while writing .*metrics.json; the previous file was kept"):
        save_json(small_disk.path / "metrics.json", {"figure": 2, "padding": "x" * 10_000})
    _kept(before, digest_tree(small_disk.path))
