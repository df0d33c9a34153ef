"""5-point similarity alignment and 96x96x3 crop (paper Sec. IV).

The paper computes "the affinity transformation between the coordinates of these 5 landmarks
and the coordinates of the 5 landmarks of the frontal face" and applies it to the frame. We
use a *similarity* (rotation + uniform scale + translation, 4 degrees of freedom): a full
affine from 5 noisy points can shear the face, and a similarity is what every standard
alignment (insightface, dlib's ``get_face_chip``) uses. The least-squares fit is OpenCV's
``estimateAffinePartial2D`` with a reprojection threshold so large that all 5 points are
inliers (no RANSAC rejection) followed by its Levenberg-Marquardt refinement, i.e. the
least-squares similarity (Umeyama) solution.

>>> tpl = frontal_template(96)
>>> M = similarity_transform(tpl * 2 + 5, tpl)       # a face twice as big, shifted by 5 px
>>> (np.round(M, 3) + 0.0).tolist()
[[0.5, 0.0, -2.5], [0.0, 0.5, -2.5]]
"""

from __future__ import annotations

import cv2
import numpy as np

from affect.face.template import five_from_68, frontal_template

#: threshold (px) that makes every point a RANSAC inlier, so the fit is plain least squares.
_ALL_INLIERS = 1e9


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity ``[2, 3]`` (float64) mapping ``src`` points [N, 2] onto ``dst``."""
    src = np.asarray(src, dtype=np.float64).reshape(-1, 2)
    dst = np.asarray(dst, dtype=np.float64).reshape(-1, 2)
    if src.shape != dst.shape or len(src) < 2:
        raise ValueError(f"need two matching point sets of >= 2 points; got {src.shape} and {dst.shape}")
    if not np.isfinite(src).all():
        raise ValueError("source landmarks contain NaN/inf")
    M, _ = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=_ALL_INLIERS, maxIters=1, refineIters=50
    )
    if M is None:
        raise ValueError(f"could not estimate a similarity from points {src.tolist()}")
    return M


def apply_transform(M: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a ``[2, 3]`` affine matrix to points ``[..., 2]``."""
    pts = np.asarray(points, dtype=np.float64)
    return pts @ M[:, :2].T + M[:, 2]


def to_rgb(image: np.ndarray) -> np.ndarray:
    """Return an ``[H, W, 3]`` uint8 RGB view of a grey ``[H, W]``/``[H, W, 1]``, RGB or RGBA image.

    RGBA is composited over black by dropping alpha (the colour channels are kept as stored).
    """
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image; got dtype {img.dtype}")
    if img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2)
    if img.ndim == 3 and img.shape[2] == 1:
        return np.repeat(img, 3, axis=2)
    if img.ndim == 3 and img.shape[2] == 3:
        return img
    if img.ndim == 3 and img.shape[2] == 4:
        return np.ascontiguousarray(img[:, :, :3])
    raise ValueError(f"expected an image [H, W], [H, W, 1], [H, W, 3] or [H, W, 4]; got shape {img.shape}")


def align_face(
    image: np.ndarray,
    points5: np.ndarray | None = None,
    size: int = 96,
    landmarks68: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Warp ``image`` so that its 5 points land on :func:`frontal_template` and crop ``size`` x ``size``.

    Args:
        image: uint8 ``[H, W]``, ``[H, W, 3]`` (RGB) or ``[H, W, 4]``.
        points5: ``[5, 2]`` (x, y) left eye, right eye, nose, left/right mouth corner. If None,
            they are derived from ``landmarks68`` (:func:`five_from_68`).
        size: output side in pixels (96 in the paper).
        landmarks68: optional iBUG ``[68, 2]`` landmarks, carried through the same transform.

    Returns:
        ``(crop uint8 [size, size, 3], M float64 [2, 3], landmarks68 in crop pixels or None)``.
    """
    if points5 is None:
        if landmarks68 is None:
            raise ValueError("align_face needs points5 or landmarks68")
        points5 = five_from_68(landmarks68)
    rgb = to_rgb(image)
    M = similarity_transform(points5, frontal_template(size))
    crop = warp_area(rgb, M, size)
    lm = None if landmarks68 is None else apply_transform(M, landmarks68).astype(np.float32)
    return crop, M, lm


#: the most sub-samples per output pixel side when a warp shrinks (a face 8x the crop or larger: 8 x 8)
MAX_SUPERSAMPLE = 8


def warp_area(image: np.ndarray, M: np.ndarray, size: int, border: int = cv2.BORDER_CONSTANT) -> np.ndarray:
    """``image`` warped by the ``[2, 3]`` affine ``M`` into ``size x size`` (bilinear), each output pixel
    the mean of ``m x m`` bilinear samples when ``M`` shrinks by ``1 / m`` or more (``m`` up to
    :data:`MAX_SUPERSAMPLE`), as area interpolation would: a plain bilinear warp of a face twice the
    crop's size aliases, and the crop then changes with sub-pixel shifts of the points.

    >>> img = np.zeros((8, 8, 3), np.uint8); img[:, ::2] = 255            # 1-pixel stripes
    >>> M = np.array([[0.5, 0, 0], [0, 0.5, 0]])                           # shrink 2x
    >>> int(warp_area(img, M, 4)[1, 1, 0]), int(cv2.warpAffine(img, M, (4, 4))[1, 1, 0])
    (128, 255)
    """
    M = np.asarray(M, np.float64)
    scale = float(np.sqrt(abs(np.linalg.det(M[:, :2]))))
    m = 1 if scale >= 1 else min(int(np.ceil(1 / scale - 1e-6)), MAX_SUPERSAMPLE)
    if m == 1:
        return cv2.warpAffine(image, M, (size, size), flags=cv2.INTER_LINEAR, borderMode=border, borderValue=(0, 0, 0))
    fine = M * m
    fine[:, 2] += (m - 1) / 2  # output pixel i is the mean of sub-pixels m*i .. m*i + m - 1
    big = cv2.warpAffine(image, fine, (size * m, size * m), flags=cv2.INTER_LINEAR, borderMode=border,
                         borderValue=(0, 0, 0))  # fmt: skip
    return cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)


def resize_crop(image: np.ndarray, size: int = 96) -> np.ndarray:
    """For inputs that are already face crops (FER2013, RAF-DB aligned): RGB + resize to ``size``.

    >>> resize_crop(np.zeros((48, 48), np.uint8)).shape
    (96, 96, 3)
    """
    rgb = to_rgb(image)
    if rgb.shape[:2] == (size, size):
        return rgb
    interp = cv2.INTER_LINEAR if rgb.shape[0] < size else cv2.INTER_AREA
    return cv2.resize(rgb, (size, size), interpolation=interp)
