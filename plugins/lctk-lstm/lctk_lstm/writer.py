"""The melody writer: a folder with one MIDI file per melody, all of them in one MIDI file, and a piano-roll
PNG; reading a user's MIDI, ABC or MusicXML file for ``lctk transform --input``."""

from __future__ import annotations

import io
import math
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from lctk.plugin_api import LctkError, Media, Writer, atomic_path, write_bytes
from lctk_lstm import sources
from lctk_lstm.encoding import SEQ_LEN, STEPS_PER_BAR, VOCAB_SIZE, Note, tokens_to_events
from lctk_lstm.midi import notes_to_midi
from lctk_lstm.parse import Job, parse_job
from lctk_lstm.pianoroll import COLORS, grid, pitch_window, roll
from lctk_lstm.synth import synthesize, wav_bytes

ROLL_FILE = "pianoroll.png"
ALL_FILE = "all.mid"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9#+-]+", "_", text).strip("_") or "row"


def _folder(path: Path) -> Path:
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise LctkError(f"{path} is a file, but melodies are written to a folder; choose another --out")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _save_png(image, path: Path) -> Path:
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")
    return path


def _concatenated(melodies: Sequence[np.ndarray]) -> list[Note]:
    """All melodies one after another, a bar of silence between them."""
    notes, offset = [], 0
    for tokens in melodies:
        notes += [Note(n.start + offset, n.end + offset, n.pitch) for n in tokens_to_events(tokens)]
        offset += len(tokens) + STEPS_PER_BAR
    return notes


def _check(outputs: torch.Tensor, what: str) -> np.ndarray:
    if outputs.dim() != 2:
        raise LctkError(f"{what}: melodies are (B, T) tokens, got shape {tuple(outputs.shape)}")
    return outputs.detach().cpu().long().numpy()


class MelodyWriter(Writer):
    """Melodies to a folder: ``NNN.mid`` (or ``LABEL-NN.mid``), ``all.mid`` and ``pianoroll.png``."""

    default_suffix = ""
    input_suffixes = (*sources.MIDI_SUFFIXES, *sources.ABC_SUFFIXES, *sources.SCORE_SUFFIXES)

    def render(self, outputs: torch.Tensor) -> list[list[Media]]:
        """Each melody as a piano roll (PNG), a sound (WAV, from `lctk_lstm.synth`) and a MIDI file."""
        batch = _check(outputs, "render")
        low, high = pitch_window(batch)
        rendered = []
        for i, tokens in enumerate(batch):
            buffer = io.BytesIO()
            roll(tokens, low, high).save(buffer, format="PNG")
            rendered.append([Media("image/png", buffer.getvalue(), f"{i:03d}.png"),
                             Media("audio/wav", wav_bytes(synthesize(tokens)), f"{i:03d}.wav"),
                             Media("audio/midi", notes_to_midi(tokens_to_events(tokens)), f"{i:03d}.mid")])
        return rendered

    def write_batch(self, outputs: torch.Tensor, path: Path, *, columns: int | None = None,
                    labels: Sequence[str] | None = None) -> list[Path]:
        """One MIDI file per melody, all in one MIDI, and a piano roll of the batch (rows named by ``labels``)."""
        batch = _check(outputs, "write_batch")
        folder = _folder(path)
        if len(batch) == 0:
            raise LctkError("no melodies to write")
        if labels and not columns:
            columns = math.ceil(len(batch) / len(labels))
        columns = columns or min(8, len(batch))
        rows = math.ceil(len(batch) / columns)
        labels = list(labels) if labels and len(labels) == rows else None
        files = []
        for i, tokens in enumerate(batch):
            name = f"{_slug(labels[i // columns])}-{i % columns:02d}.mid" if labels else f"{i:03d}.mid"
            write_bytes(folder / name, notes_to_midi(tokens_to_events(tokens)))
            files.append(folder / name)
        write_bytes(folder / ALL_FILE, notes_to_midi(_concatenated(batch)))
        low, high = pitch_window(batch)
        image = grid([roll(t, low, high) for t in batch], columns, labels)
        files += [folder / ALL_FILE, _save_png(image, folder / ROLL_FILE)]
        return files

    def write_pairs(self, before: torch.Tensor, after: torch.Tensor, path: Path) -> list[Path]:
        """Piano rolls of each input (blue) beside its edit (orange), and MIDI files of both."""
        a, b = _check(before, "write_pairs"), _check(after, "write_pairs")
        if a.shape != b.shape:
            raise LctkError(f"write_pairs: before {a.shape} and after {b.shape} differ in shape")
        folder = _folder(path)
        files = []
        for i, (x, y) in enumerate(zip(a, b)):
            for tag, tokens in (("before", x), ("after", y)):
                write_bytes(folder / f"{i:03d}-{tag}.mid", notes_to_midi(tokens_to_events(tokens)))
                files.append(folder / f"{i:03d}-{tag}.mid")
        write_bytes(folder / ALL_FILE, notes_to_midi(_concatenated([t for pair in zip(a, b) for t in pair])))
        low, high = pitch_window(np.concatenate([a, b]))
        cells = [roll(t, low, high, COLORS[k]) for pair in zip(a, b) for k, t in enumerate(pair)]
        per_row = max(1, min(4, math.ceil(math.sqrt(len(a) / 2))))
        files += [folder / ALL_FILE, _save_png(grid(cells, 2 * per_row, group=2), folder / ROLL_FILE)]
        return files

    def read_input(self, path: Path, spec: Mapping[str, Any]) -> torch.Tensor:
        """The first complete 2-bar 4/4 window of a MIDI, ABC or MusicXML file as ``(1, 32)`` tokens."""
        if spec.get("seq_len", SEQ_LEN) != SEQ_LEN or spec.get("vocab_size", VOCAB_SIZE) != VOCAB_SIZE:
            raise LctkError(f"this run's data has seq_len {spec.get('seq_len')} and vocab_size {spec.get('vocab_size')}; "
                            f"melody files read as {SEQ_LEN} steps over {VOCAB_SIZE} tokens")
        path = Path(path)
        if not path.is_file():
            raise LctkError(f"input file {path} does not exist")
        suffix = path.suffix.lower()
        if suffix in sources.MIDI_SUFFIXES:
            jobs = [Job(path.name, path.name, "midi", str(path))]
        elif suffix in sources.ABC_SUFFIXES:
            try:
                tunes = sources.split_abc(sources.read_text(path))
            except (OSError, ValueError) as e:
                raise LctkError(f"input {path} is not readable ABC ({e})") from None
            jobs = [Job(f"{path.name}#{i + 1}", path.name, "abc", t) for i, t in enumerate(tunes)]
        elif suffix in sources.SCORE_SUFFIXES:
            jobs = [Job(path.name, path.name, "score", str(path))]
        else:
            raise LctkError(f"input {path} should be a MIDI (.mid), ABC (.abc) or MusicXML (.xml, .mxl) file")
        errors = []
        for job in jobs:
            parsed = parse_job(job, skip_off_grid=False)
            if parsed.error:
                errors.append(parsed.error)
            elif len(parsed.windows):
                return torch.from_numpy(parsed.windows[:1].astype(np.int64))  # (1, T)
        if errors and len(errors) == len(jobs):
            raise LctkError(f"input {path} could not be read ({errors[0]})")
        raise LctkError(f"input {path} has no two complete bars of 4/4 (or 2/2) with notes; lctk melodies are "
                        "2-bar 4/4 windows")
