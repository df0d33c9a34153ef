"""Aff-Wild2 (Kollias & Zafeiriou; ABAW challenges): per-frame VA, 7 basic expressions and AUs.

Native layout read here (``data_cards/affwild2.md``)::

    <root>/cropped_aligned/<video>/00001.jpg          1-based, 5 digits; two-person videos end
                                                      in _left / _right
    <root>/annotations/VA_Set/Train_Set/<video>.txt   ABAW 2-3 layout ("abaw3"); also EXPR_Set, AU_Set
    <root>/VA_Estimation_Challenge/Train_Set/...      ABAW 5+ layout ("abaw5"); also
                                                      EXPR_Recognition_Challenge, AU_Detection_Challenge
                                                      (found at <root>/ or <root>/annotations/)
    <root>/videos/<subject>.mp4|avi                   raw audio-visual videos (A/V models;
                                                      :func:`affwild2_video_path`)

Each annotation txt has a header line, then line ``k + 1`` labels frame ``k`` (1-based):

- VA ``valence,arousal``: floats in [-1, 1]; -5 = not annotated (masked; a line with both
  masked is skipped and counted);
- EXPR ``Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise`` (7 classes, ABAW 2020-21) or
  the same with ``,Other`` (8, from 2022): one integer; -1 = not annotated, Other (7) is outside
  the 7 basic classes: both skipped and counted. The 7 classes are in our canonical order.
- AU: ``AU1,AU2,AU4,AU6,AU12,AU15,AU20,AU25`` (8, ABAW 2020) or
  ``AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26`` (12, from 2021): 0/1 per AU,
  -1 = not annotated (masked; a line with all AUs -1 is skipped and counted). AUs of
  ``labels.AU_SET`` outside the header are NaN (masked), never 0.

``Train_Set`` -> split "train", ``Validation_Set`` -> "val" (test labels are not public; use
``val_fraction`` to carve a subject-independent validation set out of train and keep the
official validation set as the test set). Subject = video id without ``_left`` / ``_right``.

Every annotation line that does not become (part of) a row is counted in the ``LoadReport``
under ``"<TASK>: <reason>"``: sentinels, Other, malformed lines (``file:line`` examples),
frames whose jpg is missing from ``cropped_aligned`` ("missing frame"). With ``task="all"``
the rows of one frame from the three tasks are merged into one row (per split: a video that
is in Train_Set for one task and Validation_Set for another keeps one row per split; the
number of such videos is logged).

Prediction files for the challenge server: :func:`write_affwild2_predictions` /
:func:`read_affwild2_predictions` (``image_location,`` + header, ``<video>/<frame>.jpg,<values>``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from affect.data.batches import TASKS
from affect.data.datamodule import CorpusDataModule
from affect.data.manifest import AU_COLUMNS, LoadReport, validate_manifest
from affect.data.textio import read_lines
from affect.labels import AU_SET, EXPR_CLASSES

log = logging.getLogger(__name__)

CORPUS = "affwild2"
LAYOUTS: dict[str, dict[str, str]] = {
    "abaw3": {"va": "VA_Set", "expr": "EXPR_Set", "au": "AU_Set"},
    "abaw5": {"va": "VA_Estimation_Challenge", "expr": "EXPR_Recognition_Challenge", "au": "AU_Detection_Challenge"},
}
SPLIT_FOLDERS: dict[str, str] = {"Train_Set": "train", "Validation_Set": "val"}
FRAMES_DIR = "cropped_aligned"
VA_HEADER = ("valence", "arousal")
EXPR_HEADERS: dict[int, tuple[str, ...]] = {7: EXPR_CLASSES, 8: (*EXPR_CLASSES, "Other")}
AU_HEADERS: dict[int, tuple[int, ...]] = {
    8: (1, 2, 4, 6, 12, 15, 20, 25),
    12: (1, 2, 4, 6, 7, 10, 12, 15, 23, 24, 25, 26),
}
VA_SENTINEL = -5.0
LABEL_SENTINEL = -1
OTHER = 7


def frame_name(frame: int) -> str:
    """``cropped_aligned`` file name of 1-based ``frame``.

    >>> frame_name(1), frame_name(12345)
    ('00001.jpg', '12345.jpg')
    """
    return f"{frame:05d}.jpg"


def subject_of(video: str) -> str:
    """Subject id of a video: ``10-60-1280x720_left`` -> ``10-60-1280x720``.

    >>> subject_of("10-60-1280x720_right"), subject_of("video59")
    ('10-60-1280x720', 'video59')
    """
    for suffix in ("_left", "_right"):
        if video.endswith(suffix):
            return video[: -len(suffix)]
    return video


def affwild2_video_path(root: str | Path, video: str) -> Path:
    """The raw audio-visual video of ``video`` (``_left`` / ``_right`` share their source's file).

    Looks for ``<root>/videos/<subject>.mp4`` then ``.avi`` (some ABAW editions split the raw
    videos into ``videos/`` folders per batch: ``<root>/videos*/**/<subject>.*`` is searched too).
    Raises FileNotFoundError naming what was looked for.
    """
    root, subject = Path(root), subject_of(video)
    for ext in (".mp4", ".avi"):
        if (root / "videos" / f"{subject}{ext}").is_file():
            return root / "videos" / f"{subject}{ext}"
    for folder in sorted(root.glob("videos*")):
        for ext in (".mp4", ".avi"):
            hits = sorted(folder.rglob(f"{subject}{ext}"))
            if hits:
                return hits[0]
    raise FileNotFoundError(f"no raw video for {video!r}: expected {root}/videos/{subject}.mp4|avi")


def detect_layout(root: str | Path) -> tuple[str, Path]:
    """``(layout, annotation_parent)``: which ABAW folder layout ``root`` holds, and where.

    Raises FileNotFoundError naming every folder looked for when neither is present, and
    ValueError when both are (pass ``layout`` explicitly then).
    """
    root = Path(root)
    found: list[tuple[str, Path]] = []
    for layout, folders in LAYOUTS.items():
        for parent in (root / "annotations", root):
            if any((parent / f).is_dir() for f in folders.values()):
                found.append((layout, parent))
                break
    if not found:
        expected = [f"{root}/annotations/{{{','.join(LAYOUTS['abaw3'].values())}}}/{{Train_Set,Validation_Set}}",
                    f"{root}/[annotations/]{{{','.join(LAYOUTS['abaw5'].values())}}}/{{Train_Set,Validation_Set}}"]
        raise FileNotFoundError("Aff-Wild2 annotations not found; expected one of: " + " or ".join(expected))
    if len(found) > 1:
        raise ValueError(f"{root} holds both Aff-Wild2 annotation layouts {[f[0] for f in found]}; pass layout=")
    return found[0]


def _annotation_dir(root: Path, layout: str | None, task: str) -> Path:
    if layout is None:
        layout, parent = detect_layout(root)
    elif layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {sorted(LAYOUTS)} or None (autodetect), got {layout!r}")
    else:
        nested = any((root / "annotations" / f).is_dir() for f in LAYOUTS[layout].values())
        parent = root / "annotations" if nested else root
    return parent / LAYOUTS[layout][task]


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


def make_affwild2_manifest(
    root: str | Path, task: str = "all", layout: str | None = None
) -> tuple[pd.DataFrame, LoadReport]:
    """Parse an Aff-Wild2 ABAW release into a manifest (one row per annotated, present frame).

    Args:
        root: the release folder (``cropped_aligned/`` and the annotation folders).
        task: "va" | "expr" | "au" (that task's annotation folder must exist) or "all" (every
            task folder present, rows of one frame merged).
        layout: "abaw3" | "abaw5" or None to autodetect.
    """
    root = Path(root)
    if task not in (*TASKS, "all"):
        raise ValueError(f"task must be one of {(*TASKS, 'all')}, got {task!r}")
    report = LoadReport(CORPUS)
    frames: dict[str, set[int]] = {}
    tasks = TASKS if task == "all" else (task,)
    tables: dict[str, pd.DataFrame] = {}
    for t in tasks:
        ann_dir = _annotation_dir(root, layout, t)
        if not ann_dir.is_dir():
            if task == "all":
                report.skip("task folder absent", example=str(ann_dir))
                continue
            raise FileNotFoundError(
                f"Aff-Wild2 {t.upper()} annotations not found: expected {ann_dir}/{{Train_Set,Validation_Set}}/<video>.txt"
            )
        tables[t] = _task_table(root, ann_dir, t, report, frames)
    if not tables:
        raise FileNotFoundError(f"no Aff-Wild2 task folder under {root}")
    key = ["video", "frame", "split"]
    df: pd.DataFrame | None = None
    for table in tables.values():
        df = table if df is None else df.merge(table, on=key, how="outer")
    assert df is not None
    if "expr" in df.columns:
        df["expr"] = df["expr"].fillna(-1).astype(np.int64)
    splits_per_video = df.groupby("video")["split"].nunique()
    if (splits_per_video > 1).any():
        log.warning(
            "Aff-Wild2: %d videos are in Train_Set for one task and Validation_Set for another: "
            "their frames keep one row per split (e.g. %s)",
            int((splits_per_video > 1).sum()), splits_per_video[splits_per_video > 1].index[:3].tolist(),
        )
    df = df.sort_values(key).reset_index(drop=True)
    df["path"] = [f"{FRAMES_DIR}/{v}/{frame_name(int(f))}" for v, f in zip(df["video"], df["frame"], strict=True)]
    df["corpus"] = CORPUS
    df["subject"] = [subject_of(v) for v in df["video"]]
    df = validate_manifest(df)
    _add_audio_sources(df, root, report)
    report.kept = len(df)
    return df, report


def _add_audio_sources(df: pd.DataFrame, root: Path, report: LoadReport) -> None:
    """With the raw videos present (``<root>/videos``), point each frame at its audio source for
    ``affect prepare --audio``: ``audio_path`` (relative to root) and ``audio_frame`` (the 0-based
    index of the frame in the decoded video; ``cropped_aligned`` frames are numbered from 1)."""
    if not any(root.glob("videos*")):
        return
    paths: dict[str, str] = {}
    for video in df["video"].unique():
        try:
            paths[video] = str(affwild2_video_path(root, video).relative_to(root))
        except FileNotFoundError:
            paths[video] = ""
            report.skip("no raw video for the audio track (row kept, no audio)", int((df["video"] == video).sum()),
                        example=str(video))
    df["audio_path"] = df["video"].map(paths)
    df["audio_frame"] = df["frame"] - 1


# ------------------------------------------------------------------------------------ predictions


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


class AffWild2DataModule(CorpusDataModule):
    """Aff-Wild2 frames (or sequences via ``sequence_length``); see :func:`make_affwild2_manifest`.

    ``task`` (base-class argument) selects which annotation folder is parsed: "va", "expr",
    "au", or None for all three merged.

    Args:
        layout: "abaw3" | "abaw5" | None (autodetect) annotation folder layout.
    """

    corpus = CORPUS

    def __init__(self, root: str, layout: str | None = None, **kwargs) -> None:
        super().__init__(root, **kwargs)
        self.layout = layout

    def make_manifest(self) -> tuple[pd.DataFrame, LoadReport]:
        return make_affwild2_manifest(self.root, task=self.task or "all", layout=self.layout)
