"""DISFA (Mavadati et al., IEEE TAC 2013): 27 subjects, AU intensities 0-5 per video frame.

Native layout read here (``data_cards/disfa.md``)::

    <root>/ActionUnit_Labels/SN001/SN001_au1.txt      lines "frame,intensity" (1-based frames, 0..5)
    <root>/Videos_LeftCamera/LeftVideoSN001_comp.avi  (or Videos_RightCamera/RightVideoSN001_comp.avi)

The paper (Sec. III) uses DISFA for AU detection: occurrence = intensity >= 2 (the usual
threshold, ``threshold``), over the 12 AUs DISFA codes; the other 5 AUs of ``labels.AU_SET``
(7, 10, 14, 23, 24) are masked (NaN), never 0.

Frames come out of the video: the first parse decodes each video once with PyAV into
``<frames_dir>/SN001/00001.jpg ...`` (default ``frames_dir = <root>/frames``; see
``affect.data.video``), later parses reuse the folder. ``extract=False`` reads frames the user
extracted into the same folders instead (``<number>.jpg|png``, frame 1 = the first video frame).
``require_media=False`` parses the labels only (paths point to where the frames would be).

Everything dropped is counted in the ``LoadReport``: missing AU files (that AU masked for the
subject), AU files of one subject with different line counts, malformed lines (with
``file:line`` examples), labelled frames past the end of the video, video frames without labels,
videos that are missing or cannot be decoded.

DISFA has no official split: ``fold`` / ``num_folds`` give the subject-independent 3-fold
protocol of JAA-Net (``affect.data.corpora._folds.DISFA_3FOLD``); the held-out fold is the
"val" split (AU papers test on it; ``test_split="val"`` makes ``affect test`` score it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from affect.data.corpora._folds import DISFA_3FOLD, check_fold, subject_folds
from affect.data.corpora._video import VideoCorpusDataModule
from affect.data.manifest import LoadReport, counted, stack_tables
from affect.data.textio import read_lines
from affect.data.video import frame_file_name, video_frame_paths
from affect.io import MediaReadError

CORPUS = "disfa"
DISFA_AUS: tuple[int, ...] = (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26)
LABELS_DIR = "ActionUnit_Labels"
CAMERAS: dict[str, tuple[str, str]] = {
    "left": ("Videos_LeftCamera", "LeftVideo{subject}_comp.avi"),
    "right": ("Videos_RightCamera", "RightVideo{subject}_comp.avi"),
}


def disfa_video_path(root: str | Path, subject: str, camera: str = "left") -> Path:
    """``<root>/Videos_LeftCamera/LeftVideoSN001_comp.avi`` for ``subject="SN001"``."""
    if camera not in CAMERAS:
        raise ValueError(f"camera must be one of {sorted(CAMERAS)}, got {camera!r}")
    folder, name = CAMERAS[camera]
    return Path(root) / folder / name.format(subject=subject)


def read_au_file(path: Path, report: LoadReport) -> dict[int, int]:
    """``{frame: intensity}`` from one ``SN001_au1.txt``; bad lines are counted with ``file:line``."""
    out: dict[int, int] = {}
    for lineno, line in enumerate(read_lines(path), start=1):
        text = line.strip()
        if not text:
            continue
        parts = [p.strip() for p in text.replace("\t", ",").split(",")]
        try:
            if len(parts) != 2:
                raise ValueError
            frame, value = int(parts[0]), int(float(parts[1]))
        except ValueError:
            report.skip("malformed AU line", example=f"{path.name}:{lineno}: {line!r}")
            continue
        if frame < 1 or not 0 <= value <= 5 or float(parts[1]) != value:
            report.skip("AU line out of range (frame >= 1, intensity 0-5)", example=f"{path.name}:{lineno}: {line!r}")
            continue
        if frame in out:
            report.skip("duplicate frame line", example=f"{path.name}:{lineno}: {line!r}")
            continue
        out[frame] = value
    return out


def make_disfa_manifest(
    root: str | Path,
    camera: str = "left",
    threshold: int = 2,
    fold: int | None = 0,
    num_folds: int = 3,
    frames_dir: str | None = None,
    extract: bool = True,
    require_media: bool = True,
    quality: int = 95,
) -> tuple[pd.DataFrame, LoadReport]:
    """Parse DISFA's native release into a manifest (one row per labelled video frame).

    Args:
        root: the release folder holding ``ActionUnit_Labels/`` and ``Videos_*Camera/``.
        camera: "left" or "right" (the AU labels are shared by both cameras).
        threshold: occurrence = intensity >= ``threshold`` (2 by convention).
        fold: held-out fold ("val" split); None puts every subject in "train".
        num_folds: number of subject folds (3 = the JAA-Net lists).
        frames_dir: where frames are extracted / read (default ``<root>/frames``).
        extract: decode videos into ``frames_dir`` (cached); False reads user-extracted frames.
        require_media: False skips videos/frames entirely (label-only parse).
        quality: JPEG quality of extracted frames.
    """
    root = Path(root)
    check_fold(fold, num_folds)
    if not 1 <= threshold <= 5:
        raise ValueError(f"threshold must be an intensity in 1..5, got {threshold}")
    labels_dir = root / LABELS_DIR
    if not labels_dir.is_dir():
        raise FileNotFoundError(f"DISFA AU labels not found: expected the folder {labels_dir}")
    disfa_video_path(root, "SN000", camera)  # validates camera early
    frames_root = Path(frames_dir) if frames_dir is not None else root / "frames"
    report = LoadReport(CORPUS)
    subjects = sorted(p.name for p in labels_dir.iterdir() if p.is_dir())
    folds = subject_folds(subjects, num_folds, DISFA_3FOLD)
    tables: list[pd.DataFrame] = []
    for subject in subjects:
        intensities: dict[int, dict[int, int]] = {}
        for au in DISFA_AUS:
            path = labels_dir / subject / f"{subject}_au{au}.txt"
            if not path.is_file():
                report.skip("missing AU file (AU masked for the subject)", example=str(path.relative_to(root)))
                continue
            intensities[au] = read_au_file(path, report)
        if not intensities:
            report.skip("subject without AU files", example=subject)
            continue
        lengths = {au: len(v) for au, v in intensities.items()}
        if len(set(lengths.values())) > 1:
            detail = ", ".join(f"au{au}: {n}" for au, n in lengths.items())
            report.skip("AU files of a subject disagree on frame count", example=f"{subject} ({detail})")
        frames = np.array(sorted(set().union(*intensities.values())), dtype=np.int64)
        if require_media:
            try:
                paths, _ = video_frame_paths(
                    disfa_video_path(root, subject, camera), frames_root / subject, root, extract, quality
                )
            except MediaReadError as err:
                report.skip("video missing or undecodable", count=len(frames), example=str(err))
                continue
            has_frame = np.isin(frames, list(paths))
            if (~has_frame).any():
                report.skip(
                    "labelled frame without video frame", int((~has_frame).sum()),
                    example=f"{subject} frames {frames[~has_frame][:3].tolist()}",
                )
            unlabelled = sorted(set(paths) - set(frames.tolist()))
            if unlabelled:
                report.skip("video frame without labels", len(unlabelled), example=f"{subject} frames {unlabelled[:3]}")
            frames = frames[has_frame]
            path_col = [paths[int(f)] for f in frames]
        else:
            prefix = frames_root / subject
            if prefix.resolve().is_relative_to(root.resolve()):
                prefix = prefix.resolve().relative_to(root.resolve())
            path_col = [(prefix / frame_file_name(int(f))).as_posix() for f in frames]
        table = pd.DataFrame({
            "path": path_col, "corpus": CORPUS,
            "split": "val" if fold is not None and folds[subject] == fold else "train",
            "subject": subject, "video": subject, "frame": frames,
        })
        for au, values in intensities.items():
            raw = np.array([values.get(int(f), -1) for f in frames], dtype=np.int64)
            table[f"AU{au}"] = np.where(raw < 0, np.nan, (raw >= threshold).astype(np.float32))
        tables.append(table)
    return counted(stack_tables(tables), report)


class DISFADataModule(VideoCorpusDataModule):
    """DISFA frames (or sequences) for AU detection; see :func:`make_disfa_manifest`.

    AU columns outside DISFA's 12 are NaN (masked).
    """

    corpus = CORPUS

    def __init__(
        self,
        root: str,
        camera: str = "left",
        threshold: int = 2,
        fold: int | None = 0,
        num_folds: int = 3,
        frames_dir: str | None = None,
        extract: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(root, **kwargs)
        self.hold_parser_args(locals())

