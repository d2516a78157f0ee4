"""Where melodies come from: the music21 corpus shipped in its wheel, users' ABC and MIDI folders; turned
into parsing `Job` s (one per ABC tune, one per other file)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Iterable

from lctk.plugin_api import LctkError
from lctk_lstm.parse import Job

ABC_SUFFIXES = (".abc",)
MIDI_SUFFIXES = (".mid", ".midi")
SCORE_SUFFIXES = (".xml", ".mxl", ".musicxml", ".krn")
#: A tune is worth parsing only if it states a meter with 16-step bars somewhere (header or inline field).
_FOUR_FOUR_METER = re.compile(r"(?m)(^\s*M:\s*(4/4|2/2|C\|?)\s*(%.*)?$)|\[M:\s*(4/4|2/2|C\|?)\s*\]")
_TUNE_START = re.compile(r"(?m)^(?=X:)")
_FIELD = re.compile(r"(?m)^[A-Za-z]:")


def music21_corpus() -> Path:
    """The ``corpus`` folder inside the installed music21 package (found without importing music21)."""
    spec = importlib.util.find_spec("music21")
    if spec is None or not spec.submodule_search_locations:
        raise LctkError("music21 is not installed; install it with `pip install music21`")
    folder = Path(list(spec.submodule_search_locations)[0]) / "corpus"
    if not folder.is_dir():
        raise LctkError(f"music21 at {folder.parent} ships no corpus; install the full music21 wheel")
    return folder


def collections() -> list[str]:
    """Names of the collections (sub-folders) of the music21 corpus."""
    return sorted(p.name for p in music21_corpus().iterdir() if p.is_dir() and not p.name.startswith("_"))


def collection_folder(name: str) -> Path:
    """The folder of corpus collection ``name`` (case-insensitive); a one-line error listing some valid ones."""
    known = collections()
    match = {c.lower(): c for c in known}.get(name.strip().lower())
    if match is None:
        folk = [c for c in ("essenFolksong", "oneills1850", "airdsAirs", "ryansMammoth") if c in known]
        others = [c for c in known if c not in folk]
        raise LctkError(f"unknown music21 collection {name!r}; try one of {', '.join(folk + others[:6])} "
                        f"({len(known)} in all, see {music21_corpus()})")
    return music21_corpus() / match


def read_text(path: Path) -> str:
    """A text file as str (UTF-8, else Latin-1); ValueError for binary files."""
    data = path.read_bytes()
    if b"\x00" in data:
        raise ValueError("binary data (not a text file)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def split_abc(text: str) -> list[str]:
    """The tunes of an ABC file (each from its ``X:`` line), with the file header's fields prepended.
    A file without ``X:`` lines but with a ``K:`` field is one tune."""
    parts = _TUNE_START.split(text)
    header, tunes = parts[0], parts[1:]
    if not tunes:
        return [text] if re.search(r"(?m)^K:", text) else []
    fields = "\n".join(line for line in header.splitlines() if _FIELD.match(line))
    if fields:
        tunes = [t.replace("\n", "\n" + fields + "\n", 1) if "\n" in t else t for t in tunes]
    return tunes


def has_four_four(tune: str) -> bool:
    """Whether an ABC tune states a 4/4 or 2/2 meter anywhere."""
    return bool(_FOUR_FOUR_METER.search(tune))


def list_files(folder: Path, suffixes: Iterable[str]) -> list[Path]:
    """Files under ``folder`` (recursively) with one of ``suffixes`` (case-insensitive), sorted."""
    suffixes = tuple(s.lower() for s in suffixes)
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)


def abc_jobs(folder: Path, files: list[Path], warn: list[str]) -> tuple[list[Job], int]:
    """One job per 4/4 tune in ``files``; unreadable files are added to ``warn``. Also returns the number of
    tunes seen."""
    jobs, seen = [], 0
    for path in files:
        rel = path.relative_to(folder).as_posix()
        try:
            tunes = split_abc(read_text(path))
        except (OSError, ValueError) as e:
            warn.append(f"{path}: unreadable ({e}); skipped")
            continue
        if not tunes:
            warn.append(f"{path}: no ABC tune in it (no X: or K: field); skipped")
            continue
        seen += len(tunes)
        jobs += [Job(f"{rel}#{i + 1}", rel, "abc", t) for i, t in enumerate(tunes) if has_four_four(t)]
    return jobs, seen


def file_jobs(folder: Path, files: list[Path]) -> list[Job]:
    """One job per MIDI or score file."""
    jobs = []
    for path in files:
        rel = path.relative_to(folder).as_posix()
        kind = "midi" if path.suffix.lower() in MIDI_SUFFIXES else "score"
        jobs.append(Job(rel, rel, kind, str(path)))
    return jobs


def signature(folder: Path, files: list[Path]) -> list[tuple[str, int, int]]:
    """(relative path, size, mtime) of each file: changes when the folder's content does."""
    out = []
    for p in files:
        st = p.stat()
        out.append((p.relative_to(folder).as_posix(), st.st_size, st.st_mtime_ns))
    return out
