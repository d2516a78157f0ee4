"""How the melody rules are written, and their help (imports no torch, so `lctk plugins` stays fast)."""

from lctk_lstm.encoding import SEQ_LEN

KEY_FORMS = "key=C, key=Am, key=F#, key=Bb minor (any major or minor key)"
DENSITY_FORMS = f"density>=N, density<=N, density>N, density<N or density=N (N notes, 0..{SEQ_LEN})"
RANGE_FORMS = "range=LOW..HIGH with MIDI numbers or note names, e.g. range=C4..C5 or range=60..72"

#: Rule name -> help, as registered with lctk; the parser of rule NAME is ``lctk_lstm.rules.parse_NAME_rule``.
RULE_HELP = {
    "key": f"every note in a key's scale: {KEY_FORMS}",
    "density": f"number of notes: {DENSITY_FORMS}",
    "range": f"every note in a pitch range: {RANGE_FORMS}",
}
