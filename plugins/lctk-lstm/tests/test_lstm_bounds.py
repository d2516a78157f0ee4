"""Tiny hostile files cannot hang the melody loaders: caps on each tune's length, bars, notes and meter are
checked before the work that grows with them, and a time budget per tune stops whatever slips past; the
file is skipped with a warning naming it and the other files still load."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

from conftest import ODE_TO_JOY
from lctk.plugins import DataRequest
from lctk_lstm import bounds, parse
from lctk_lstm.datasets import load_abc_folder, load_midi_folder
from lctk_lstm.encoding import Note
from lctk_lstm.midi import notes_to_midi
from lctk_lstm.parse import Job, parse_all, parse_job


def _midi(events: bytes, division: int = 480) -> bytes:
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, division) + b"MTrk" + struct.pack(">I", len(events)) + events


#: 43 bytes: a 4/2^255 time signature and one note.
ABSURD_METER = _midi(b"\x00\xff\x58\x04\x04\xff\x18\x08" + b"\x00\x90\x3c\x40" + b"\x83\x60\x80\x3c\x00"
                     + b"\x00\xff\x2f\x00")
#: 69 bytes: one note of 2^28 ticks at one tick per quarter note (2^30 16th-note steps).
HUGE_NOTE = _midi(b"\x00\xff\x58\x04\x04\x02\x18\x08" + b"\x00\xff\x51\x03\x07\xa1\x20" + b"\x00\xc0\x00"
                  + b"\x00\x90\x3c\x40" + b"\xff\xff\xff\x7f\xff\x01\x0anote 2^28t" + b"\x01\x80\x3c\x00"
                  + b"\x00\xff\x2f\x00", division=1)
#: 38 bytes: one note of 10^8 quarter notes.
LONG_ABC = b"X:1\nT:xy\nM:4/4\nL:1/4\nK:C\nC100000000|]\n"
HOSTILE = {"meter.mid": ABSURD_METER, "note.mid": HUGE_NOTE, "long.abc": LONG_ABC}
ODE = [Note(4 * i, 4 * i + 4, p) for i, p in enumerate([64, 64, 65, 67, 67, 65, 64, 62, 60, 60, 62, 64])]


def test_the_hostile_files_are_as_small_as_reported():
    assert [len(v) for v in HOSTILE.values()] == [43, 69, 38]


def _warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("warning:")]


def test_hostile_midi_files_are_skipped_quickly_and_the_others_load(tmp_path, capsys):
    folder = tmp_path / "midi"
    folder.mkdir()
    (folder / "meter.mid").write_bytes(ABSURD_METER)
    (folder / "note.mid").write_bytes(HUGE_NOTE)
    (folder / "ode.mid").write_bytes(notes_to_midi(ODE))
    started = time.process_time()  # processor time: the same on a busy machine
    dataset = load_midi_folder(DataRequest(data_dir=folder))
    assert time.process_time() - started < 10
    warnings = _warnings(capsys.readouterr().err)
    assert len(warnings) == 2, warnings
    meter = next(w for w in warnings if "meter.mid" in w)
    note = next(w for w in warnings if "note.mid" in w)
    assert "denominator 2^255" in meter and "skipped" in meter
    assert "quarter notes long" in note and f"at most {bounds.MAX_QUARTERS}" in note
    assert len(dataset) == 2  # ode.mid: 3 bars -> 2 windows


def test_a_hostile_abc_tune_is_skipped_quickly_and_the_others_load(tmp_path, capsys):
    folder = tmp_path / "abc"
    folder.mkdir()
    (folder / "long.abc").write_bytes(LONG_ABC)
    (folder / "ode.abc").write_text(ODE_TO_JOY)
    started = time.process_time()
    dataset = load_abc_folder(DataRequest(data_dir=folder))
    assert time.process_time() - started < 10
    warnings = _warnings(capsys.readouterr().err)
    assert len(warnings) == 1 and "long.abc" in warnings[0] and "quarter notes long" in warnings[0], warnings
    assert len(dataset) == 3


PROBE = """
import json, resource, sys, time
from lctk_lstm.parse import Job, parse_all
import music21, lctk_lstm.extract, lctk_lstm.midi  # imported before measuring
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
jobs = [Job(p, p, "abc" if p.endswith(".abc") else "midi", open(p).read() if p.endswith(".abc") else p)
        for p in sys.argv[1:]]
started = time.process_time()
results = parse_all(jobs, workers=1)
print(json.dumps({"seconds": time.process_time() - started, "errors": [r.error for r in results],
                  "grown_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before}))
"""


def test_parsing_the_hostile_files_stays_small_in_memory(tmp_path):
    """In a fresh process without torch (a regression would otherwise take the test machine's memory, the
    process gets 4 GB of address space at most and a minute)."""
    paths = []
    for name, data in HOSTILE.items():
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    limit = "import resource; resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))\n"
    out = subprocess.run([sys.executable, "-c", limit + PROBE, *paths], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert all(e and "TuneTooBig" in e for e in report["errors"]), report
    assert report["seconds"] < 10, report
    assert report["grown_mb"] < 200, report  # the peak memory barely moves past what the imports took


def _slow_melody(score):
    numbers = []
    while True:  # a parser stuck in a loop, growing
        numbers.append(len(numbers))
        if len(numbers) > 1000:
            numbers.clear()


def test_a_tune_over_its_time_budget_is_abandoned(monkeypatch):
    monkeypatch.setattr("lctk_lstm.extract.melody_from_stream", _slow_melody)
    before = signal.getsignal(signal.SIGPROF)
    started = time.perf_counter()
    result = parse_job(Job("slow#1", "slow.abc", "abc", ODE_TO_JOY), seconds=0.5)
    assert time.perf_counter() - started < 60  # 0.5 s of processor time (wall time depends on the load)
    assert result.error and "took longer than 0.5 s" in result.error and len(result.windows) == 0
    assert signal.getitimer(signal.ITIMER_PROF) == (0.0, 0.0) and signal.getsignal(signal.SIGPROF) is before
    monkeypatch.undo()
    assert parse_job(Job("ode#1", "ode.abc", "abc", ODE_TO_JOY), seconds=0.5).error is None


def test_the_time_budget_works_in_the_parser_workers():
    """A genuinely slow tune (within the caps: 800 bars, about 25 s of processor time) among quick ones, parsed
    by two worker processes with a budget of 4 s per tune."""
    slow = "X:1\nT:long\nM:4/4\nL:1/8\nK:C\n" + " ".join(["CDEF GABc |"] * 800) + "\n"
    jobs = [Job("slow#1", "slow.abc", "abc", slow)] + \
        [Job(f"ode{i}#1", f"ode{i}.abc", "abc", ODE_TO_JOY) for i in range(parse.PARALLEL_FROM)]
    started = time.perf_counter()
    results = parse_all(jobs, workers=2, seconds=4.0)
    assert time.perf_counter() - started < 300  # processor time is bounded; wall time depends on the load
    assert "took longer than 4 s" in (results[0].error or ""), results[0]
    assert all(r.error is None and len(r.windows) == 3 for r in results[1:])


def test_the_budget_is_a_data_option(tmp_path):
    import pytest

    from lctk.util.errors import LctkError

    (tmp_path / "ode.abc").write_text(ODE_TO_JOY)
    for bad in ("0", "nan", "-3", "soon"):
        with pytest.raises(LctkError, match="tune_seconds"):
            load_abc_folder(DataRequest(data_dir=tmp_path, options={"tune_seconds": bad}))
