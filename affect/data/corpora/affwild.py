"""Aff-Wild (Zafeiriou et al., CVPR-W 2017; Kollias et al., IJCV 2019): per-frame valence-arousal.

Native layout read here (``data_cards/affwild.md``)::

    <root>/videos/{train,test}/<id>.mp4|avi
    <root>/annotations/train/{valence,arousal}/<id>.txt   one value in [-1, 1] per line; line k = frame k
    <root>/annotations/test/{valence,arousal}/<id>.txt    (optional: the test labels, released later)
    <root>/bboxes/{train,test}/<id>/<n>.pts               face box, iBUG .pts (corner points)   [assumed]
    <root>/landmarks/{train,test}/<id>/<n>.pts            68 iBUG landmarks, iBUG .pts          [assumed]

The per-frame box/landmark files are our reading of the release (one iBUG ``.pts`` file per
frame and video, named by the frame index; ``pts_base`` is the number of the first frame's file,
0 by default); the box is the bounding rectangle of the file's points. Both are optional: frames
without them get no box (the whole frame is resized) and no landmarks. Coordinates are pixels
of the full video frame; ``FrameDataset`` crops the box and maps the landmarks into the crop.

Frames are decoded from the videos with PyAV the first time the corpus is parsed, into
``<frames_dir>/<id>/00001.jpg ...`` (default ``<root>/frames``, see ``affect.data.video``; the
number of videos decoded vs reused is logged); later parses reuse the folders. ``extract=False``
reads frames the user extracted into the same folders instead.

Splits: ``train`` (annotated) and ``test`` (labels withheld in the challenge release: rows with
NaN VA, usable for prediction; if ``annotations/test/`` is present its labels are read the same
way, e.g. to reproduce the paper's test-set CCCs). Aff-Wild has no validation set: set ``val_fraction`` to hold
out training subjects. Subject = video id without ``_left`` / ``_right``.

Counted in the ``LoadReport``: malformed or out-of-range annotation lines (``file:line``),
valence/arousal files of different lengths (the extra lines, masked), annotated frames past the end
of the video, decoded frames without annotation, videos of an annotated split without annotation files,
annotation files without a video, videos that cannot be decoded, and unreadable ``.pts`` files.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from affect.data.corpora._video import VideoCorpusDataModule
from affect.data.corpora.affwild2 import subject_of
from affect.data.datamodule import resolve_root
from affect.data.manifest import LoadReport, counted, stack_tables
from affect.data.textio import read_lines
from affect.data.video import read_frame_index, video_frame_paths
from affect.io import VIDEO_SUFFIXES, MediaReadError

log = logging.getLogger(__name__)

CORPUS = "affwild"
SPLITS = ("train", "test")
NUM_LANDMARKS = 68


def read_pts(path: str | Path) -> np.ndarray:
    """Points of an iBUG ``.pts`` file (``version: 1`` / ``n_points: N`` / ``{`` x y lines ``}``) as float32 ``[N, 2]``.

    Raises ValueError naming the file when it is not in that format.
    """
    path = Path(path)
    lines = [ln.strip() for ln in read_lines(path) if ln.strip()]
    try:
        header = {k.strip(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[: lines.index("{")])}
        n = int(header["n_points"])
        body = lines[lines.index("{") + 1 : lines.index("}")]
        pts = np.array([[float(v) for v in ln.split()] for ln in body], dtype=np.float32)
    except (ValueError, KeyError, IndexError) as err:
        raise ValueError(f"{path}: not an iBUG .pts file ({err})") from None
    if pts.shape != (n, 2):
        raise ValueError(f"{path}: n_points says {n} but the file holds {pts.shape[0]} points of 2 coordinates")
    return pts


def write_pts(path: str | Path, points: np.ndarray) -> Path:
    """Write points ``[N, 2]`` as an iBUG ``.pts`` file (the inverse of :func:`read_pts`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "\n".join(f"{x:.3f} {y:.3f}" for x, y in np.asarray(points, np.float64))
    path.write_text(f"version: 1\nn_points: {len(points)}\n{{\n{body}\n}}\n")
    return path


def _read_values(path: Path, report: LoadReport, name: str) -> list[float]:
    """One float per line; malformed / out-of-range lines become NaN and are counted."""
    values: list[float] = []
    for lineno, line in enumerate(read_lines(path), start=1):
        text = line.strip()
        try:
            v = float(text)
            if not -1.0 <= v <= 1.0:
                raise ValueError
        except ValueError:
            report.skip(f"malformed {name} line", example=f"{path.parent.name}/{path.name}:{lineno}: {text!r}")
            v = float("nan")
        values.append(v)
    return values


def _videos(root: Path, split: str) -> dict[str, Path]:
    folder = root / "videos" / split
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in VIDEO_SUFFIXES}


