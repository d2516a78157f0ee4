"""Parsing CelebA's annotation files (``list_attr_celeba.txt``, ``list_eval_partition.txt``) with one-line
errors that name the file and line."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lctk.plugin_api import LctkError


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="strict").splitlines()
    except UnicodeDecodeError:
        raise LctkError(f"{path} is not a text file; re-download it from the CelebA release") from None


def parse_attributes(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    """``list_attr_celeba.txt`` -> (attribute names as written, file names, ``(N, A)`` bool table).

    Line 1 holds the number of images, line 2 the attribute names, then one line per image:
    ``000001.jpg  -1  1 ...`` (1 true; -1 or 0 false).
    """
    lines = _read_lines(path)
    if len(lines) < 2:
        raise LctkError(f"{path} is too short: expected a count on line 1 and attribute names on line 2")
    try:
        count = int(lines[0].strip())
    except ValueError:
        raise LctkError(f"{path} line 1 should be the number of images, got {lines[0].strip()[:40]!r}") from None
    names = lines[1].split()
    if not names:
        raise LctkError(f"{path} line 2 should list the attribute names, but it is empty")
    files: list[str] = []
    rows: list[list[str]] = []
    for number, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != len(names) + 1:
            raise LctkError(f"{path} line {number} is malformed: expected a file name and {len(names)} values, "
                            f"got {len(parts)} fields")
        files.append(parts[0])
        rows.append(parts[1:])
    table = np.array(rows, dtype=str).reshape(len(rows), len(names))  # (N, A) strings
    true = table == "1"
    valid = true | (table == "-1") | (table == "0")
    if not valid.all():
        bad_row, bad_col = np.argwhere(~valid)[0]
        raise LctkError(f"{path} line {_line_of(lines, files[bad_row])} is malformed: value "
                        f"{str(table[bad_row, bad_col])!r} for {names[bad_col]} should be 1 or -1")
    if count != len(files):
        raise LctkError(f"{path} says {count} images on line 1 but lists {len(files)}; it is truncated or damaged, "
                        "re-download it")
    if len(set(files)) != len(files):
        seen: set[str] = set()
        dup = next(f for f in files if f in seen or seen.add(f))
        raise LctkError(f"{path} lists {dup} more than once; it is damaged, re-download it")
    return names, files, true


def _line_of(lines: list[str], file: str) -> int:
    return next(i for i, line in enumerate(lines, start=1) if i > 2 and line.split()[:1] == [file])


def parse_partition(path: Path, files: list[str]) -> np.ndarray:
    """``list_eval_partition.txt`` (``000001.jpg 0``; 0 train, 1 valid, 2 test) -> ``(N,)`` int8 split for
    ``files``: 0 for train, 1 for valid and test."""
    parts_of: dict[str, int] = {}
    for number, line in enumerate(_read_lines(path), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise LctkError(f"{path} line {number} is malformed: expected a file name and 0, 1 or 2, "
                            f"got {line.strip()[:60]!r}")
        parts_of[parts[0]] = int(parts[1])
    split = np.empty(len(files), dtype=np.int8)
    for i, name in enumerate(files):
        part = parts_of.get(name)
        if part is None:
            raise LctkError(f"{path} has no partition for {name}; it does not match list_attr_celeba.txt, "
                            "re-download both")
        split[i] = 0 if part == 0 else 1
    return split
