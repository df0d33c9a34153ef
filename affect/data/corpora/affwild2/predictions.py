"""Aff-Wild2 challenge prediction files: ``image_location,`` + header, ``<video>/<frame>.jpg,<values>``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from affect.data.batches import TASKS
from affect.data.corpora.affwild2.layout import AU_HEADERS, EXPR_HEADERS, VA_HEADER, frame_name
from affect.data.textio import read_lines
from affect.labels import AU_SET

__all__ = ["prediction_header", "read_affwild2_predictions", "write_affwild2_predictions"]

def prediction_header(task: str, expr_classes: int = 8, au_set: Sequence[int] = AU_HEADERS[12]) -> list[str]:
    """Header fields (after ``image_location``) of a challenge prediction file."""
    if task == "va":
        return list(VA_HEADER)
    if task == "expr":
        if expr_classes not in EXPR_HEADERS:
            raise ValueError(f"expr_classes must be 7 or 8, got {expr_classes}")
        return list(EXPR_HEADERS[expr_classes])
    if task == "au":
        return [f"AU{a}" for a in au_set]
    raise ValueError(f"task must be one of {TASKS}, got {task!r}")


def write_affwild2_predictions(
    out_dir: str | Path,
    task: str,
    video: Sequence[str],
    frame: Sequence[int],
    values: np.ndarray,
    expr_classes: int = 8,
    au_set: Sequence[int] = AU_HEADERS[12],
) -> list[Path]:
    """Write one challenge prediction txt per video into ``out_dir``; returns the files.

    ``values``: VA float ``[N, 2]``; EXPR ``[N]`` canonical class indices (or ``[N, C]``
    scores, arg-maxed); AU ``[N, len(au_set)]`` 0/1 (or ``[N, 17]`` over ``labels.AU_SET``,
    from which ``au_set`` is taken). Each file: ``image_location,<header>`` then
    ``<video>/<frame:05d>.jpg,<values>`` per frame, in frame order.
    """
    header = prediction_header(task, expr_classes, au_set)
    video = np.asarray(video, dtype=str)
    frame = np.asarray(frame, dtype=np.int64)
    values = np.asarray(values)
    if task == "expr" and values.ndim == 2:
        values = values.argmax(1)
    if task == "au" and values.ndim == 2 and values.shape[1] == len(AU_SET) and len(au_set) != len(AU_SET):
        values = values[:, [AU_SET.index(a) for a in au_set]]
    expected = {"va": (len(video), 2), "expr": (len(video),), "au": (len(video), len(au_set))}[task]
    if values.shape != expected or len(frame) != len(video):
        raise ValueError(f"{task} predictions must have shape {expected} (and one frame per row); got {values.shape}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in sorted(set(video.tolist())):
        rows = np.flatnonzero(video == name)
        rows = rows[np.argsort(frame[rows], kind="stable")]
        lines = ["image_location," + ",".join(header)]
        for r in rows:
            if task == "va":
                text = f"{float(values[r, 0]):.6g},{float(values[r, 1]):.6g}"
            elif task == "expr":
                text = str(int(values[r]))
            else:
                text = ",".join(str(int(v)) for v in values[r])
            lines.append(f"{name}/{frame_name(int(frame[r]))},{text}")
        path = out_dir / f"{name}.txt"
        path.write_text("\n".join(lines) + "\n")
        written.append(path)
    return written


def read_affwild2_predictions(path: str | Path, task: str) -> tuple[list[str], np.ndarray, np.ndarray, list[str]]:
    """Read a prediction file back: ``(videos, frames, values, header)`` (the round trip of the writer)."""
    path = Path(path)
    lines = read_lines(path)
    head = [h.strip() for h in lines[0].split(",")]
    if head[0] != "image_location":
        raise ValueError(f"{path}: a prediction file starts with 'image_location,'; found {lines[0]!r}")
    videos, frames, values = [], [], []
    for lineno, line in enumerate(lines[1:], start=2):
        loc, _, rest = line.partition(",")
        vid, _, name = loc.rpartition("/")
        if not vid or not name.endswith(".jpg") or not rest:
            raise ValueError(f"{path}:{lineno}: expected '<video>/<frame>.jpg,<values>', found {line!r}")
        videos.append(vid)
        frames.append(int(name[:-4]))
        values.append([float(v) for v in rest.split(",")])
    arr = np.asarray(values)
    if task == "expr":
        arr = arr[:, 0].astype(np.int64)
    elif task == "au":
        arr = arr.astype(np.int64)
    return videos, np.asarray(frames, np.int64), arr, head[1:]

