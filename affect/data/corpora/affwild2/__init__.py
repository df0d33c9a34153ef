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

:mod:`~affect.data.corpora.affwild2.layout` holds the folder names and constants,
:mod:`~affect.data.corpora.affwild2.annotations` the per-file parsing; this module merges the tasks
into the manifest and holds the data module.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from affect.data.batches import TASKS
from affect.data.corpora.affwild2.annotations import _task_table
from affect.data.corpora.affwild2.layout import (
    AU_HEADERS,
    CORPUS,
    EXPR_HEADERS,
    FRAMES_DIR,
    LABEL_SENTINEL,
    LAYOUTS,
    OTHER,
    SPLIT_FOLDERS,
    VA_HEADER,
    VA_SENTINEL,
    _annotation_dir,
    affwild2_video_path,
    detect_layout,
    frame_name,
    subject_of,
)
from affect.data.corpora.affwild2.predictions import (
    prediction_header,
    read_affwild2_predictions,
    write_affwild2_predictions,
)
from affect.data.datamodule import CorpusDataModule
from affect.data.manifest import LoadReport, validate_manifest

__all__ = [
    "AU_HEADERS",
    "CORPUS",
    "EXPR_HEADERS",
    "FRAMES_DIR",
    "LABEL_SENTINEL",
    "LAYOUTS",
    "OTHER",
    "SPLIT_FOLDERS",
    "VA_HEADER",
    "VA_SENTINEL",
    "AffWild2DataModule",
    "affwild2_video_path",
    "detect_layout",
    "frame_name",
    "make_affwild2_manifest",
    "prediction_header",
    "read_affwild2_predictions",
    "subject_of",
    "write_affwild2_predictions",
]

log = logging.getLogger(__name__)


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
