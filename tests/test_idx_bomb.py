"""A gzipped IDX file is bounded by its header before it is inflated: a 14 MB gzip that inflates to 3 GiB is
refused from its first bytes, in a moment and in little memory, and one that holds more than its header says
is refused without inflating the rest. docs/reliability.md ("Hostile run folders") lists the cases.
"""

from __future__ import annotations

import gzip
import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import TINY_VAE
from tests.test_bad_inputs import IDX_FILES, refused, unchanged  # noqa: F401  (unchanged: a fixture)

ROOT = Path(__file__).resolve().parents[1]


def bomb(path: Path, shape: tuple[int, ...], mib: int = 3072) -> Path:
    """An IDX header declaring ``shape`` (uint8), then ``mib`` MiB of zeros, as gzip members (14 MB for 3 GiB)."""
    header = bytes([0, 0, 0x08, len(shape)]) + b"".join(struct.pack(">I", d) for d in shape)
    path.write_bytes(gzip.compress(header) + gzip.compress(b"\0" * 2**20, compresslevel=1) * mib)
    return path


def _data_with(tmp_path: Path, digits_dir: Path, shape: tuple[int, ...]) -> Path:
    data = tmp_path / "data"
    shutil.copytree(digits_dir, data)
    (data / IDX_FILES[0]).unlink()
    bomb(data / (IDX_FILES[0] + ".gz"), shape)
    return data


def test_a_gzip_bomb_is_refused_from_its_header(tmp_path, digits_dir, run_cli, unchanged):
    data = _data_with(tmp_path, digits_dir, (3 * 2**20, 32, 32))  # declares the 3 GiB it inflates to
    assert 10e6 < (data / (IDX_FILES[0] + ".gz")).stat().st_size < 20e6
    unchanged(data)
    started = time.monotonic()
    refused(run_cli("train-vae", "--backbone", "conv", "--data", "idx", "--data-dir", data, "--out", tmp_path / "run",
                    "--epochs", "1", *TINY_VAE), "3.0 GiB", "over 100 times its own size", "gzip bomb")
    assert time.monotonic() - started < 30
    assert not (tmp_path / "run").exists()


def test_a_gzip_holding_more_than_its_header_is_refused(tmp_path, digits_dir, run_cli, unchanged):
    data = _data_with(tmp_path, digits_dir, (1500, 8, 8))  # declares 96 kB, inflates to 3 GiB
    unchanged(data)
    refused(run_cli("train-vae", "--backbone", "conv", "--data", "idx", "--data-dir", data, "--out", tmp_path / "run",
                    "--epochs", "1", *TINY_VAE), "more data than its header", "(1500, 8, 8)")
    assert not (tmp_path / "run").exists()


def test_the_declared_size_is_capped(tmp_path, digits_dir, monkeypatch):
    import pytest

    from lctk.util.errors import LctkError
    from lctk_conv import idx

    path = tmp_path / "images.gz"
    path.write_bytes(gzip.compress((digits_dir / IDX_FILES[0]).read_bytes()))
    assert idx.read_idx(path).shape == (1500, 8, 8)
    monkeypatch.setattr(idx, "MAX_IDX_BYTES", 50_000)
    with pytest.raises(LctkError, match="more than an IDX file may hold"):
        idx.read_idx(path)


def test_reading_a_bomb_takes_little_time_and_memory(tmp_path):
    """In a fresh process: refusing both bombs adds under 100 MB to the peak memory and takes under 5 s."""
    big, lying = bomb(tmp_path / "big.gz", (3 * 2**20, 32, 32)), bomb(tmp_path / "lying.gz", (10, 8, 8))
    code = ("import resource, sys, time\n"
            "from lctk_conv.idx import read_idx\n"
            "from lctk.util.errors import LctkError\n"
            "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "t = time.monotonic()\n"
            "for p in sys.argv[1:]:\n"
            "    try:\n"
            "        read_idx(p)\n"
            "    except LctkError:\n"
            "        pass\n"
            "    else:\n"
            "        raise SystemExit('accepted ' + p)\n"
            "print(time.monotonic() - t, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins" / "lctk-conv")])}
    out = subprocess.run([sys.executable, "-c", code, str(big), str(lying)], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    seconds, grown_mb = map(float, out.stdout.split())
    assert seconds < 5 and grown_mb < 100, (seconds, grown_mb)
