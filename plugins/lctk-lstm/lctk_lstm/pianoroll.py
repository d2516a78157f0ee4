"""Piano-roll pictures of melody tokens (pillow): time left to right, pitch bottom to top, bar and beat lines,
C rows shaded, note starts marked darker."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from lctk_lstm.encoding import STEPS_PER_BAR, STEPS_PER_QUARTER, tokens_to_events

CELL_W, CELL_H = 5, 4
GAP = 6
MIN_SPAN = 24
WHITE, C_ROW, BEAT, BAR, FRAME = (255, 255, 255), (238, 238, 238), (225, 225, 225), (170, 170, 170), (120, 120, 120)
COLORS = ((40, 90, 170), (200, 90, 30))  # notes of the first and second melody of a pair
ONSET_SHADE = 0.6


def pitch_window(batch: np.ndarray) -> tuple[int, int]:
    """(low, high) MIDI pitches to draw for ``(B, T)`` tokens: the notes' range padded, at least two octaves."""
    pitches = [n.pitch for row in batch for n in tokens_to_events(row)]
    if not pitches:
        return 60 - MIN_SPAN // 2, 60 + MIN_SPAN // 2
    low, high = min(pitches) - 2, max(pitches) + 2
    if high - low < MIN_SPAN:
        extra = MIN_SPAN - (high - low)
        low, high = low - extra // 2, high + extra - extra // 2
    return low, high


def roll(tokens: np.ndarray, low: int, high: int, color=COLORS[0]) -> Image.Image:
    """One melody ``(T,)`` as an RGB image, pitches ``low..high``."""
    steps, rows = len(tokens), high - low + 1
    img = Image.new("RGB", (steps * CELL_W + 1, rows * CELL_H + 1), WHITE)
    draw = ImageDraw.Draw(img)
    for pitch in range(low, high + 1):
        if pitch % 12 == 0:
            y = (high - pitch) * CELL_H
            draw.rectangle([0, y, steps * CELL_W, y + CELL_H - 1], fill=C_ROW)
    for step in range(0, steps + 1, STEPS_PER_QUARTER):
        shade = BAR if step % STEPS_PER_BAR == 0 else BEAT
        draw.line([(step * CELL_W, 0), (step * CELL_W, rows * CELL_H)], fill=shade)
    onset = tuple(int(c * ONSET_SHADE) for c in color)
    for note in tokens_to_events(tokens):
        if not low <= note.pitch <= high:
            continue
        y = (high - note.pitch) * CELL_H
        draw.rectangle([note.start * CELL_W + 1, y + 1, note.end * CELL_W - 1, y + CELL_H - 1], fill=color)
        draw.rectangle([note.start * CELL_W + 1, y + 1, note.start * CELL_W + 1, y + CELL_H - 1], fill=onset)
    draw.rectangle([0, 0, img.width - 1, img.height - 1], outline=FRAME)
    return img


def grid(cells: Sequence[Image.Image], columns: int, labels: Sequence[str] | None = None,
         group: int = 1) -> Image.Image:
    """Images in rows of ``columns``; an extra gap after every ``group`` images; ``labels`` (one per row) on
    the left."""
    columns = max(1, columns)
    rows = math.ceil(len(cells) / columns)
    w, h = cells[0].size
    group_gap = GAP * 2 if group > 1 else 0
    margin = 8 + 7 * max(len(s) for s in labels) if labels else 0
    width = margin + columns * (w + GAP) + (columns // group) * group_gap + GAP
    canvas = Image.new("RGB", (width, rows * (h + GAP) + GAP), WHITE)
    draw = ImageDraw.Draw(canvas)
    for i, cell in enumerate(cells):
        r, c = divmod(i, columns)
        x = margin + GAP + c * (w + GAP) + (c // group) * group_gap
        canvas.paste(cell, (x, GAP + r * (h + GAP)))
    for r, text in enumerate(labels or []):
        draw.text((4, GAP + r * (h + GAP) + h // 2 - 5), text, fill=(0, 0, 0))
    return canvas
