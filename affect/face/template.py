"""The frontal 5-point face template and the 68 -> 5 landmark reduction (paper Sec. IV).

The paper aligns every frame by the transform between 5 detected landmarks (left eye,
right eye, nose, two mouth corners) and "the 5 landmarks of a prototypical frontal face",
then crops 96x96x3. It does not publish its template, so we fix one here:

- the ArcFace / insightface 5-point template for 112x112 crops (the de-facto standard
  frontal template, eyes at y = 51.7, mouth corners at y = 92.3),
- zoomed out about the crop centre by ``ZOOM = 0.85`` so that brows and chin stay inside
  the crop (affect needs the whole face, not only the identity-bearing centre),
- scaled to the output size (96 by default).

At 96x96 the points are (x, y), in pixels, origin at the top-left pixel corner:

>>> np.round(frontal_template(96), 1).tolist()
[[35.1, 44.9], [60.8, 44.7], [48.0, 59.5], [37.5, 74.5], [58.7, 74.4]]

Point order everywhere in ``affect``: left eye, right eye, nose tip, left mouth corner,
right mouth corner, where "left" is the image-left (the subject's right eye), as MTCNN and
dlib/iBUG-68 order them.
"""

from __future__ import annotations

import numpy as np

#: insightface ``arcface_dst`` for 112x112 crops (x, y).
ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
#: zoom-out factor applied about the crop centre (1.0 = the tight ArcFace crop).
ZOOM = 0.85

#: Where the 5 points of a face sit in a loose face crop, as fractions (x / width, y / height): the mean of
#: MTCNN's points over the faces found in 400 FER2013 training images (seeded sample; :class:`~affect.face.detect.
#: CropDetection`). A face-crop image in which no face is found is aligned as if its points were here
#: (:func:`crop_points`), so that it is framed like the detected ones.
CROP_POINTS = np.array(
    [[0.322, 0.380], [0.691, 0.373], [0.499, 0.595], [0.354, 0.791], [0.661, 0.787]], dtype=np.float64
)

#: iBUG 68-point indices (0-based) used for the 5 anchor points.
LEFT_EYE_68 = tuple(range(36, 42))
RIGHT_EYE_68 = tuple(range(42, 48))
NOSE_TIP_68 = 30
MOUTH_LEFT_68 = 48
MOUTH_RIGHT_68 = 54


def frontal_template(size: int = 96, zoom: float = ZOOM) -> np.ndarray:
    """Template 5 points (float64 [5, 2], pixel (x, y)) for a ``size`` x ``size`` aligned crop."""
    if size <= 0:
        raise ValueError(f"size must be positive; got {size}")
    centre = 112.0 / 2.0
    pts = (ARCFACE_112 - centre) * zoom + centre
    return pts * (size / 112.0)


def crop_points(shape: tuple[int, ...]) -> np.ndarray:
    """:data:`CROP_POINTS` in the pixels of an image of ``shape`` (float64 [5, 2]).

    >>> crop_points((48, 48)).round(2).tolist()[0]
    [15.46, 18.24]
    """
    h, w = shape[:2]
    return CROP_POINTS * np.array([w, h], dtype=np.float64)


def five_from_68(landmarks: np.ndarray) -> np.ndarray:
    """Reduce iBUG 68 landmarks ``[..., 68, 2]`` to the 5 anchor points ``[..., 5, 2]``.

    Eye centres are the mean of the eye contours (points 36-41 and 42-47), the nose is the
    tip (30), the mouth corners are 48 and 54.

    >>> lm = np.zeros((68, 2)); lm[36:42] = [10, 20]; lm[42:48] = [30, 20]; lm[30] = [20, 30]
    >>> lm[48] = [12, 40]; lm[54] = [28, 40]
    >>> five_from_68(lm).tolist()
    [[10.0, 20.0], [30.0, 20.0], [20.0, 30.0], [12.0, 40.0], [28.0, 40.0]]
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.shape[-2:] != (68, 2):
        raise ValueError(f"expected 68 landmarks of shape [..., 68, 2]; got shape {lm.shape}")
    return np.stack(
        [
            lm[..., LEFT_EYE_68, :].mean(axis=-2),
            lm[..., RIGHT_EYE_68, :].mean(axis=-2),
            lm[..., NOSE_TIP_68, :],
            lm[..., MOUTH_LEFT_68, :],
            lm[..., MOUTH_RIGHT_68, :],
        ],
        axis=-2,
    )
