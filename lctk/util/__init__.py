"""Utilities every pipeline stage uses: errors, atomic file writing and safe readers, progress bars, interrupts,
checkpoints, multi-process helpers, config validation, media bytes, output paths and modality-free measures.

Nothing here knows about runs, backbones or constraints; the pipeline stages at the package root build on it.
"""
