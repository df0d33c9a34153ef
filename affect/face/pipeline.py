"""Decode -> detect (or take given landmarks) -> align -> 96x96x3 uint8 crops (paper Sec. IV).

Pure functions over numpy images; ``affect prepare`` (``affect/prepare.py``) runs them over a
manifest. Three ways to obtain the 5 anchor points of a face, in order of preference:

1. given 5 points (e.g. RAF-DB manual landmarks),
2. given iBUG 68 landmarks (AffectNet, AFEW-VA, Aff-Wild): reduced by :func:`five_from_68`
   and also carried through the transform,
3. MTCNN detection (:class:`FaceDetector`), keeping the ``"largest"``, ``"central"`` or
   ``"all"`` faces.

Intensity scaling to [-1, 1] is *not* done here: crops stay raw uint8 (4x smaller on disk)
and models normalise on device with ``x.float() / 127.5 - 1``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from affect.face.align import align_face, resize_crop, to_rgb
from affect.face.detect import FaceDetector, select_faces
from affect.io import MediaReadError, iter_frames, read_image
from affect.io import is_video as is_video  # re-exported: the face pipeline's callers ask it

#: An image or video that cannot be decoded (counted as "corrupt" by ``affect prepare``).
CorruptInputError = MediaReadError


@dataclass(frozen=True)
class AlignedFace:
    """One aligned face: ``crop`` uint8 [S, S, 3]; ``score`` detector confidence (1.0 for given
    landmarks); ``points5`` float32 [5, 2] in the *source* image; ``landmarks68`` float32 [68, 2]
    in *crop pixels* or None."""

    crop: np.ndarray
    score: float
    points5: np.ndarray
    landmarks68: np.ndarray | None = None


def load_image(path: str | Path) -> np.ndarray:
    """RGB uint8 ``[H, W, 3]`` of an image file, as displayed: :func:`affect.io.read_image` (every
    Pillow mode, EXIF orientation, pixel cap); raises :class:`~affect.io.MediaReadError` naming the file."""
    return read_image(path)


def iter_video_frames(path: str | Path, indices: Sequence[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(frame_index, RGB uint8 [H, W, 3])`` for every decoded frame (0-based), or only ``indices``:
    :func:`affect.io.iter_frames` (one sequential PyAV pass, display rotation applied) without the times."""
    for k, _, rgb in iter_frames(path, indices=indices):
        yield k, rgb


def faces_from_landmarks(
    image: np.ndarray,
    points5: np.ndarray | None = None,
    landmarks68: np.ndarray | None = None,
    size: int = 96,
) -> AlignedFace:
    """Align one face from given 5 points and/or 68 landmarks (no detection)."""
    crop, _, lm = align_face(image, points5=points5, size=size, landmarks68=landmarks68)
    from affect.face.template import five_from_68

    p5 = np.asarray(points5 if points5 is not None else five_from_68(landmarks68), dtype=np.float32)
    return AlignedFace(crop=crop, score=1.0, points5=p5, landmarks68=lm)


def detect_and_align(
    images: Sequence[np.ndarray],
    detector: FaceDetector,
    select: str = "largest",
    size: int = 96,
) -> list[list[AlignedFace]]:
    """Detect (batched) and align faces in RGB/grey/RGBA uint8 images; one list per image
    (empty = no face found)."""
    rgb = [to_rgb(im) for im in images]
    detections = detector.detect(rgb)
    out: list[list[AlignedFace]] = []
    for img, faces in zip(rgb, detections, strict=True):
        aligned = []
        for f in select_faces(faces, select, img.shape):
            crop, _, _ = align_face(img, points5=f.points, size=size)
            aligned.append(AlignedFace(crop=crop, score=f.score, points5=f.points.astype(np.float32)))
        out.append(aligned)
    return out


def crop_only(image: np.ndarray, size: int = 96) -> AlignedFace:
    """For inputs that are already aligned face crops (``--no-detect`` without landmarks)."""
    nan5 = np.full((5, 2), np.nan, np.float32)
    return AlignedFace(crop=resize_crop(image, size), score=float("nan"), points5=nan5)
