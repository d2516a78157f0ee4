"""Entry point of lctk-lstm: the LSTM VAE backbone, melody datasets, the MIDI writer, melody rules and the
melody evaluator.

Everything is registered as a ``"module:attribute"`` reference, imported only when used, so that listing
plugins imports no torch."""

from lctk import hookimpl

COMMON = {"max_tunes": "parse only the first N tunes or files (e.g. for tests)",
          "transpose": "also every window transposed by -K..K semitones",
          "off_grid": "skip (default) or quantize windows with notes off the 16th grid",
          "workers": "parsing processes (default 2)"}
VOICE = {"voice": "auto (default), highest or first-mono: the line taken from MIDI files"}
BINARY = ("in-c-major, in-g-major, in-d-major, in-f-major, in-bb-major, in-a-minor, in-e-minor, in-d-minor, "
          "dense, sparse, wide-range, narrow-range, stepwise, has-rest")
CONTINUOUS = "density, range, contour, rhythm"
ATTRIBUTES = f"{BINARY}; continuous: {CONTINUOUS}"


@hookimpl
def register_backbones(register):
    register("lstm", "lctk_lstm.model:LSTMVAE", help="LSTM VAE for fixed-length token sequences (MusicVAE-style)")


@hookimpl
def register_datasets(register):
    register("essen", "lctk_lstm.datasets:load_essen", modality="melody",
             help="Essen folksongs from the music21 corpus: about 22,000 unique 2-bar 4/4 windows",
             options=COMMON, attributes=ATTRIBUTES)
    register("music21-corpus", "lctk_lstm.datasets:load_music21_corpus", modality="melody",
             help="a music21 corpus collection: --data-option collection=oneills1850 (airdsAirs, ryansMammoth, ...)",
             options={"collection": "the music21 corpus collection (required)", **COMMON, **VOICE},
             attributes=ATTRIBUTES)
    register("abc-folder", "lctk_lstm.datasets:load_abc_folder", modality="melody",
             help="melodies from ABC files in --data-dir", options=COMMON, attributes=ATTRIBUTES)
    register("midi-folder", "lctk_lstm.datasets:load_midi_folder", modality="melody",
             help="melodies from MIDI files in --data-dir (e.g. Lakh MIDI); --data-option voice=auto|highest|first-mono",
             options={**COMMON, **VOICE}, attributes=ATTRIBUTES)


@hookimpl
def register_writers(register):
    register("melody", "lctk_lstm.writer:MelodyWriter", help="a folder of MIDI files and a piano-roll PNG")


@hookimpl
def register_evaluators(register):
    register("melody", "lctk_lstm.evaluator:MelodyEvaluator",
             help="token accuracy, pitch-class and note-count distances, attribute accuracy")


@hookimpl
def register_rules(register):
    from lctk_lstm.rule_forms import RULE_HELP

    for name, help_text in RULE_HELP.items():
        register(name, f"lctk_lstm.rules:parse_{name}_rule", modality="melody", help=help_text)
