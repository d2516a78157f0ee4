"""PNG grids of images (pillow), and reading a user's image for `lctk transform --input`."""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from einops import rearrange
from PIL import Image, ImageDraw, UnidentifiedImageError

from lctk.plugin_api import LctkError, Media, Writer, atomic_path, describe

PAD = 2


def grid(images: torch.Tensor, columns: int) -> np.ndarray:
    """``(B, C, H, W)`` in [0, 1] -> ``(rows*(H+pad), columns*(W+pad), C)`` uint8 mosaic (white padding)."""
    b, c, h, w = images.shape
    rows = math.ceil(b / columns)
    padded = torch.ones(rows * columns, c, h + PAD, w + PAD)
    padded[:b, :, PAD // 2:PAD // 2 + h, PAD // 2:PAD // 2 + w] = images.clamp(0, 1)
    mosaic = rearrange(padded, "(r k) c h w -> (r h) (k w) c", r=rows, k=columns)
    return (mosaic.numpy() * 255).round().astype(np.uint8)


def save_png(array: np.ndarray, path: Path, scale: int = 1, labels: Sequence[str] | None = None,
             row_height: int | None = None) -> Path:
    """Write an ``(H, W, C)`` uint8 array as PNG (upscaled by ``scale``, optional row labels on the left)."""
    mode = "L" if array.shape[2] == 1 else "RGB"
    img = Image.fromarray(array[:, :, 0] if mode == "L" else array, mode)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    if labels:
        margin = 8 + 7 * max(len(s) for s in labels)
        canvas = Image.new(mode, (img.width + margin, img.height), 255 if mode == "L" else (255, 255, 255))
        canvas.paste(img, (margin, 0))
        draw = ImageDraw.Draw(canvas)
        step = (row_height or img.height // len(labels)) * scale
        for i, text in enumerate(labels):
            draw.text((4, i * step + step // 2 - 5), text, fill=0 if mode == "L" else (0, 0, 0))
        img = canvas
    path = Path(path)
    if path.suffix.lower() != ".png":
        path = path.with_suffix(".png") if path.suffix else path / "samples.png"
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
    return path



def _scale(images: torch.Tensor) -> int:
    return max(1, 96 // images.shape[-1])


def png_bytes(image: torch.Tensor, scale: int = 1) -> bytes:
    """One image ``(C, H, W)`` in [0, 1] as PNG bytes, upscaled by ``scale`` (nearest neighbour)."""
    array = (rearrange(image.float().clamp(0, 1).cpu(), "c h w -> h w c").numpy() * 255).round().astype(np.uint8)
    img = Image.fromarray(array[:, :, 0], "L") if array.shape[2] == 1 else Image.fromarray(array, "RGB")
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


class PNGWriter(Writer):
    """Images as a PNG grid; pairs as before/after columns."""

    default_suffix = ".png"
    input_suffixes = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")

    def render(self, outputs: torch.Tensor) -> list[list[Media]]:
        """Each image ``(C, H, W)`` as one PNG, upscaled to about 96 pixels."""
        scale = _scale(outputs)
        return [[Media("image/png", png_bytes(image, scale), f"{i:03d}.png")] for i, image in enumerate(outputs)]

    def write_batch(self, outputs: torch.Tensor, path: Path, *, columns: int | None = None,
                    labels: Sequence[str] | None = None) -> list[Path]:
        columns = columns or math.ceil(math.sqrt(len(outputs)))
        rows = math.ceil(len(outputs) / columns)
        h = outputs.shape[-2] + PAD
        return [save_png(grid(outputs.float().cpu(), columns), path, _scale(outputs),
                         labels if labels and len(labels) == rows else None, row_height=h)]

    def write_pairs(self, before: torch.Tensor, after: torch.Tensor, path: Path) -> list[Path]:
        n = len(before)
        per_row = max(1, min(8, math.ceil(math.sqrt(n / 2))))  # pairs per row
        interleaved = rearrange(torch.stack([before.float().cpu(), after.float().cpu()]), "two b c h w -> (b two) c h w")
        return [save_png(grid(interleaved, 2 * per_row), path, _scale(before))]

    def read_input(self, path: Path, spec: Mapping[str, Any]) -> torch.Tensor:
        c, h, w = spec["input_shape"]
        path = Path(path)
        if not path.is_file():
            raise LctkError(f"input image {path} does not exist")
        try:
            with Image.open(path) as img:
                img = img.convert("L" if c == 1 else "RGB").resize((w, h), Image.BILINEAR)
                array = np.asarray(img, dtype=np.float32) / 255.0  # (H, W) or (H, W, C)
        except UnidentifiedImageError:
            raise LctkError(f"input {path} is not a readable image (not a format pillow knows; use PNG, JPEG, ...)") from None
        except Exception as e:  # noqa: BLE001 - a damaged image raises many kinds of error inside pillow
            raise LctkError(f"input {path} is not a readable image ({describe(e)})") from None
        x = torch.from_numpy(array)
        return rearrange(x, "h w -> 1 1 h w") if c == 1 else rearrange(x, "h w c -> 1 c h w")
