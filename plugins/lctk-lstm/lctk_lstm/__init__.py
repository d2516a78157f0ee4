"""lctk-lstm: an LSTM VAE for token sequences and everything lctk needs for 2-bar melodies.

Modules: `model` (the backbone), `encoding` (melody tokens <-> notes), `extract` (scores -> windows), `midi`
(tiny MIDI reader/writer), `sources`/`parse`/`cache`/`datasets` (the melody datasets), `features` and
`theory` (attributes, keys, pitch names), `rules`, `writer`/`pianoroll`, `evaluator`; `plugin` registers them.
"""

__version__ = "0.1.0"
