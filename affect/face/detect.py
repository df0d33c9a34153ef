"""Batched face detection with facenet-pytorch's MTCNN (replaces the paper's SSH detector, Sec. IV).

MTCNN returns, per face, a box, a confidence and the same 5 anchor points the paper's
alignment uses (eyes, nose, mouth corners), so no separate landmark detector is needed.
Its weights ship inside the ``facenet_pytorch`` wheel (``facenet_pytorch/data/*.pt``):
nothing is downloaded. Images of equal size are detected as one batch on CPU or GPU.

Which face(s) to keep when an image shows several is :func:`select_faces` (``"largest"``,
``"central"`` or ``"all"``).

Odd sizes: an image whose shorter side is below ``min_face_size`` cannot hold a face MTCNN
searches for (its scale pyramid would be empty and facenet fails in ``torch.cat``), so it gets
no face without reaching MTCNN (:func:`too_small`). Each face's points are then refined by O-Net
on a box made from them (:mod:`affect.face.refine`), so they do not depend on the pyramid. An image
whose longer side exceeds ``max_side`` is detected on a copy downscaled to ``max_side`` (area
interpolation) and the boxes and points are scaled back: MTCNN's first stage runs at full
resolution, so a 50-megapixel photo would otherwise need gigabytes. Faces smaller than
``min_face_size`` pixels *in the copy* are then not searched for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from affect.face.refine import moved_box, refine_points

SELECT_MODES = ("largest", "central", "all")
#: default bound on the longer image side seen by MTCNN (a 4K frame is detected at 1920 px)
MAX_DETECT_SIDE = 1920
#: default O-Net passes refining each face's points (:mod:`affect.face.refine`)
REFINE_PASSES = 2


@dataclass(frozen=True)
class CropDetection:
    """How faces are searched for in images that are already face crops (a shorter side of at most
    ``max_side`` px: FER2013's 48 px, RAF-DB's 100 px aligned crops).

    MTCNN misses most faces that fill their image: the face touches the borders and is near the
    pyramid's smallest scale. Such an image is detected on a copy padded by ``pad`` of its side on
    every border (edge pixels replicated) and resized so its shorter side is ``side`` px, with the
    looser ``thresholds`` / ``min_score`` below, faces of at least ``min_face`` px of the copy.
    Measured on 400 FER2013 training images (seeded sample): plain MTCNN finds 81 %; padded 25 % and
    resized to 144 px, 86.5 %; with these thresholds 91.5 % (no image got two faces).

    Their points are not refined (``refine_passes`` 0, :mod:`affect.face.refine`): a face crop is found
    once, with these fixed settings, so there is no pyramid or track for the points to depend on, and
    on the enlarged, edge-replicated copy O-Net drifts: on 600 held-out FER2013 images 2 passes moved
    the points by 12 % of the eye distance (mean of the largest difference), widened the eye distance
    by 3 %, and cost the default model 0.012 accuracy (0.613 -> 0.602).
    """

    max_side: int = 128
    pad: float = 0.25
    side: int = 144
    thresholds: tuple[float, float, float] = (0.5, 0.6, 0.6)
    min_score: float = 0.6
    min_face: int = 40
    refine_passes: int = 0


CROP_DETECTION = CropDetection()


def is_face_crop(shape: tuple[int, ...], crops: CropDetection = CROP_DETECTION) -> bool:
    """Whether an image of ``shape`` is detected as a face crop (:class:`CropDetection`).

    >>> is_face_crop((48, 48, 3)), is_face_crop((360, 640, 3))
    (True, False)
    """
    return min(shape[:2]) <= crops.max_side


def too_small(shape: tuple[int, ...], min_face_size: int) -> bool:
    """True if an image of ``shape`` is smaller than the smallest face searched for.

    >>> too_small((19, 400, 3), 20), too_small((20, 20, 3), 20)
    (True, False)
    """
    return min(shape[:2]) < min_face_size


@dataclass(frozen=True)
class Face:
    """One detected face: ``box`` float32 [4] (x1, y1, x2, y2), ``score`` in [0, 1], ``points`` float32 [5, 2]."""

    box: np.ndarray
    score: float
    points: np.ndarray

    @property
    def area(self) -> float:
        return float(max(self.box[2] - self.box[0], 0.0) * max(self.box[3] - self.box[1], 0.0))


def select_faces(faces: Sequence[Face], mode: str, image_shape: tuple[int, ...]) -> list[Face]:
    """Keep the largest face, the face whose box centre is nearest the image centre, or all faces.

    >>> small = Face(np.array([0, 0, 10, 10], np.float32), 0.9, np.zeros((5, 2), np.float32))
    >>> big = Face(np.array([60, 60, 100, 100], np.float32), 0.9, np.zeros((5, 2), np.float32))
    >>> [f.area for f in select_faces([small, big], "largest", (100, 100))]
    [1600.0]
    >>> [f.area for f in select_faces([small, big], "central", (20, 20))]
    [100.0]
    """
    if mode not in SELECT_MODES:
        raise ValueError(f"face selection must be one of {SELECT_MODES}; got {mode!r}")
    faces = list(faces)
    if mode == "all" or len(faces) <= 1:
        return faces
    if mode == "largest":
        return [max(faces, key=lambda f: f.area)]
    h, w = image_shape[:2]
    centre = np.array([w / 2.0, h / 2.0])

    def dist(f: Face) -> float:
        c = np.array([(f.box[0] + f.box[2]) / 2.0, (f.box[1] + f.box[3]) / 2.0])
        return float(np.hypot(*(c - centre)))

    return [min(faces, key=dist)]


class FaceDetector:
    """MTCNN over batches of RGB uint8 images.

    Args:
        device: "cpu", "cuda", "cuda:1", ...
        min_face_size: smallest face side (px) searched for.
        thresholds: P-Net, R-Net, O-Net confidence thresholds (MTCNN defaults).
        batch_size: images per MTCNN call (equal-size images only are batched together).
        min_score: faces below this final confidence are discarded.
        max_side: images with a longer side above this are detected on a downscaled copy
            (None: never downscale).
        refine: O-Net passes over each face's points on a box made from them
            (:mod:`affect.face.refine`: the points stop depending on the scale pyramid; 0 = MTCNN's points).
    """

    def __init__(
        self,
        device: str = "cpu",
        min_face_size: int = 20,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        batch_size: int = 16,
        min_score: float = 0.9,
        max_side: int | None = MAX_DETECT_SIDE,
        refine: int = REFINE_PASSES,
    ) -> None:
        from facenet_pytorch import MTCNN  # imported lazily: torch-heavy

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}")
        if min_face_size < 1:
            raise ValueError(f"min_face_size must be >= 1; got {min_face_size}")
        if refine < 0:
            raise ValueError(f"refine must be >= 0 passes; got {refine}")
        if max_side is not None and max_side < min_face_size:
            raise ValueError(f"max_side must be >= min_face_size ({min_face_size}); got {max_side}")
        self.batch_size = batch_size
        self.min_score = min_score
        self.min_face_size = min_face_size
        self.max_side = max_side
        self.refine_passes = refine
        self.mtcnn = MTCNN(
            keep_all=True, select_largest=False, min_face_size=min_face_size,
            thresholds=list(thresholds), device=device, post_process=False,
        )

    def detect(self, images: Sequence[np.ndarray]) -> list[list[Face]]:
        """Detect faces in each RGB uint8 ``[H, W, 3]`` image; returns one (possibly empty) list per image."""
        out: list[list[Face]] = [[] for _ in images]
        by_shape: dict[tuple[int, ...], list[int]] = {}
        seen: list[np.ndarray] = list(images)  # what MTCNN sees (downscaled copies of huge images)
        scale = np.ones(len(images))
        for i, img in enumerate(images):
            if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                raise ValueError(f"detect expects RGB uint8 [H, W, 3] images; image {i} has {img.shape} {img.dtype}")
            if self.max_side is not None and max(img.shape[:2]) > self.max_side:
                seen[i], scale[i] = _downscale(img, self.max_side)
            if too_small(seen[i].shape, self.min_face_size):
                continue  # no face of the searched size fits (MTCNN itself would fail)
            by_shape.setdefault(seen[i].shape, []).append(i)
        for idx in by_shape.values():
            for start in range(0, len(idx), self.batch_size):
                chunk = idx[start : start + self.batch_size]
                batch = np.stack([seen[i] for i in chunk])
                boxes, probs, points = self.mtcnn.detect(batch, landmarks=True)
                faces = [self._faces(*f) for f in zip(boxes, probs, points, strict=True)]
                found = self.refine([seen[i] for i in chunk], faces)  # in the image MTCNN saw
                for i, faces in zip(chunk, found, strict=True):
                    k = np.float32(1.0 / scale[i])
                    out[i] = faces if k == 1 else [Face(box=f.box * k, score=f.score, points=f.points * k) for f in faces]
        return out

    def refine(self, images: Sequence[np.ndarray], faces: Sequence[Sequence[Face]]) -> list[list[Face]]:
        """``faces[i]`` (in RGB uint8 ``images[i]``) with their points refined by ``refine`` O-Net passes
        (:func:`~affect.face.refine.refine_points`, all faces in one call per pass) and their boxes moved
        with them (:func:`~affect.face.refine.moved_box`); scores kept."""
        flat = [(i, f) for i, fs in enumerate(faces) for f in fs]
        out: list[list[Face]] = [[] for _ in faces]
        if not flat or self.refine_passes == 0:
            return [list(fs) for fs in faces]
        points = refine_points(self.mtcnn.onet, [images[i] for i, _ in flat], [f.points for _, f in flat],
                               self.refine_passes)  # fmt: skip
        for (i, f), p in zip(flat, points, strict=True):
            out[i].append(Face(box=moved_box(f.box, f.points, p), score=f.score, points=p))
        return out

    def detect_crops(self, images: Sequence[np.ndarray], crops: CropDetection = CROP_DETECTION) -> list[list[Face]]:
        """Detect faces in images that are face crops (:class:`CropDetection`); boxes and points in the
        images' own pixels (they may reach past the borders)."""
        import cv2

        seen, maps = [], []
        for img in images:
            h, w = img.shape[:2]
            pad = int(round(crops.pad * min(h, w)))
            padded = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
            scale = crops.side / min(padded.shape[:2])
            size = (max(1, round(padded.shape[1] * scale)), max(1, round(padded.shape[0] * scale)))
            interp = cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA
            seen.append(cv2.resize(padded, size, interpolation=interp))
            maps.append((scale, pad))
        saved = (self.mtcnn.thresholds, self.mtcnn.min_face_size, self.min_score, self.max_side, self.refine_passes)
        self.mtcnn.thresholds, self.mtcnn.min_face_size = list(crops.thresholds), crops.min_face
        self.min_score, self.max_side, self.refine_passes = crops.min_score, None, crops.refine_passes
        try:
            found = self.detect(seen)
        finally:
            self.mtcnn.thresholds, self.mtcnn.min_face_size, self.min_score, self.max_side, self.refine_passes = saved
        return [
            [Face(box=f.box / s - p, score=f.score, points=f.points / s - p) for f in faces]
            for faces, (s, p) in zip(found, maps, strict=True)
        ]

    def _faces(self, boxes, probs, points) -> list[Face]:
        # numpy 2: MTCNN.detect returns object arrays (None where no face) -> cast to float.
        if boxes is None or probs is None or points is None:
            return []
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        probs = np.asarray(probs, dtype=np.float32).reshape(-1)
        points = np.asarray(points, dtype=np.float32).reshape(-1, 5, 2)
        return [
            Face(box=boxes[k], score=float(probs[k]), points=points[k])
            for k in range(len(probs))
            if np.isfinite(probs[k]) and probs[k] >= self.min_score
        ]


def _downscale(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """``image`` resized (area interpolation) so that its longer side is ``max_side``; and the scale used."""
    import cv2

    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale
