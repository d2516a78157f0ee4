"""Fixtures of the lctk-lstm tests: the shared `run_cli` and `fresh_plugins` from the repository's
tests/conftest.py, a private melody cache, and small ABC and MIDI files written by the tests."""

from __future__ import annotations

import lctk  # noqa: F401  (first: its thread wait policy must be set before torch loads OpenMP)
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.conftest import fresh_plugins, run_cli  # noqa: E402,F401  (shared fixtures)

#: Essen tunes parsed by the tests: enough for a few thousand windows, a few seconds of parsing.
ESSEN_TUNES = 200

ODE_TO_JOY = """X:1
T:Ode to joy
M:4/4
L:1/4
K:C
E E F G | G F E D | C C D E | E3/2 D/2 D2 |
"""

TWO_TUNES = """%abc-2.1
X:1
T:Scale
M:4/4
L:1/8
K:G
GABc defg | g2 f2 e2 d2 | c4 B4 | G8 |

X:2
T:Waltz (3/4, not used)
M:3/4
L:1/4
K:C
C E G | c2 G | E3 |
"""

MALFORMED_ABC = """X:1
T:Broken
M:4/4
L:1/8
K:C
[CEG [ceg (3abc | CDEF GABc |
"""


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One torch thread per test: on shared, busy cores OpenMP's spin-waiting makes two threads run small LSTM
    steps a hundred times slower. The previous setting is restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session", autouse=True)
def melody_cache(tmp_path_factory) -> Path:
    """The tests cache melodies in one private folder per session (so Essen is parsed once, and never into
    the user's cache)."""
    folder = tmp_path_factory.mktemp("lctk-melody-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LCTK_CACHE", str(folder))
        yield folder


@pytest.fixture
def abc_dir(tmp_path) -> Path:
    """A folder of ABC files: one tune, two tunes (one in 3/4), and one malformed file."""
    folder = tmp_path / "abc"
    (folder / "sub").mkdir(parents=True)
    (folder / "ode.abc").write_text(ODE_TO_JOY)
    (folder / "sub" / "two.abc").write_text(TWO_TUNES)
    (folder / "broken.abc").write_text(MALFORMED_ABC)
    return folder


def write_music21_midi(path: Path, pitches_and_lengths, chords=()) -> Path:
    """A 4/4 MIDI file written by music21: a melody of (MIDI pitch or None for a rest, quarter length)
    and optional (offset, [pitches], quarter length) chords in a second part below it."""
    from music21 import chord, meter, note, stream

    melody = stream.Part()
    melody.append(meter.TimeSignature("4/4"))
    for pitch, length in pitches_and_lengths:
        melody.append(note.Rest(quarterLength=length) if pitch is None else note.Note(pitch, quarterLength=length))
    score = stream.Score([melody])
    if chords:
        accompaniment = stream.Part()
        accompaniment.append(meter.TimeSignature("4/4"))
        for offset, pitches, length in chords:
            accompaniment.insert(offset, chord.Chord(pitches, quarterLength=length))
        score.insert(0, accompaniment)
    score.write("midi", fp=str(path))
    return path