def _pts_per_frame(folder: Path, base: int, report: LoadReport, what: str) -> dict[int, np.ndarray]:
    """``{1-based frame: points}`` from ``folder/<n>.pts``."""
    out: dict[int, np.ndarray] = {}
    if not folder.is_dir():
        return out
    for path in folder.glob("*.pts"):
        if not path.stem.isdigit():
            continue
        try:
            out[int(path.stem) - base + 1] = read_pts(path)
        except ValueError as err:
            report.skip(f"unreadable {what} file", example=str(err))
    return out


def make_affwild_manifest(
    root: str | Path,
    frames_dir: str | None = None,
    extract: bool = True,
    pts_base: int = 0,
    quality: int = 95,
) -> tuple[pd.DataFrame, LoadReport]:
    """Parse the Aff-Wild release into a manifest: one row per decoded frame (train: annotated ones).

    Args:
        root: the release folder (``videos/``, ``annotations/``, optional ``bboxes/``, ``landmarks/``).
        frames_dir: where frames are extracted / read (default ``<root>/frames``).
        extract: decode videos into ``frames_dir`` (cached); False reads user-extracted frames.
        pts_base: number in the name of the first frame's ``.pts`` file (0: ``0.pts`` = frame 1).
        quality: JPEG quality of extracted frames.
    """
    root = Path(root)
    videos = {split: _videos(root, split) for split in SPLITS}
    if not videos["train"] and not videos["test"]:
        raise FileNotFoundError(f"Aff-Wild videos not found: expected {root}/videos/{{train,test}}/<id>.mp4|avi")
    ann = {split: root / "annotations" / split for split in SPLITS}
    if videos["train"] and not (ann["train"] / "valence").is_dir():
        raise FileNotFoundError(
            f"Aff-Wild annotations not found: expected {ann['train']}/valence/<id>.txt and "
            f"{ann['train']}/arousal/<id>.txt"
        )
    report = LoadReport(CORPUS)
    frames_root = Path(frames_dir) if frames_dir is not None else root / "frames"
    tables: list[pd.DataFrame] = []
    decoded = reused = 0
    for split in SPLITS:
        labelled = (ann[split] / "valence").is_dir() or (ann[split] / "arousal").is_dir()
        annotated = {p.stem for d in ("valence", "arousal") for p in (ann[split] / d).glob("*.txt")}
        for orphan in sorted(annotated - set(videos[split])):
            report.skip("annotation file without a video", example=f"{split}/{orphan}")
        for vid, video in videos[split].items():
            va = None
            if labelled:
                if vid not in annotated:
                    report.skip(f"{split} video without annotation files", example=vid)
                    continue
                va = _va_table(ann[split], vid, report)
            had_index = read_frame_index(frames_root / vid) is not None
            try:
                paths, _ = video_frame_paths(video, frames_root / vid, root, extract, quality)
            except MediaReadError as err:
                report.skip("video missing or undecodable", count=len(va) if va is not None else 1, example=str(err))
                continue
            decoded += int(extract and not had_index)
            reused += int(extract and had_index)
            frames = np.array(sorted(paths), dtype=np.int64)
            table = pd.DataFrame({"frame": frames})
            if va is not None:
                beyond = va.index[va.index > frames.max()]
                if len(beyond):
                    report.skip("annotated frame past the end of the video", len(beyond), example=f"{vid} frame {beyond[0]}")
                unlabelled = np.setdiff1d(frames, va.index.to_numpy())
                if len(unlabelled):
                    report.skip("video frame without annotation", len(unlabelled), example=f"{vid} frame {unlabelled[0]}")
                table = table.join(va, on="frame", how="inner")
                table = table[~table[["valence", "arousal"]].isna().all(axis=1)]  # both lines malformed: counted
            table["path"] = [paths[int(f)] for f in table["frame"]]
            table["split"], table["video"], table["subject"] = split, vid, subject_of(vid)
            _attach_geometry(table, root, split, vid, pts_base, report)
            tables.append(table)
    if extract:
        log.info("Aff-Wild: decoded %d videos into %s, reused %d extracted folders", decoded, frames_root, reused)
    df = stack_tables(tables)
    df["corpus"] = CORPUS
    return counted(df, report)


