"""Outputs as media a person can see or hear (PNG, WAV, MIDI, ...), in memory, for the explorer.

A `lctk.interfaces.Writer` turns a batch of decoded outputs into one list of `Media` per output with
``Writer.render``. The default works for any writer: it writes each output with ``write_batch`` into a private
temporary folder and reads the files back; writers override it to render directly.
"""

from __future__ import annotations

import dataclasses
import mimetypes
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from torch import Tensor

if TYPE_CHECKING:
    from lctk.interfaces import Writer

#: Types a browser shows or plays inline; anything else is offered as a download.
INLINE = ("image/png", "image/jpeg", "image/gif", "image/svg+xml", "audio/wav", "audio/ogg", "audio/mpeg")


@dataclasses.dataclass(frozen=True)
class Media:
    """One rendering of one output: ``mime`` type, the bytes, and a file ``name`` for downloads."""

    mime: str
    data: bytes
    name: str

    @property
    def inline(self) -> bool:
        """Whether a browser can show or play it in the page."""
        return self.mime in INLINE


def mime_of(path: Path) -> str:
    """The media type of a file from its suffix (``application/octet-stream`` when unknown)."""
    if path.suffix.lower() in (".mid", ".midi"):
        return "audio/midi"
    if path.suffix.lower() == ".wav":
        return "audio/wav"
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def render_with_files(writer: "Writer", outputs: Tensor) -> list[list[Media]]:
    """Each output ``outputs[i:i+1]`` written by ``writer.write_batch`` into a temporary folder and read back."""
    rendered = []
    with tempfile.TemporaryDirectory(prefix="lctk-render-") as tmp:
        for i in range(len(outputs)):
            files = writer.write_batch(outputs[i:i + 1], Path(tmp) / f"{i:03d}{writer.default_suffix}")
            rendered.append([Media(mime_of(f), f.read_bytes(), f.name) for f in files if f.is_file()])
    return rendered
