"""Melody datasets: unique 2-bar 4/4 windows of 16th-note tokens from the Essen folksongs, any music21 corpus
collection, or a user's folder of ABC or MIDI files.

Every loader parses once (in parallel, with a progress bar) and caches the windows as HDF5 (`lctk_lstm.cache`).
The split is by tune (a tune's windows all land on the same side): about 10 % of tunes, chosen by a hash of
the tune's name, are test tunes. Options (``--data-option key=value``):

- ``max_tunes=N``: parse only the first N tunes (ABC) or files (others), e.g. for tests;
- ``transpose=K``: add every window transposed by -K..K semitones (kept inside the pitch range);
- ``off_grid=skip|quantize``: drop windows with notes off the 16th grid (triplets; default) or round them;
- ``workers=N``: parsing processes (default 2);
- ``tune_seconds=S``: seconds one tune (one file) may take to parse before it is abandoned and skipped with a
  warning (default 30; `lctk_lstm.bounds` also caps each tune's length, bars and notes before parsing it);
- ``voice=auto|highest|first-mono``: the line taken from MIDI files (see `lctk_lstm.midi.melody_from_midi`);
- ``collection=NAME``: the music21 corpus collection (``music21-corpus`` only).
"""

from __future__ import annotations

import time
import zlib
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from lctk.plugin_api import DataRequest, InMemoryDataset, LctkError, console, subsample
from lctk_lstm import cache, sources
from lctk_lstm.bounds import TUNE_SECONDS
from lctk_lstm.encoding import SEQ_LEN, VOCAB_SIZE
from lctk_lstm.extract import EXTRACT_VERSION
from lctk_lstm.features import CONTINUOUS, attribute_names, attribute_table, continuous_table, transpose
from lctk_lstm.parse import Job, Parsed, parse_all

MODALITY = "melody"
TEST_PERCENT = 10
COMMON_OPTIONS = ("max_tunes", "transpose", "off_grid", "workers", "tune_seconds")


def warn(message: str) -> None:
    """Print ``warning: message`` as one line on stderr."""
    console.print(f"warning: {message}", highlight=False, markup=False, soft_wrap=True)


def _int_option(options: dict[str, str], key: str, low: int, high: int | None = None) -> int | None:
    if key not in options:
        return None
    try:
        value = int(options[key])
    except ValueError:
        value = None
    if value is None or value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise LctkError(f"--data-option {key}={options[key]} should be a whole number {bound}")
    return value


def _seconds_option(options: dict[str, str]) -> float:
    if "tune_seconds" not in options:
        return TUNE_SECONDS
    try:
        value = float(options["tune_seconds"])
    except ValueError:
        value = float("nan")
    if not 0.1 <= value <= 86400:
        raise LctkError(f"--data-option tune_seconds={options['tune_seconds']} should be a number of seconds "
                        "from 0.1 to 86400")
    return value


