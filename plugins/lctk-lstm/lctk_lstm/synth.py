"""A small synthesiser: melody tokens to a mono 16-bit WAV that a browser can play (no sound fonts, nothing
fetched). Each note is a few harmonics of its pitch under a short attack and an exponential decay."""

from __future__ import annotations

import io
import wave

import numpy as np

from lctk_lstm.encoding import STEPS_PER_QUARTER, tokens_to_events

SAMPLE_RATE = 22_050
TEMPO_BPM = 120
HARMONICS = (1.0, 0.35, 0.12)  # amplitudes of the fundamental and two overtones
ATTACK_S, RELEASE_S, DECAY_PER_S = 0.01, 0.03, 2.5


def step_seconds(tempo_bpm: float = TEMPO_BPM) -> float:
    """Length of one token step (a 16th note) in seconds."""
    return 60.0 / tempo_bpm / STEPS_PER_QUARTER


def synthesize(tokens: np.ndarray, tempo_bpm: float = TEMPO_BPM, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """``(T,)`` tokens -> ``(S,)`` float32 samples in [-1, 1], S = T steps at ``tempo_bpm``."""
    step = step_seconds(tempo_bpm)
    total = int(round(len(tokens) * step * sample_rate))
    audio = np.zeros(total + int(RELEASE_S * sample_rate) + 1, dtype=np.float64)
    for note in tokens_to_events(tokens):
        start = int(round(note.start * step * sample_rate))
        length = int(round((note.end - note.start) * step * sample_rate))
        t = np.arange(length + int(RELEASE_S * sample_rate)) / sample_rate  # (L,) seconds since the onset
        freq = 440.0 * 2.0 ** ((note.pitch - 69) / 12)
        wave_ = sum(a * np.sin(2 * np.pi * freq * (k + 1) * t) for k, a in enumerate(HARMONICS))
        envelope = np.minimum(1.0, t / ATTACK_S) * np.exp(-DECAY_PER_S * t)
        release = np.clip(1.0 - (t - length / sample_rate) / RELEASE_S, 0.0, 1.0)  # fade after the note ends
        audio[start:start + len(t)] += wave_ * envelope * release
    peak = np.abs(audio).max()
    if peak > 0:
        audio *= 0.8 / peak
    return audio[:total].astype(np.float32)


def wav_bytes(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """``(S,)`` float samples in [-1, 1] as a mono 16-bit PCM WAV file."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).round().astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()
