"""AFEW-VA (Kossaifi et al., IVC 2017): 600 film clips, per-frame valence/arousal and 68 landmarks.

Native layout read here (``data_cards/afew_va.md``; conforms to the real clip in
``shared/data/corpora/afew_va/001``)::

    <root>/001/001.json   {"actor": ..., "video_id": "001",
                           "frames": {"00000": {"valence": v, "arousal": a, "landmarks": [[x, y] x 68]}, ...}}
    <root>/001/00000.png  (one full frame per JSON key)

Valence and arousal are integers in -10..10 (stored as floats); they are divided by 10 into
[-1, 1] (``docs/corpora.md``, label spaces). Landmarks are pixel coordinates in the full frame,
kept as float32 ``[68, 2]`` in the ``landmarks`` column (the prepare step aligns the face from them). With
``box_margin`` set, the manifest also gets a face box: the landmarks' bounding square enlarged
by that fraction on each side, so that ``FrameDataset`` crops the face without alignment.

Subject = the clip's ``actor`` (the same actor appears in several clips). No official split:
use the datamodule's ``val_fraction`` (subject-independent). Counted in the ``LoadReport``:
clips without / with an unreadable JSON (examples name the file), frames without a PNG, PNGs
without a label, VA values outside -10..10 or missing, landmarks not 68 x 2 (row kept without
landmarks).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from affect.data.datamodule import CorpusDataModule
from affect.data.manifest import LoadReport, counted
from affect.data.textio import read_text

CORPUS = "afew_va"
VA_SCALE = 10.0


def _va(value: object) -> float | None:
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return v / VA_SCALE if math.isfinite(v) and abs(v) <= VA_SCALE else None


def landmark_box(landmarks: np.ndarray, margin: float) -> tuple[float, float, float, float]:
    """Square box (x, y, w, h) around 68 landmarks, enlarged by ``margin`` of its side on each side.

    >>> landmark_box(np.array([[10., 20.], [30., 30.]]), 0.5)
    (0.0, 5.0, 40.0, 40.0)
    """
    lo, hi = landmarks.min(axis=0), landmarks.max(axis=0)
    side = float(max(hi - lo)) * (1 + 2 * margin)
    cx, cy = (lo + hi) / 2
    return float(cx - side / 2), float(cy - side / 2), side, side


def make_afew_va_manifest(
    root: str | Path, box_margin: float | None = None, require_media: bool = True
) -> tuple[pd.DataFrame, LoadReport]:
    """Parse AFEW-VA's clip folders (one row per labelled frame).

    Args:
        root: folder holding the clip folders ``001/ ... 600/``.
        box_margin: if set, add ``box_*`` columns from the landmarks (see module docstring).
        require_media: False = labels only (no PNG checks).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"AFEW-VA root not found: expected the folder {root}")
    clips = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    report = LoadReport(CORPUS)
    records: list[dict] = []
    for clip in clips:
        json_path = clip / f"{clip.name}.json"
        if not json_path.is_file():
            report.skip("clip without <clip>.json", example=str(json_path.relative_to(root)))
            continue
        text = read_text(json_path)  # not UTF-8: a clear error, not a skip (affect.data.textio)
        try:
            data = json.loads(text)
            frames = data["frames"]
            if not isinstance(frames, dict):
                raise TypeError("'frames' is not an object")
        except (ValueError, KeyError, TypeError) as err:
            report.skip("unreadable clip JSON", example=f"{json_path.relative_to(root)}: {err}")
            continue
        actor = str(data.get("actor") or clip.name)
        video = str(data.get("video_id") or clip.name)
        pngs = {n[:-4] for n in os.listdir(clip) if n.endswith(".png")} if require_media else set()
        for key in sorted(frames):
            entry = frames[key]
            where = f"{clip.name}/{key}"
            if require_media and key not in pngs:
                report.skip("labelled frame without PNG", example=where)
                continue
            if not isinstance(entry, dict) or not key.isdigit():
                report.skip("malformed frame entry", example=where)
                continue
            valence, arousal = _va(entry.get("valence")), _va(entry.get("arousal"))
            if valence is None or arousal is None:
                report.skip("valence/arousal missing or outside -10..10", example=f"{where}: {entry.get('valence')!r}, {entry.get('arousal')!r}")
                continue
            landmarks = None
            try:
                lm = np.asarray(entry.get("landmarks"), dtype=np.float32)
                if lm.shape == (68, 2) and np.isfinite(lm).all():
                    landmarks = lm
            except (TypeError, ValueError):
                pass
            if landmarks is None:
                report.skip("landmarks not 68x2 (row kept without them)", example=where)
            row = {
                "path": f"{clip.name}/{key}.png", "corpus": CORPUS, "subject": actor, "video": video,
                "frame": int(key), "valence": valence, "arousal": arousal, "landmarks": landmarks,
            }
            if box_margin is not None:
                box = landmark_box(landmarks, box_margin) if landmarks is not None else (np.nan,) * 4
                row.update(zip(("box_x", "box_y", "box_w", "box_h"), box, strict=True))
            records.append(row)
        unlabelled = pngs - set(frames)
        if unlabelled:
            report.skip("PNG without label", len(unlabelled), example=f"{clip.name}/{sorted(unlabelled)[0]}.png")
    df = pd.DataFrame.from_records(records) if records else pd.DataFrame(columns=["path", "corpus", "landmarks"])
    return counted(df, report)


class AFEWVADataModule(CorpusDataModule):
    """AFEW-VA frames (or sequences per clip) for valence-arousal; ``val_fraction`` splits by actor."""

    corpus = CORPUS

    def __init__(self, root: str, box_margin: float | None = None, **kwargs) -> None:
        super().__init__(root, **kwargs)
        self.hold_parser_args(locals())
