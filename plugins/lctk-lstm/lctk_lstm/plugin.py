"""Entry point of lctk-lstm: the LSTM VAE backbone, melody datasets, the MIDI writer, melody rules and the
melody evaluator."""

from lctk import hookimpl


@hookimpl
def register_backbones(register):
    from lctk_lstm.model import LSTMVAE

    register("lstm", LSTMVAE, help="LSTM VAE for fixed-length token sequences (MusicVAE-style)")


@hookimpl
def register_datasets(register):
    from lctk_lstm import datasets

    register("essen", datasets.load_essen, modality="melody",
             help="Essen folksongs from the music21 corpus: about 22,000 unique 2-bar 4/4 windows")
    register("music21-corpus", datasets.load_music21_corpus, modality="melody",
             help="a music21 corpus collection: --data-option collection=oneills1850 (airdsAirs, ryansMammoth, ...)")
    register("abc-folder", datasets.load_abc_folder, modality="melody", help="melodies from ABC files in --data-dir")
    register("midi-folder", datasets.load_midi_folder, modality="melody",
             help="melodies from MIDI files in --data-dir (e.g. Lakh MIDI); --data-option voice=auto|highest|first-mono")


@hookimpl
def register_writers(register):
    from lctk_lstm.writer import MelodyWriter

    register("melody", MelodyWriter(), help="a folder of MIDI files and a piano-roll PNG")


@hookimpl
def register_evaluators(register):
    from lctk_lstm.evaluator import MelodyEvaluator

    register("melody", MelodyEvaluator, help="token accuracy, pitch-class and note-count distances, attribute accuracy")


@hookimpl
def register_rules(register):
    from lctk_lstm.rules import RULES

    for name, (parser, help_text) in RULES.items():
        register(name, parser, modality="melody", help=help_text)
