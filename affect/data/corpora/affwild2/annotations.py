"""Aff-Wild2 annotation txt files -> per-task tables (one row per kept line, skips counted).

Line ``k + 1`` of a file labels frame ``k``; the value rules (sentinels, Other, headers) are in
:mod:`affect.data.corpora.affwild2`'s docstring.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from affect.data.corpora.affwild2.layout import (
    AU_HEADERS,
    EXPR_HEADERS,
    FRAMES_DIR,
    LABEL_SENTINEL,
    OTHER,
    SPLIT_FOLDERS,
    VA_HEADER,
    VA_SENTINEL,
    frame_name,
)
from affect.data.manifest import AU_COLUMNS, LoadReport
from affect.data.textio import read_lines
from affect.labels import AU_SET, EXPR_CLASSES


def _check_header(task: str, header: str, path: Path) -> tuple[int, ...] | int | None:
    """Parse a header: the AU numbers (AU task), the class count (EXPR) or None (VA).

    An unknown header raises (it means another file format, not a noisy line).
    """
    fields = tuple(h.strip() for h in header.strip().split(","))
    if task == "va":
        if tuple(f.lower() for f in fields) != VA_HEADER:
            raise ValueError(f"{path}: VA header must be 'valence,arousal', found {header.strip()!r}")
        return None
    if task == "expr":
        for n, names in EXPR_HEADERS.items():
            if fields == names:
                return n
        raise ValueError(
            f"{path}: EXPR header must be {','.join(EXPR_HEADERS[7])!r} (7 classes) or with ',Other' (8); "
            f"found {header.strip()!r}"
        )
    aus = tuple(int(f[2:]) for f in fields if f.upper().startswith("AU") and f[2:].isdigit())
    if len(aus) != len(fields) or aus not in AU_HEADERS.values():
        raise ValueError(
            f"{path}: AU header must be one of {[','.join(f'AU{a}' for a in h) for h in AU_HEADERS.values()]}; "
            f"found {header.strip()!r}"
        )
    return aus


_NAN = float("nan")
_AU_VALUES = frozenset((0, 1, LABEL_SENTINEL))


def _parse_line(task: str, parts: list[str], info: tuple[int, ...] | int | None) -> tuple[float, ...] | str:
    """Values of one annotation line (NaN = masked), or the skip reason; raises ValueError if malformed.

    Plain Python on purpose: ~8 M lines in a full release.
    """
    if task == "va":
        if len(parts) != 2:
            raise ValueError
        v, a = float(parts[0]), float(parts[1])
        if not (v == VA_SENTINEL or -1.0 <= v <= 1.0) or not (a == VA_SENTINEL or -1.0 <= a <= 1.0):
            raise ValueError  # also NaN / inf
        if v == VA_SENTINEL and a == VA_SENTINEL:
            return "not annotated (-5)"
        return (_NAN if v == VA_SENTINEL else v, _NAN if a == VA_SENTINEL else a)
    if task == "expr":
        if len(parts) != 1:
            raise ValueError
        label = int(parts[0])
        if label == LABEL_SENTINEL:
            return "not annotated (-1)"
        if label == OTHER and info == 8:
            return "Other (outside the 7 classes)"
        if not 0 <= label < len(EXPR_CLASSES):
            raise ValueError
        return (float(label),)
    assert isinstance(info, tuple)
    if len(parts) != len(info):
        raise ValueError
    raw = [int(p) for p in parts]
    if not _AU_VALUES.issuperset(raw):
        raise ValueError
    if all(r == LABEL_SENTINEL for r in raw):
        return "not annotated (-1)"
    return tuple(_NAN if r == LABEL_SENTINEL else float(r) for r in raw)


def _parse_file(
    task: str, path: Path, video: str, split: str, frames_on_disk: set[int], cols: _Columns, report: LoadReport
) -> None:
    lines = read_lines(path)
    tag = task.upper()
    if not lines:
        report.skip(f"{tag}: empty annotation file", example=path.name)
        return
    info = _check_header(task, lines[0], path)
    frames: list[int] = []
    values: list[tuple[float, ...]] = []
    reasons: dict[str, int] = {}
    for lineno in range(2, len(lines) + 1):
        text = lines[lineno - 1].strip()
        frame = lineno - 1  # line 2 labels frame 00001.jpg
        try:
            value = _parse_line(task, text.split(","), info)
        except ValueError:
            report.skip(f"{tag}: malformed line", example=f"{path.name}:{lineno}: {text!r}")
            continue
        if isinstance(value, str):
            reasons[value] = reasons.get(value, 0) + 1
            continue
        if frame not in frames_on_disk:
            report.skip(f"{tag}: missing frame", example=f"{FRAMES_DIR}/{video}/{frame_name(frame)}")
            continue
        frames.append(frame)
        values.append(value)
    for reason, count in reasons.items():
        report.skip(f"{tag}: {reason}", count)
    width = {"va": 2, "expr": 1, "au": len(info) if isinstance(info, tuple) else 0}[task]
    array = np.asarray(values, np.float64).reshape(len(values), width)
    if task == "au":  # scatter the header's AUs into the full AU set; the others stay NaN (masked)
        full = np.full((len(values), len(AU_SET)), np.nan)
        full[:, [AU_SET.index(a) for a in info]] = array
        array = full
    cols.video.append(np.full(len(frames), video, dtype=object))
    cols.frame.append(np.asarray(frames, np.int64))
    cols.split.append(np.full(len(frames), split, dtype=object))
    cols.values.append(array)


class _Columns:
    """Per-task columns, one array per annotation file (one entry per kept line)."""

    def __init__(self) -> None:
        self.video: list[np.ndarray] = []
        self.frame: list[np.ndarray] = []
        self.split: list[np.ndarray] = []
        self.values: list[np.ndarray] = []


def _frames_on_disk(root: Path, video: str, cache: dict[str, set[int]]) -> set[int]:
    if video not in cache:
        folder = root / FRAMES_DIR / video
        numbers: set[int] = set()
        if folder.is_dir():
            with os.scandir(folder) as it:
                for entry in it:
                    stem, dot, ext = entry.name.partition(".")
                    if dot and ext.lower() == "jpg" and stem.isdigit():
                        numbers.add(int(stem))
        cache[video] = numbers
    return cache[video]


def _task_table(root: Path, ann_dir: Path, task: str, report: LoadReport, frames: dict[str, set[int]]) -> pd.DataFrame:
    cols = _Columns()
    for folder, split in SPLIT_FOLDERS.items():
        split_dir = ann_dir / folder
        if not split_dir.is_dir():
            report.skip(f"{task.upper()}: missing split folder", example=str(split_dir))
            continue
        for path in sorted(split_dir.glob("*.txt")):
            _parse_file(task, path, path.stem, split, _frames_on_disk(root, path.stem, frames), cols, report)
    width = {"va": 2, "expr": 1, "au": len(AU_SET)}[task]

    def cat(parts: list[np.ndarray], empty: np.ndarray) -> np.ndarray:
        return np.concatenate(parts) if parts else empty

    table = pd.DataFrame({
        "video": cat(cols.video, np.zeros(0, object)),
        "frame": cat(cols.frame, np.zeros(0, np.int64)),
        "split": cat(cols.split, np.zeros(0, object)),
    })
    values = cat(cols.values, np.zeros((0, width)))
    if task == "va":
        table["valence"], table["arousal"] = values[:, 0], values[:, 1]
    elif task == "expr":
        table["expr"] = values[:, 0].astype(np.int64)
    else:
        for j, name in enumerate(AU_COLUMNS):
            table[name] = values[:, j]
    return table

