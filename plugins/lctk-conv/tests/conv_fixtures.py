"""Generators of tiny CelebA-shaped fixtures for the image plugin's tests (importable by test modules)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
    "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
    "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young").split()
SMILING = CELEBA_ATTRIBUTES.index("Smiling")


def celeba_table(n: int, seed: int = 0) -> np.ndarray:
    """``(n, 40)`` values in {-1, 1}; ``Smiling`` is 1 for even rows."""
    table = np.random.default_rng(seed).choice([-1, 1], size=(n, len(CELEBA_ATTRIBUTES)))
    table[:, SMILING] = np.where(np.arange(n) % 2 == 0, 1, -1)
    return table


def write_celeba_lists(root: Path, names: list[str], table: np.ndarray, parts: list[int]) -> None:
    """Write ``list_attr_celeba.txt`` and ``list_eval_partition.txt`` in the official layout."""
    lines = [str(len(names)), " ".join(CELEBA_ATTRIBUTES)]
    lines += [f"{name} " + " ".join(f"{v:2d}" for v in row) for name, row in zip(names, table)]
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    (root / "list_eval_partition.txt").write_text("".join(f"{n} {p}\n" for n, p in zip(names, parts)))


def make_celeba(root: Path, n: int = 30, seed: int = 0) -> Path:
    """A CelebA-shaped folder: ``n`` 178x218 JPEGs of random colours, the 40 real attribute names
    (``Smiling`` true for even rows), partition: 2/3 train, then valid, then test."""
    rng = np.random.default_rng(seed)
    (root / "img_align_celeba").mkdir(parents=True, exist_ok=True)
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    for name in names:
        pixels = np.full((218, 178, 3), rng.integers(0, 256, size=3), dtype=np.uint8)
        pixels[::7] = rng.integers(0, 256, size=(pixels[::7].shape[0], 178, 3))  # some texture
        Image.fromarray(pixels).save(root / "img_align_celeba" / name, quality=90)
    parts = [0 if i < 2 * n // 3 else (1 if i < 5 * n // 6 else 2) for i in range(n)]
    write_celeba_lists(root, names, celeba_table(n, seed), parts)
    return root
