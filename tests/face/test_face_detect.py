"""MTCNN detection + alignment on real images and videos from ../shared/data (kept small: shared CPU)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import cv2
import numpy as np
import pytest

from affect.face import (
    FaceDetector,
    align_face,
    detect_and_align,
    five_from_68,
    frontal_template,
    iter_video_frames,
    load_image,
    select_faces,
)

SHARED = Path(os.environ.get("AFFECT_SHARED", Path(__file__).resolve().parents[2] / ".." / "shared" / "data"))
FACES = SHARED / "faces"
VIDEOS = SHARED / "videos"

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def detector():
    if not FACES.is_dir():
        pytest.skip(f"real test data not found at {SHARED} (set AFFECT_SHARED)")
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the CPU is shared; one thread is faster than contended many
    yield FaceDetector(device="cpu")
    torch.set_num_threads(threads)


def small(img: np.ndarray, factor: float) -> np.ndarray:
    """Downscale a real photo (MTCNN time grows with pixels; the CPU is shared)."""
    return cv2.resize(img, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)


def test_weights_load_without_network(monkeypatch):
    """MTCNN's weights ship in the wheel: constructing it must not touch the network."""
    import facenet_pytorch

    data = Path(facenet_pytorch.__file__).parent / "data"
    assert {"pnet.pt", "rnet.pt", "onet.pt"} <= {p.name for p in data.iterdir()}

    def no_network(*args, **kwargs):
        raise AssertionError("MTCNN tried to open a network connection")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", no_network)
    det = FaceDetector(device="cpu")
    assert det.detect([np.zeros((64, 64, 3), np.uint8)]) == [[]]


def test_aligned_real_face_lands_on_template(detector):
    """MTCNN points -> alignment; the independent FAN 68-point reference of the same photo, carried
    through the same transform, puts eyes / nose / mouth within a few pixels of the template."""
    img = load_image(FACES / "face_alignment" / "aflw-test.jpg")
    ref = json.loads((FACES / "face_alignment" / "aflw-test.reference_landmarks68_3d.json").read_text())
    ref68 = np.asarray(ref["landmarks68_xyz"], np.float64)[:, :2]
    (face,) = detector.detect([img])[0]
    assert face.score > 0.95
    crop, _, lm = align_face(img, face.points, size=96, landmarks68=ref68)
    err = np.linalg.norm(five_from_68(lm) - frontal_template(96), axis=1)
    assert err.max() < 4.0, f"aligned reference points off the template by {err.round(2)} px"
    assert crop.shape == (96, 96, 3)
    assert crop.std() > 20  # a real face, not a black border


def test_grid_of_nine_faces(detector):
    img = small(load_image(FACES / "face_alignment" / "aflw-test-grid3x3.jpg"), 0.5)  # 675 x 675
    faces = detector.detect([img])[0]
    assert len(faces) == 9
    (central,) = select_faces(faces, "central", img.shape)
    cx, cy = (central.box[0] + central.box[2]) / 2, (central.box[1] + central.box[3]) / 2
    assert 225 < cx < 450 and 225 < cy < 450  # the middle tile of the grid
    assert len(select_faces(faces, "largest", img.shape)) == 1
    aligned = [align_face(img, f.points, 96)[0] for f in select_faces(faces, "all", img.shape)]
    assert len(aligned) == 9 and all(a.shape == (96, 96, 3) and a.std() > 20 for a in aligned)


def test_no_face_images_give_empty_lists(detector):
    imgs = [small(load_image(FACES / "face_alignment" / "grass.jpg"), 0.5),
            small(load_image(FACES / "pyfeat" / "free-mountain-vector-01.jpg"), 0.25)]
    assert detect_and_align(imgs, detector) == [[], []]


def test_grey_and_rgba_inputs(detector, tmp_path):
    from PIL import Image

    grey_path = tmp_path / "grey.png"
    Image.open(FACES / "face_alignment" / "aflw-test.jpg").convert("L").save(grey_path)
    grey = load_image(grey_path)
    assert grey.shape[2] == 3 and (grey[..., 0] == grey[..., 2]).all()
    rgba = load_image(FACES / "pyfeat" / "Image_with_alpha.png")
    assert Image.open(FACES / "pyfeat" / "Image_with_alpha.png").mode == "RGBA" and rgba.shape[2] == 3
    out = detect_and_align([grey, small(rgba, 0.3)], detector)
    assert [len(o) for o in out] == [1, 1]
    # the real greyscale photo (a profile MTCNN misses) decodes and runs without error
    bw = load_image(FACES / "pyfeat" / "BWPictureHuman.jpg")
    assert bw.ndim == 3 and bw.shape[2] == 3


def test_batched_equals_one_at_a_time(detector):
    img = small(load_image(FACES / "face_alignment" / "aflw-test.jpg"), 0.5)
    flipped = np.ascontiguousarray(img[:, ::-1])
    batched = detector.detect([img, flipped])
    single = [detector.detect([img])[0], detector.detect([flipped])[0]]
    for b, s in zip(batched, single, strict=True):
        assert len(b) == len(s) == 1
        np.testing.assert_allclose(b[0].points, s[0].points, atol=0.5)


def test_video_face_appears_and_disappears(detector):
    if not VIDEOS.is_dir():
        pytest.skip(f"real videos not found at {VIDEOS}")
    frames = dict(iter_video_frames(VIDEOS / "pyfeat" / "face_noface.mov", [0, 150]))
    assert sorted(frames) == [0, 150]
    found = [len(f) for f in detect_and_align([small(frames[0], 0.5), small(frames[150], 0.5)], detector)]
    assert found == [1, 0]
    n = sum(1 for _ in iter_video_frames(VIDEOS / "pyfeat" / "single_face.mp4"))
    assert n == 72  # 2.4 s at 30 fps
