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

from affect.data.images import ImageReadError, read_image
from affect.errors import InputFileError
from affect.face.align import align_face, resize_crop, to_rgb
from affect.face.detect import Face, FaceDetector, is_face_crop, select_faces, too_small
from affect.face.template import crop_points

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".mpg", ".mpeg", ".webm", ".m4v", ".flv", ".wmv")


class CorruptInputError(InputFileError):
    """An image or video that cannot be decoded (counted as "corrupt" by ``affect prepare``)."""


@dataclass(frozen=True)
class AlignedFace:
    """One aligned face: ``crop`` uint8 [S, S, 3]; ``score`` detector confidence (1.0 for given
    landmarks, NaN for a whole image); ``points5`` float32 [5, 2] in the *source* image; ``landmarks68``
    float32 [68, 2] in *crop pixels* or None; ``source``: how the points were obtained (one of
    :data:`FACE_SOURCES`)."""

    crop: np.ndarray
    score: float
    points5: np.ndarray
    landmarks68: np.ndarray | None = None
    source: str = "detected"


#: ``detected`` (MTCNN), ``landmarks`` (given by the corpus), ``whole_image`` (a face-crop image in which
#: no face was found, aligned from :data:`~affect.face.template.CROP_POINTS`), ``resized`` (taken as an
#: aligned crop, only resized: ``affect prepare --no-detect``).
FACE_SOURCES = ("detected", "landmarks", "whole_image", "resized")


def load_image(path: str | Path) -> np.ndarray:
    """Decode an image file to RGB uint8 ``[H, W, 3]`` with the shared reader (:func:`affect.data.images.read_image`:
    grey, palette, RGBA, CMYK converted; 16-bit and float images scaled, not clipped).

    Raises :class:`CorruptInputError` naming the file when it cannot be read.
    """
    try:
        return read_image(path)
    except ImageReadError as e:
        raise CorruptInputError(f"cannot decode image {str(path)!r}: {e}") from e


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def iter_video_frames(path: str | Path, indices: Sequence[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(frame_index, RGB uint8 [H, W, 3])`` for every decoded frame (0-based), or only ``indices``.

    Decoding is sequential (one pass) with PyAV.
    """
    import av

    wanted = None if indices is None else set(int(i) for i in indices)
    last = None if wanted is None else max(wanted, default=-1)
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for k, frame in enumerate(container.decode(stream)):
                if last is not None and k > last:
                    break
                if wanted is None or k in wanted:
                    yield k, frame.to_ndarray(format="rgb24")
    except (av.error.FFmpegError, IndexError) as e:
        raise CorruptInputError(f"cannot decode video {str(path)!r}: {e}") from e


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
    return AlignedFace(crop=crop, score=1.0, points5=p5, landmarks68=lm, source="landmarks")


def detect_faces(images: Sequence[np.ndarray], detector: FaceDetector, select: str = "all") -> list[list[Face]]:
    """The one detection rule of ``affect prepare``, the datasets and ``affect predict`` (RGB uint8 images).

    Images that are face crops (:func:`~affect.face.detect.is_face_crop`: FER2013, aligned corpus crops) are
    detected on a padded, enlarged copy (:meth:`FaceDetector.detect_crops`); when no face is found in one,
    the whole image is taken as the face, its points at :data:`~affect.face.template.CROP_POINTS`
    (``score`` NaN: :func:`is_whole_image`). Larger images are detected as they are (downscaled copies of
    huge ones): no face found -> an empty list, as for images smaller than the detector's ``min_face_size``.
    Faces are kept by ``select``, largest first.
    """
    out: list[list[Face]] = [[] for _ in images]
    small = [i for i, im in enumerate(images) if is_face_crop(im.shape) and not too_small(im.shape, detector.min_face_size)]
    large = sorted(set(range(len(images))) - set(small))  # too small ones get no face from detect()
    for idx, found in ((large, detector.detect([images[i] for i in large]) if large else []),
                       (small, detector.detect_crops([images[i] for i in small]) if small else [])):
        for i, faces in zip(idx, found, strict=True):
            out[i] = sorted(select_faces(faces, select, images[i].shape), key=lambda f: -f.area)
    for i in small:
        if not out[i]:
            out[i] = [whole_image_face(images[i].shape)]
    return out


def whole_image_face(shape: tuple[int, ...]) -> Face:
    """The face of a face-crop image in which none was detected: the whole image, points at
    :data:`~affect.face.template.CROP_POINTS`, score NaN.

    >>> f = whole_image_face((48, 64, 3)); f.box.tolist(), is_whole_image(f)
    ([0.0, 0.0, 64.0, 48.0], True)
    """
    h, w = shape[:2]
    box = np.array([0, 0, w, h], np.float32)
    return Face(box=box, score=float("nan"), points=crop_points(shape).astype(np.float32))


def is_whole_image(face: Face) -> bool:
    """Whether ``face`` is :func:`whole_image_face` (a detected face always has a finite score)."""
    return not np.isfinite(face.score)


def detect_and_align(
    images: Sequence[np.ndarray],
    detector: FaceDetector,
    select: str = "largest",
    size: int = 96,
) -> list[list[AlignedFace]]:
    """:func:`detect_faces` + :func:`~affect.face.align.align_face` on RGB/grey/RGBA uint8 images; one list
    per image (empty = no face found in a large image)."""
    rgb = [to_rgb(im) for im in images]
    out: list[list[AlignedFace]] = []
    for img, faces in zip(rgb, detect_faces(rgb, detector, select), strict=True):
        aligned = []
        for f in faces:
            crop, _, _ = align_face(img, points5=f.points, size=size)
            source = "whole_image" if is_whole_image(f) else "detected"
            aligned.append(AlignedFace(crop=crop, score=f.score, points5=f.points.astype(np.float32), source=source))
        out.append(aligned)
    return out


def crop_only(image: np.ndarray, size: int = 96) -> AlignedFace:
    """For inputs that are already aligned face crops (``--no-detect`` without landmarks)."""
    nan5 = np.full((5, 2), np.nan, np.float32)
    return AlignedFace(crop=resize_crop(image, size), score=float("nan"), points5=nan5, source="resized")
