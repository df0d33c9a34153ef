"""Aff-Wild2 release layout: folder names, header fields, sentinels, and where files live.

The two ABAW annotation layouts (``LAYOUTS``: "abaw3", "abaw5"), the ``cropped_aligned`` frame
names, the subject of a video and its raw audio-visual file. No parsing here
(:mod:`~affect.data.corpora.affwild2.annotations`).
"""

from __future__ import annotations

from pathlib import Path

from affect.labels import EXPR_CLASSES

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

