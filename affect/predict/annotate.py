"""An annotated copy of a video (the media reader and encoder, :mod:`affect.io`): per face its box, track id, top expression and a
valence-arousal dot in a small VA square beside the box.

Frames skipped by ``frame_stride`` show the annotations of the latest processed frame.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from affect.io import VideoWriter
from affect.predict.media import iter_video

GREEN, WHITE, RED = (0, 200, 0), (255, 255, 255), (230, 40, 40)


def draw_faces(image: np.ndarray, rows: pd.DataFrame) -> np.ndarray:
    """Draw the face rows of one frame onto an RGB uint8 copy of ``image``."""
    out = np.ascontiguousarray(image.copy())
    scale = max(out.shape[:2]) / 640
    thick = max(1, round(2 * scale))
    for _, r in rows.iterrows():
        if not r["face_detected"]:
            continue
        x, y, w, h = (int(round(r[k])) for k in ("box_x", "box_y", "box_w", "box_h"))
        cv2.rectangle(out, (x, y), (x + w, y + h), GREEN, thick)
        label = f"#{int(r['face_id'])}"
        if isinstance(r.get("expression"), str) and r["expression"]:
            label += f" {r['expression']} {r[r['expression']]:.2f}"
        cv2.putText(out, label, (x, max(12, y - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, WHITE, thick, cv2.LINE_AA)
        if "valence" in r and np.isfinite(r["valence"]):
            side = max(24, int(0.4 * h))
            x0, y0 = x + w + 4, y
            cv2.rectangle(out, (x0, y0), (x0 + side, y0 + side), WHITE, 1)
            cv2.line(out, (x0 + side // 2, y0), (x0 + side // 2, y0 + side), WHITE, 1)
            cv2.line(out, (x0, y0 + side // 2), (x0 + side, y0 + side // 2), WHITE, 1)
            cx = x0 + int((np.clip(r["valence"], -1, 1) + 1) / 2 * side)
            cy = y0 + int((1 - np.clip(r["arousal"], -1, 1)) / 2 * side)
            cv2.circle(out, (cx, cy), max(3, side // 10), RED, -1)
    return out


def annotate_video(video: str | Path, rows: pd.DataFrame, dest: str | Path, fps: float | None = None) -> Path:
    """Re-decode ``video`` and write ``dest`` (H.264 MP4, yuv420p) with :func:`draw_faces` on every frame.

    Frames are drawn as displayed (display rotation applied), so the copy needs no rotation tag.
    """
    dest = Path(dest)
    by_frame = {k: g for k, g in rows.groupby("frame")}
    frames = sorted(by_frame)
    current = rows.iloc[:0]
    writer = None
    try:
        nxt = 0
        for k, _, rgb, rate in iter_video(str(video), 1):
            while nxt < len(frames) and frames[nxt] <= k:
                current = by_frame[frames[nxt]]
                nxt += 1
            if writer is None:
                writer = VideoWriter(dest, fps or (rate if np.isfinite(rate) and rate > 0 else 25), codec="h264")
            writer.write(draw_faces(rgb, current))
    finally:
        if writer is not None:
            writer.close()
    return dest
