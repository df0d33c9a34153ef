"""Faces linked across video frames into tracks (``face_id``) by box overlap.

A greedy IoU tracker (the SORT association step without its Kalman filter): each new box is
matched to the live track whose last box overlaps it most, in decreasing order of IoU, if that
IoU is at least ``iou_threshold``; unmatched boxes start new tracks; a track not seen for more
than ``max_gap`` frames ends. Ids are 0, 1, 2, ... in order of appearance within one video.

>>> t = IoUTracker(iou_threshold=0.3, max_gap=5)
>>> t.update(0, [np.array([0, 0, 10, 10]), np.array([50, 50, 60, 60])])
[0, 1]
>>> t.update(1, [np.array([51, 50, 61, 60]), np.array([1, 0, 11, 10])])
[1, 0]
>>> t.update(20, [np.array([1, 0, 11, 10])])   # 19 frames later: the old track has ended
[2]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix ``[len(a), len(b)]`` of boxes ``(x1, y1, x2, y2)``.

    >>> box_iou(np.array([[0, 0, 2, 2]]), np.array([[1, 0, 3, 2], [5, 5, 6, 6]])).round(3).tolist()
    [[0.333, 0.0]]
    """
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]).clip(0) * (a[:, 3] - a[:, 1]).clip(0)
    area_b = (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


class IoUTracker:
    """Greedy IoU association of per-frame boxes into tracks (see the module docstring)."""

    def __init__(self, iou_threshold: float = 0.3, max_gap: int = 10) -> None:
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1]; got {iou_threshold}")
        self.iou_threshold = iou_threshold
        self.max_gap = max_gap
        self._boxes: dict[int, np.ndarray] = {}
        self._last: dict[int, int] = {}
        self._next = 0

    def update(self, frame: int, boxes: Sequence[np.ndarray]) -> list[int]:
        """Track ids for ``boxes`` seen at ``frame`` (frames must not decrease)."""
        for tid in [t for t, last in self._last.items() if frame - last > self.max_gap]:
            del self._boxes[tid], self._last[tid]
        ids = [-1] * len(boxes)
        live = list(self._boxes)
        if boxes and live:
            iou = box_iou(np.stack([np.asarray(b) for b in boxes]), np.stack([self._boxes[t] for t in live]))
            order = np.dstack(np.unravel_index(np.argsort(-iou, axis=None), iou.shape))[0]
            used_box, used_track = set(), set()
            for i, j in order:
                if iou[i, j] < self.iou_threshold:
                    break
                if i in used_box or j in used_track:
                    continue
                ids[i] = live[j]
                used_box.add(i)
                used_track.add(j)
        for i, box in enumerate(boxes):
            if ids[i] < 0:
                ids[i] = self._next
                self._next += 1
            self._boxes[ids[i]] = np.asarray(box, np.float64)
            self._last[ids[i]] = frame
        return ids
