"""IoU tracking of faces across frames, against hand-computed overlaps."""

from __future__ import annotations

import numpy as np
import pytest

from affect.predict.tracks import IoUTracker, box_iou


def test_box_iou_hand_computed():
    a = np.array([[0, 0, 4, 4]])
    b = np.array([[2, 2, 6, 6], [0, 0, 4, 4], [10, 10, 12, 12], [0, 0, 4, 2]])
    np.testing.assert_allclose(box_iou(a, b)[0], [4 / 28, 1.0, 0.0, 8 / 16])


def test_crossing_faces_keep_their_ids_and_gaps_end_tracks():
    t = IoUTracker(iou_threshold=0.3, max_gap=2)
    left, right = np.array([0, 0, 10, 10.0]), np.array([20, 0, 30, 10.0])
    assert t.update(0, [left, right]) == [0, 1]
    step = np.array([2, 0, 2, 0.0])
    assert t.update(1, [right - step, left + step]) == [1, 0]  # order of detections does not matter
    assert t.update(2, []) == []
    assert t.update(3, [left + 2 * step]) == [0]  # a gap of 2 frames keeps the track
    assert t.update(10, [left + 2 * step]) == [2]  # 7 frames later: a new track


def test_one_box_cannot_take_two_tracks():
    t = IoUTracker(iou_threshold=0.1, max_gap=5)
    t.update(0, [np.array([0, 0, 10, 10.0]), np.array([5, 0, 15, 10.0])])
    ids = t.update(1, [np.array([2, 0, 12, 10.0])])
    assert ids in ([0], [1])
    with pytest.raises(ValueError, match="iou_threshold"):
        IoUTracker(iou_threshold=0.0)
