"""Face-crop-sized images (FER2013, aligned corpus crops): detection on a padded, enlarged copy, and the
whole image taken as the face when none is found -- the one rule of prepare, the datasets and predict."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from affect.face import FaceDetector, align_face, frontal_template
from affect.face.detect import CROP_DETECTION, is_face_crop
from affect.face.pipeline import detect_and_align, detect_faces, is_whole_image, whole_image_face
from affect.face.template import CROP_POINTS, crop_points

SHARED = Path(os.environ.get("AFFECT_SHARED", Path(__file__).resolve().parents[2] / ".." / "shared" / "data"))
FER = SHARED / "fer2013"


@pytest.fixture(scope="module")
def detector():
    import torch

    torch.set_num_threads(1)
    return FaceDetector(device="cpu", batch_size=16)


def test_whole_image_face_is_aligned_from_the_crop_points():
    img = np.random.default_rng(0).integers(0, 256, (48, 60, 3), dtype=np.uint8)
    face = whole_image_face(img.shape)
    assert is_whole_image(face)
    np.testing.assert_allclose(face.points, CROP_POINTS * [60, 48], rtol=1e-6)
    crop, M, _ = align_face(img, points5=face.points, size=96)
    # the transform takes the assumed points onto the template (least squares over 5 points)
    mapped = crop_points(img.shape) @ M[:, :2].T + M[:, 2]
    assert np.abs(mapped - frontal_template(96)).max() < 4.0


def test_faceless_small_image_is_taken_whole_large_one_is_not(detector):
    flat_small = np.full((48, 48, 3), 120, np.uint8)
    flat_large = np.full((240, 320, 3), 120, np.uint8)
    tiny = np.full((12, 12, 3), 120, np.uint8)  # below min_face_size: never a face
    small, large, none = detect_faces([flat_small, flat_large, tiny], detector)
    assert len(small) == 1 and is_whole_image(small[0])
    assert large == [] and none == []
    (aligned,), rest_large, rest_tiny = detect_and_align([flat_small, flat_large, tiny], detector, size=48)
    assert rest_large == [] and rest_tiny == []
    assert aligned.source == "whole_image" and aligned.crop.shape == (48, 48, 3)


def test_is_face_crop_boundary():
    assert is_face_crop((CROP_DETECTION.max_side, 500, 3))
    assert not is_face_crop((CROP_DETECTION.max_side + 1, 500, 3))


@pytest.mark.shared
def test_fer2013_faces_found_on_the_enlarged_copy(detector):
    """On real FER2013 crops the padded copy finds far more faces than MTCNN on the image itself, and each
    face's points sit near CROP_POINTS (what the whole-image fallback assumes)."""
    if not FER.is_dir():
        pytest.skip(f"real FER2013 not found at {FER} (set AFFECT_SHARED)")
    from PIL import Image

    paths = sorted((FER / "train").glob("*/*.jpg"))[::720][:40]  # 40 images over the 7 class folders
    imgs = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    plain = sum(bool(f) for f in detector.detect(imgs))
    faces = detect_faces(imgs, detector)
    detected = [f[0] for f in faces if not is_whole_image(f[0])]
    assert all(len(f) == 1 for f in faces)  # every crop gets exactly one face
    assert len(detected) >= max(plain, int(0.8 * len(imgs)))
    pts = np.stack([f.points for f in detected]) / 48.0
    assert np.abs(np.median(pts, axis=0) - CROP_POINTS).max() < 0.06
