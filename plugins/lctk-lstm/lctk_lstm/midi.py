"""A tiny Standard MIDI File writer and reader: melodies (`Note` lists in 16th-note steps) to bytes and back.

Writing: format 0, one track, 4/4, tempo ``bpm``, 480 ticks per quarter. Reading: formats 0 and 1, running
status, meta and sysex events; gives notes per track and channel with their ticks, and the time signatures,
so `melody_from_midi` can pick a line and the 4/4 bars. A file that is not valid MIDI raises `MidiError`; one
longer than the caps of `lctk_lstm.bounds` (length, bars, notes, meter) raises `TuneTooBig` before any
work that grows with its length.
"""

from __future__ import annotations

import dataclasses
import math
import struct
from pathlib import Path

from lctk_lstm.bounds import check_bars, check_denominator, check_length, check_notes
from lctk_lstm.encoding import STEPS_PER_QUARTER, Note
from lctk_lstm.extract import FOUR_FOUR, Melody, skyline

TICKS_PER_QUARTER = 480
DRUM_CHANNEL = 9


class MidiError(ValueError):
    """The bytes are not a readable Standard MIDI File."""


# ----------------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------------


def _varlen(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def notes_to_midi(notes: list[Note], bpm: float = 120.0, program: int = 0, velocity: int = 90) -> bytes:
    """Notes in 16th-note steps -> the bytes of a format-0 MIDI file (4/4, ``bpm``, General MIDI ``program``)."""
    per_step = TICKS_PER_QUARTER // STEPS_PER_QUARTER
    timed = []  # (tick, order, bytes): note-offs (order 0) before note-ons (order 1) at the same tick
    for n in notes:
        timed.append((n.start * per_step, 1, bytes([0x90, n.pitch, velocity])))
        timed.append((n.end * per_step, 0, bytes([0x80, n.pitch, 0])))
    timed.sort(key=lambda e: (e[0], e[1]))
    tempo = round(60_000_000 / bpm)
    track = bytearray()
    track += b"\x00\xff\x58\x04\x04\x02\x18\x08"  # time signature 4/4
    track += b"\x00\xff\x51\x03" + tempo.to_bytes(3, "big")
    track += b"\x00" + bytes([0xC0, program & 0x7F])
    now = 0
    for tick, _, data in timed:
        track += _varlen(tick - now) + data
        now = tick
    track += b"\x00\xff\x2f\x00"
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, TICKS_PER_QUARTER)
    return header + b"MTrk" + struct.pack(">I", len(track)) + bytes(track)


# ----------------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class MidiNote:
    """A note as read: ticks, pitch, and where it came from."""

    start: int
    end: int
    pitch: int
    channel: int
    track: int


@dataclasses.dataclass
class MidiContent:
    """The notes and time signatures (tick, numerator, denominator) of a MIDI file."""

    ticks_per_quarter: int
    notes: list[MidiNote]
    time_signatures: list[tuple[int, int, int]]


