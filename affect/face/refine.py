"""Landmark refinement: MTCNN's last stage (O-Net) run again on a box that is a fixed function of the
5 points, a few times, so that a face's points no longer depend on how it was found.

MTCNN's points come from O-Net looking at a box proposed by its earlier stages, and those boxes
depend on the scale pyramid (``min_face_size``, ``min_face_fraction``) and on the frame a tracked face
was detected in. The same face thus gets points a few pixels apart from run to run, and an expression
network sees a shifted crop: measured on 369 faces of real videos (pyfeat, GRID), MTCNN's points
at ``min_face_size 20`` and at ``0.15`` of the frame's short side differ by 3.6 % of the eye distance
(mean of the largest coordinate difference), and the default model's expression probabilities by
0.053 (mean of the largest class difference). Looking at :func:`points_box` of the points instead
makes the points a fixed point of ``points -> O-Net(points_box(points))``; after 2 passes the points
differ by 0.5 % of the eye distance and the probabilities by 0.010 (``benchmarks/bench_predict.py``
measures it end to end: docs/predict_speed.md).

:func:`points_box`'s geometry is MTCNN's own: on 429 detected faces (real videos and FER2013), the
median centre of MTCNN's final box lies 0.21 ``s`` above the mean of the 5 points (towards the eyes)
and its longer side is 2.65 ``s``, ``s`` the distance from the eyes' midpoint to the mouth's.
O-Net is shown that box as MTCNN shows it its own, but at sub-pixel precision: resized to 48 x 48
with area averaging (:func:`~affect.face.align.warp_area`; edges replicated past the image), scaled
by ``(x - 127.5) / 128``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: ``points_box``: the box centre's offset from the points' mean, and its side, in units of ``s``
CENTRE_OFFSET, BOX_SIDE = 0.21, 2.65
#: O-Net's input side (px)
ONET_SIDE = 48


def points_box(points: np.ndarray) -> np.ndarray:
    """The square box ``[x1, y1, x2, y2]`` (float64) that O-Net is shown for a face's 5 points
    (left eye, right eye, nose, left and right mouth corner).

    >>> points_box(np.array([[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]], float)).round(2).tolist()
    [-3.0, -1.4, 103.0, 104.6]
    """
    p = np.asarray(points, np.float64)
    eyes, mouth = (p[0] + p[1]) / 2, (p[3] + p[4]) / 2
    s = max(float(np.hypot(*(mouth - eyes))), 1e-3)
    up = (eyes - mouth) / s
    c = p.mean(0) + CENTRE_OFFSET * s * up
    half = BOX_SIDE * s / 2
    return np.array([c[0] - half, c[1] - half, c[0] + half, c[1] + half])


def onet_crop(image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """O-Net's ``48 x 48 x 3`` uint8 input: the square ``box`` of an RGB uint8 image, area-averaged
    (:func:`~affect.face.align.warp_area`; sub-pixel, edges replicated where it leaves the image)."""
    import cv2

    from affect.face.align import warp_area

    k = ONET_SIDE / max(float(box[2] - box[0]), 1e-3)
    # MTCNN's geometry: the box's L source pixels from index box[0] on, area-resized to 48 (output pixel
    # u covers source box[0] - 0.5 + [u, u + 1] / k); O-Net's points are then box[0] + its output x L
    M = np.array([[k, 0.0, 0.5 * k - 0.5 - box[0] * k], [0.0, k, 0.5 * k - 0.5 - box[1] * k]])
    return warp_area(image, M, ONET_SIDE, border=cv2.BORDER_REPLICATE)


def refine_points(onet, images: Sequence[np.ndarray], points: Sequence[np.ndarray], passes: int = 2) -> list[np.ndarray]:
    """Each face's 5 points after ``passes`` O-Net passes (``points[i]`` float ``[5, 2]`` in ``images[i]``;
    several faces may share an image object); all faces of a pass in one O-Net call."""
    import torch

    out = [np.asarray(p, np.float32) for p in points]
    if not out or passes <= 0:
        return out
    param = next(onet.parameters())
    for _ in range(passes):
        boxes = [points_box(p) for p in out]
        crops = [onet_crop(img, b) for img, b in zip(images, boxes, strict=True)]
        x = torch.from_numpy(np.stack(crops)).to(param.device).permute(0, 3, 1, 2).float()
        with torch.inference_mode():
            _, rel, _ = onet((x - 127.5) * 0.0078125)
        rel = rel.float().cpu().numpy()  # [N, 10]: x of the 5 points, then y, as fractions of the box
        new = [
            np.stack([b[0] + r[:5] * (b[2] - b[0]), b[1] + r[5:] * (b[3] - b[1])], 1).astype(np.float32)
            for r, b in zip(rel, boxes, strict=True)
        ]
        out = [n if np.isfinite(n).all() else p for n, p in zip(new, out, strict=True)]  # never worse than given
    return out


def moved_box(box: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """``box`` moved as the points moved from ``before`` to ``after``: shifted with their mean, scaled
    with their spread about it (a carried face's box follows its refined points).

    >>> pts = np.array([[0, 0], [2, 0], [1, 1], [0, 2], [2, 2]], float)
    >>> moved_box(np.array([0, 0, 2, 2.]), pts, pts * 2 + 10).tolist()
    [10.0, 10.0, 14.0, 14.0]
    """
    before, after = np.asarray(before, np.float64), np.asarray(after, np.float64)
    cb, ca = before.mean(0), after.mean(0)
    sb = float(np.sqrt(((before - cb) ** 2).sum(1).mean()))
    sa = float(np.sqrt(((after - ca) ** 2).sum(1).mean()))
    k = sa / sb if sb > 1e-6 else 1.0
    b = np.asarray(box, np.float64).reshape(2, 2)
    return ((b - cb) * k + ca).reshape(4).astype(np.float32)
