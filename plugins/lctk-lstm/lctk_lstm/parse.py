"""Parsing tunes and files into token windows, in parallel worker processes, with a progress bar.

Workers import only numpy and music21 (never torch), so they start fast. Nothing is unpickled from disk:
music21 parses every file from source, with its own pickle cache turned off. Each job is bounded: a tune past
the caps of `lctk_lstm.bounds`, or one that runs out of its time budget (``tune_seconds``), becomes a
one-line ``Parsed.error`` and the next job starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import multiprocessing
import os
import warnings
from typing import Sequence

import numpy as np

from lctk_lstm.bounds import TUNE_SECONDS, TuneTimeout, in_main_thread, time_budget
from lctk_lstm.encoding import SEQ_LEN

#: Below this many jobs, parse in this process (starting workers costs about a second).
PARALLEL_FROM = 40


@dataclasses.dataclass(frozen=True)
class Job:
    """One unit of parsing: ``kind`` ``abc`` (``payload`` is one tune's ABC text), ``midi`` or ``score`` (a
    file path music21 reads: MusicXML, Humdrum, ...). ``tune`` names it stably; ``source`` is its file."""

    tune: str
    source: str
    kind: str
    payload: str


@dataclasses.dataclass
class Parsed:
    """What a job gave: ``windows (W, 32)`` uint8 tokens, the number of notes read, or a one-line ``error``."""

    tune: str
    source: str
    windows: np.ndarray
    notes: int = 0
    error: str | None = None



def parse_job(job: Job, skip_off_grid: bool = True, voice: str = "auto",
              seconds: float | None = TUNE_SECONDS) -> Parsed:
    """Parse one job (in a worker) within ``seconds``; exceptions and running out of time become
    ``Parsed.error``."""
    from lctk_lstm.extract import melody_from_stream, melody_windows
    from lctk_lstm.midi import melody_from_midi, read_midi

    empty = np.zeros((0, SEQ_LEN), dtype=np.uint8)
    try:
        if job.kind != "midi":  # imported before the clock starts (the first import takes seconds)
            from music21 import converter, stream
        with time_budget(seconds), warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()), \
                contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            if job.kind == "midi":
                melody = melody_from_midi(read_midi(job.payload), voice)
            else:
                if job.kind == "abc":
                    score = converter.parseData(job.payload, format="abc")
                else:
                    score = converter.parseFile(job.payload, forceSource=True, storePickle=False)
                if isinstance(score, stream.Opus):
                    score = score.scores[0] if score.scores else stream.Score()
                melody = melody_from_stream(score)
            windows = melody_windows(melody, skip_off_grid)
        return Parsed(job.tune, job.source, windows, len(melody.notes))
    except (Exception, TuneTimeout) as e:  # a malformed, huge or slow tune is reported by the caller, never fatal
        from lctk.plugin_api import describe  # workers import lctk only when a file fails
        return Parsed(job.tune, job.source, empty, 0, describe(e))


def parse_all(jobs: Sequence[Job], *, progress=None, description: str = "parse", workers: int | None = None,
              skip_off_grid: bool = True, voice: str = "auto", seconds: float | None = TUNE_SECONDS) -> list[Parsed]:
    """Parse ``jobs`` with ``workers`` processes (default: up to 2), in job order, advancing a progress task;
    each job may take ``seconds``. Off the main thread, where the time budget cannot work, music21 jobs always go
    to workers (lctk's own MIDI reader is bounded by the caps alone)."""
    from lctk.plugin_api import silent

    progress = progress or silent()
    work = functools.partial(parse_job, skip_off_grid=skip_off_grid, voice=voice, seconds=seconds)
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    results: list[Parsed] = []
    with progress.task(description, total=len(jobs)) as task:
        budget_here = in_main_thread() or not seconds or all(job.kind == "midi" for job in jobs)  # MIDI: capped
        if (workers <= 1 or len(jobs) < PARALLEL_FROM) and budget_here:
            for job in jobs:
                results.append(work(job))
                task.advance(1)
            return results
        chunk = max(1, min(16, len(jobs) // (8 * workers)))
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for parsed in pool.imap(work, jobs, chunksize=chunk):
                results.append(parsed)
                task.advance(1)
    return results