def _check_options(name: str, options: dict[str, str], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise LctkError(f"dataset {name} has no option {', '.join(unknown)}; it accepts {', '.join(allowed)}")
    if options.get("off_grid", "skip") not in ("skip", "quantize"):
        raise LctkError(f"--data-option off_grid={options['off_grid']} should be skip or quantize")
    if options.get("voice", "auto") not in ("auto", "highest", "first-mono"):
        raise LctkError(f"--data-option voice={options['voice']} should be auto, highest or first-mono")


def tune_split(tunes: list[str]) -> np.ndarray:
    """``(n,)`` int8: 1 for test tunes (a stable hash of the name picks about 10 %), 0 for training ones.
    When every tune would be a test tune, all are training tunes."""
    split = np.array([1 if zlib.crc32(t.encode()) % 100 < TEST_PERCENT else 0 for t in tunes], dtype=np.int8)
    return split if (split == 0).any() else np.zeros_like(split)


def assemble(name: str, results: list[Parsed], warnings: list[str], per_file: bool) -> cache.Extracted:
    """Unique windows (first occurrence kept, in tune order) and warnings from parsed jobs.

    ``per_file``: one warning line per file with problems (users' folders); else one summary line.
    """
    by_file: dict[str, list[Parsed]] = {}
    for r in results:
        by_file.setdefault(r.source, []).append(r)
    failed = [r for r in results if r.error]
    if per_file:
        for source, parts in by_file.items():
            bad = [r for r in parts if r.error]
            if bad and len(parts) == 1:
                warnings.append(f"{source}: unreadable ({bad[0].error}); skipped")
            elif bad:
                warnings.append(f"{source}: {len(bad)} of {len(parts)} tunes unreadable ({bad[0].error}); skipped them")
            elif sum(r.notes for r in parts) == 0:
                warnings.append(f"{source}: no notes found; skipped")
    elif failed:
        warnings.append(f"{len(failed)} of {len(results)} tunes of {name} could not be parsed and were skipped "
                        f"(first: {failed[0].tune}: {failed[0].error})")
    tunes = [r.tune for r in results]
    windows = [r.windows for r in results]
    owner = [np.full(len(r.windows), i, dtype=np.int32) for i, r in enumerate(results)]
    all_windows = np.concatenate(windows) if windows else np.zeros((0, SEQ_LEN), dtype=np.uint8)
    all_owner = np.concatenate(owner) if owner else np.zeros(0, dtype=np.int32)
    if len(all_windows):
        _, first = np.unique(all_windows, axis=0, return_index=True)
        first.sort()
    else:
        first = np.zeros(0, dtype=np.int64)
    info = {"tunes_parsed": len(results), "tunes_failed": len(failed),
            "tunes_with_windows": int(sum(len(w) > 0 for w in windows)),
            "windows_total": int(len(all_windows)), "windows": int(len(first))}
    return cache.Extracted(all_windows[first], all_owner[first], tunes, tune_split(tunes), warnings, info)


def extract(name: str, request: DataRequest, key: dict[str, Any],
            make_jobs: Callable[[list[str]], list[Job]], per_file: bool, voice: str = "auto") -> cache.Extracted:
    """The cached windows of ``name`` for ``key``, parsing ``make_jobs(warnings)`` on a miss."""
    options = request.options
    max_tunes = _int_option(options, "max_tunes", 1)
    workers = _int_option(options, "workers", 1, 64)
    seconds = _seconds_option(options)
    off_grid = options.get("off_grid", "skip")
    key = {"extract_version": EXTRACT_VERSION, "dataset": name, "max_tunes": max_tunes, "off_grid": off_grid,
           "voice": voice, **key}
    path = cache.cache_path(name, key)
    data = cache.load(path)
    if data is None:
        started = time.perf_counter()
        warnings: list[str] = []
        jobs = make_jobs(warnings)
        if max_tunes is not None:
            jobs = jobs[:max_tunes]
        results = parse_all(jobs, progress=request.progress, description=f"parse {name}", workers=workers,
                            skip_off_grid=off_grid == "skip", voice=voice, seconds=seconds)
        data = assemble(name, results, warnings, per_file)
        data.info["parse_seconds"] = round(time.perf_counter() - started, 1)
        cache.save(path, data)
        console.print(f"{name}: {data.info['windows']} unique 2-bar windows from {data.info['tunes_with_windows']} "
                      f"of {len(jobs)} tunes ({data.info['parse_seconds']:.0f} s); cached in {path}",
                      highlight=False, markup=False, soft_wrap=True)
    for message in data.warnings:
        warn(message)
    return data


def build(name: str, data: cache.Extracted, request: DataRequest) -> InMemoryDataset:
    """The dataset from extracted windows: transposed copies if asked, split by tune, attributes computed."""
    if len(data.windows) == 0:
        raise LctkError(f"dataset {name} found no 2-bar 4/4 windows ({data.info.get('tunes_parsed', 0)} tunes "
                        "parsed); it needs melodies in 4/4 or 2/2 with complete bars")
    examples = torch.from_numpy(data.windows.astype(np.int64))  # (N, T)
    owner = torch.from_numpy(data.tune.astype(np.int64))  # (N,)
    shift = _int_option(request.options, "transpose", 0, 12) or 0
    if shift:
        parts, owners = [examples], [owner]
        for k in [k for k in range(-shift, shift + 1) if k]:
            moved, ok = transpose(examples, k)  # (N, T), (N,)
            parts.append(moved[ok])
            owners.append(owner[ok])
        stacked, owners_all = torch.cat(parts), torch.cat(owners)
        _, inverse = torch.unique(stacked, dim=0, return_inverse=True)
        first = torch.full((int(inverse.max()) + 1,), len(stacked), dtype=torch.long)
        first.scatter_reduce_(0, inverse, torch.arange(len(stacked)), reduce="amin")
        keep = first.sort().values
        examples, owner = stacked[keep], owners_all[keep]
    split = torch.from_numpy(data.tune_split.astype(np.int8))[owner]  # (N,)
    keep = subsample(split, request.max_examples, request.seed)
    examples, owner, split = examples[keep].contiguous(), owner[keep], split[keep]
    names = attribute_names()
    meta = {"tunes": data.tunes, "tune_of_window": owner, **data.info}
    return InMemoryDataset(name, MODALITY, examples, attribute_table(examples, names), names, split,
                           {"seq_len": SEQ_LEN, "vocab_size": VOCAB_SIZE}, meta=meta,
                           continuous=continuous_table(examples), continuous_names=list(CONTINUOUS))


def _music21_version() -> str:
    try:
        return metadata.version("music21")
    except metadata.PackageNotFoundError:
        return "?"


def _folder(request: DataRequest, name: str, kind: str) -> Path:
    if request.data_dir is None:
        raise LctkError(f"dataset {name} needs --data-dir, a folder of {kind} files")
    folder = Path(request.data_dir).expanduser()
    if not folder.is_dir():
        raise LctkError(f"--data-dir {folder} is not a folder; pass a folder of {kind} files")
    return folder


def _abc_dataset(name: str, folder: Path, request: DataRequest, per_file: bool, cache_name: str | None = None,
                 extra_suffixes: tuple[str, ...] = ()) -> InMemoryDataset:
    files = sources.list_files(folder, sources.ABC_SUFFIXES + extra_suffixes)
    if not files:
        raise LctkError(f"no {'/'.join(s[1:] for s in sources.ABC_SUFFIXES + extra_suffixes)} files in {folder}")

    def make_jobs(warnings: list[str]) -> list[Job]:
        abc = [p for p in files if p.suffix.lower() in sources.ABC_SUFFIXES]
        jobs, _ = sources.abc_jobs(folder, abc, warnings)
        return jobs + sources.file_jobs(folder, [p for p in files if p not in abc])

    key = {"folder": str(folder.resolve()), "files": sources.signature(folder, files), "music21": _music21_version()}
    data = extract(cache_name or name, request, key, make_jobs, per_file, request.options.get("voice", "auto"))
    return build(name, data, request)


def load_essen(request: DataRequest) -> InMemoryDataset:
    """The Essen folksong collection shipped with music21 (about 22,000 unique 2-bar 4/4 windows)."""
    _check_options("essen", request.options, COMMON_OPTIONS)
    return _abc_dataset("essen", sources.music21_corpus() / "essenFolksong", request, per_file=False)


def load_music21_corpus(request: DataRequest) -> InMemoryDataset:
    """A collection of the music21 corpus: ``--data-option collection=NAME`` (oneills1850, airdsAirs, ...)."""
    _check_options("music21-corpus", request.options, COMMON_OPTIONS + ("collection", "voice"))
    collection = request.options.get("collection")
    if not collection:
        raise LctkError("dataset music21-corpus needs --data-option collection=NAME, e.g. oneills1850, airdsAirs "
                        "or ryansMammoth")
    folder = sources.collection_folder(collection)
    return _abc_dataset("music21-corpus", folder, request, per_file=False, cache_name=f"music21-{folder.name}",
                        extra_suffixes=sources.SCORE_SUFFIXES + sources.MIDI_SUFFIXES)


def load_abc_folder(request: DataRequest) -> InMemoryDataset:
    """Melodies from a folder of ABC files (``--data-dir``); 4/4 and 2/2 tunes are used."""
    _check_options("abc-folder", request.options, COMMON_OPTIONS)
    return _abc_dataset("abc-folder", _folder(request, "abc-folder", "ABC (.abc)"), request, per_file=True)


def load_midi_folder(request: DataRequest) -> InMemoryDataset:
    """Melodies from a folder of MIDI files (``--data-dir``, e.g. Lakh MIDI): one line per file, 4/4 bars."""
    _check_options("midi-folder", request.options, COMMON_OPTIONS + ("voice",))
    folder = _folder(request, "midi-folder", "MIDI (.mid)")
    files = sources.list_files(folder, sources.MIDI_SUFFIXES)
    if not files:
        raise LctkError(f"no .mid or .midi files in {folder}")
    voice = request.options.get("voice", "auto")
    key = {"folder": str(folder.resolve()), "files": sources.signature(folder, files)}
    data = extract("midi-folder", request, key, lambda warnings: sources.file_jobs(folder, files),
                   per_file=True, voice=voice)
    return build("midi-folder", data, request)