def _va_table(ann: Path, vid: str, report: LoadReport) -> pd.DataFrame:
    """Valence / arousal of one video indexed by 1-based frame (NaN where a file is short or a line bad)."""
    cols = {}
    for name in ("valence", "arousal"):
        path = ann / name / f"{vid}.txt"
        if path.is_file():
            cols[name] = _read_values(path, report, name)
        else:
            report.skip(f"missing {name} file (masked for the video)", example=vid)
            cols[name] = []
    n_v, n_a = len(cols["valence"]), len(cols["arousal"])
    if n_v != n_a and n_v and n_a:
        report.skip("valence/arousal files differ in length (extra lines masked)", abs(n_v - n_a),
                    example=f"{vid}: {n_v} vs {n_a} lines")
    n = max(n_v, n_a)
    table = pd.DataFrame(
        {name: np.pad(np.asarray(v, np.float64), (0, n - len(v)), constant_values=np.nan) for name, v in cols.items()},
        index=pd.Index(np.arange(1, n + 1, dtype=np.int64), name="frame"),
    )
    return table


def _attach_geometry(table: pd.DataFrame, root: Path, split: str, vid: str, pts_base: int, report: LoadReport) -> None:
    landmarks = _pts_per_frame(root / "landmarks" / split / vid, pts_base, report, "landmark")
    boxes = _pts_per_frame(root / "bboxes" / split / vid, pts_base, report, "box")
    lm_col, box = [], np.full((len(table), 4), np.nan, np.float32)
    for k, f in enumerate(table["frame"].to_numpy()):
        pts = landmarks.get(int(f))
        if pts is not None and pts.shape != (NUM_LANDMARKS, 2):
            report.skip("landmark file without 68 points", example=f"{vid} frame {f}: {pts.shape[0]} points")
            pts = None
        lm_col.append(pts)
        corners = boxes.get(int(f))
        if corners is not None:
            (x0, y0), (x1, y1) = corners.min(0), corners.max(0)
            box[k] = (x0, y0, x1 - x0, y1 - y0)
    table["landmarks"] = lm_col
    table["box_x"], table["box_y"], table["box_w"], table["box_h"] = box.T


class AffWildDataModule(VideoCorpusDataModule):
    """Aff-Wild frames (or sequences via ``sequence_length``); see :func:`make_affwild_manifest`.

    Use ``val_fraction`` for a validation split (Aff-Wild has none); the ``test`` split has no
    labels (``task="va"`` drops it).

    Args:
        frames_dir: where frames are extracted (default ``<root>/frames``).
        extract: decode the videos on first use (cached); False reads pre-extracted frames.
        pts_base: number in the name of the first frame's ``.pts`` file.
    """

    corpus = CORPUS

    def __init__(
        self, root: str, frames_dir: str | None = None, extract: bool = True, pts_base: int = 0, **kwargs
    ) -> None:
        super().__init__(root, **kwargs)
        self.hold_parser_args(locals())
        self.frames_dir = resolve_root(frames_dir) if frames_dir is not None else None