def _read_varlen(data: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for _ in range(4):
        if pos >= len(data):
            raise MidiError("truncated variable-length number")
        byte = data[pos]
        pos += 1
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return value, pos
    raise MidiError("variable-length number longer than 4 bytes")


def parse_midi(data: bytes) -> MidiContent:
    """Notes and time signatures of a Standard MIDI File's bytes; `MidiError` when they are not one."""
    if len(data) < 14 or data[:4] != b"MThd":
        raise MidiError("no MThd header (not a MIDI file)")
    length, fmt, ntracks, division = struct.unpack(">IHHH", data[4:14])
    if division & 0x8000:
        raise MidiError("SMPTE time division is not supported")
    if division == 0:
        raise MidiError("zero ticks per quarter note")
    pos = 8 + length
    notes: list[MidiNote] = []
    signatures: list[tuple[int, int, int]] = []
    for track in range(ntracks):
        if data[pos:pos + 4] != b"MTrk":
            if pos >= len(data):
                raise MidiError(f"file ends before track {track + 1} of {ntracks}")
            raise MidiError(f"track {track + 1} lacks its MTrk header")
        (size,) = struct.unpack(">I", data[pos + 4:pos + 8])
        chunk = data[pos + 8:pos + 8 + size]
        if len(chunk) < size:
            raise MidiError(f"track {track + 1} is truncated")
        pos += 8 + size
        _parse_track(chunk, track, notes, signatures)
    check_notes(len(notes))
    check_length(max((n.end for n in notes), default=0) * STEPS_PER_QUARTER / division, "the MIDI file")
    notes.sort(key=lambda n: (n.start, n.pitch))
    signatures.sort()
    return MidiContent(division, notes, signatures)


def _parse_track(chunk: bytes, track: int, notes: list[MidiNote], signatures: list) -> None:
    pos, tick, status = 0, 0, 0
    sounding: dict[tuple[int, int], list[int]] = {}  # (channel, pitch) -> start ticks
    while pos < len(chunk):
        delta, pos = _read_varlen(chunk, pos)
        tick += delta
        if pos >= len(chunk):
            raise MidiError(f"track {track + 1} ends inside an event")
        byte = chunk[pos]
        if byte == 0xFF:  # meta event
            if pos + 2 > len(chunk):
                raise MidiError(f"track {track + 1} ends inside a meta event")
            kind = chunk[pos + 1]
            size, pos = _read_varlen(chunk, pos + 2)
            payload = chunk[pos:pos + size]
            pos += size
            if kind == 0x58 and len(payload) >= 2:
                signatures.append((tick, payload[0], check_denominator(payload[1])))
            elif kind == 0x2F:
                break
            continue
        if byte in (0xF0, 0xF7):  # sysex
            size, pos = _read_varlen(chunk, pos + 1)
            pos += size
            continue
        if byte & 0x80:
            status = byte
            pos += 1
        elif not status:
            raise MidiError(f"track {track + 1} has data without a status byte")
        kind, channel = status & 0xF0, status & 0x0F
        width = 1 if kind in (0xC0, 0xD0) else 2
        if pos + width > len(chunk):
            raise MidiError(f"track {track + 1} ends inside an event")
        args = chunk[pos:pos + width]
        pos += width
        if kind == 0x90 and args[1] > 0:
            sounding.setdefault((channel, args[0]), []).append(tick)
        elif kind == 0x80 or (kind == 0x90 and args[1] == 0):
            starts = sounding.get((channel, args[0]))
            if starts:
                notes.append(MidiNote(starts.pop(0), tick, args[0], channel, track))
    for (channel, pitch), starts in sounding.items():  # never released: end at the track's last tick
        notes.extend(MidiNote(s, max(tick, s + 1), pitch, channel, track) for s in starts)


def read_midi(path: str | Path) -> MidiContent:
    """`parse_midi` of a file."""
    return parse_midi(Path(path).read_bytes())


# ----------------------------------------------------------------------------------------------------------
# MIDI -> melody
# ----------------------------------------------------------------------------------------------------------


def _to_notes(midi_notes: list[MidiNote], tpq: int) -> list[Note]:
    out = []
    for n in midi_notes:
        start = round(n.start * STEPS_PER_QUARTER / tpq)
        end = max(start + 1, round(n.end * STEPS_PER_QUARTER / tpq))
        out.append(Note(start, end, n.pitch))
    return out


def is_monophonic(notes: list[Note]) -> bool:
    """Whether no two notes start together and none overlaps the next by more than one step."""
    ordered = sorted(notes, key=lambda n: n.start)
    return all(b.start > a.start and a.end - b.start <= 1 for a, b in zip(ordered, ordered[1:]))


def midi_bars(content: MidiContent, last_step: int) -> list[tuple[int, bool]]:
    """(start step, complete 4/4 bar?) of every bar up to ``last_step``; 4/4 when the file states no meter."""
    tpq = content.ticks_per_quarter
    signatures = content.time_signatures or [(0, 4, 4)]
    if signatures[0][0] > 0:
        signatures = [(0, 4, 4)] + signatures
    check_bars(_bar_count(signatures, tpq, last_step))
    bars = []
    for i, (tick, num, den) in enumerate(signatures):
        until = signatures[i + 1][0] if i + 1 < len(signatures) else None
        bar_ticks = num * tpq * 4 / den
        if bar_ticks <= 0:
            continue
        t = float(tick)
        while (until is None or t < until) and t * STEPS_PER_QUARTER / tpq < last_step:
            start = t * STEPS_PER_QUARTER / tpq
            complete = f"{num}/{den}" in FOUR_FOUR and abs(start - round(start)) < 1e-6 and \
                (until is None or t + bar_ticks <= until)
            bars.append((round(start), complete))
            t += bar_ticks
    return bars


def _bar_count(signatures: list[tuple[int, int, int]], tpq: int, last_step: int) -> float:
    """How many bars `midi_bars` would lay out (computed, not counted, so that it is cheap)."""
    end = last_step * tpq / STEPS_PER_QUARTER
    total = 0.0
    for i, (tick, num, den) in enumerate(signatures):
        until = min(signatures[i + 1][0], end) if i + 1 < len(signatures) else end
        bar_ticks = num * tpq * 4 / den
        if bar_ticks > 0 and until > tick:
            total += math.ceil((until - tick) / bar_ticks)
    return total


def melody_from_midi(content: MidiContent, voice: str = "auto") -> Melody:
    """One melody from a MIDI file's content (drums ignored).

    ``voice``: ``first-mono``, the first monophonic track; ``highest``, the highest voice over all
    tracks; ``auto`` (default), the first monophonic track lying mostly above middle G (a tune, not a
    bass line), else ``highest``.
    """
    tpq = content.ticks_per_quarter
    pitched = [n for n in content.notes if n.channel != DRUM_CHANNEL]
    chosen: list[Note] | None = None
    if voice in ("auto", "first-mono"):
        lines: dict[tuple[int, int], list[MidiNote]] = {}
        for n in pitched:
            lines.setdefault((n.track, n.channel), []).append(n)
        for key in sorted(lines):
            notes = _to_notes(lines[key], tpq)
            if len(notes) < 4 or not is_monophonic(notes):
                continue
            pitches = sorted(n.pitch for n in notes)
            if voice == "first-mono" or pitches[len(pitches) // 2] >= 55:
                chosen = notes
                break
    if chosen is None and voice != "first-mono":
        chosen = skyline(_to_notes(pitched, tpq))
    chosen = chosen or []
    last = max((n.end for n in chosen), default=0)
    return Melody(chosen, midi_bars(content, last))
