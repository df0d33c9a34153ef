"""Landmark refinement (affect.face.refine): the area-averaged warp against OpenCV's area resize, points
that stop depending on the detection settings (real video frames), carried faces that follow a face
moved by a known shift, and the option's checks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from affect.errors import ConfigError
from affect.face import FaceDetector
from affect.face.align import warp_area
from affect.face.detect import select_faces
from affect.face.refine import moved_box, points_box
from affect.io import iter_frames
from affect.predict.media import FaceExtractor, FaceOptions, FaceTable, InputReport, VideoTracks


def test_warp_area_equals_area_resize_when_it_shrinks_by_an_integer():
    img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    # cv2.resize's geometry: output pixel u is centred on source (u + 0.5) * 4 - 0.5
    M = np.array([[0.25, 0, 0.125 - 0.5], [0, 0.25, 0.125 - 0.5]])
    ours = warp_area(img, M, 16).astype(int)
    ref = cv2.resize(img, (16, 16), interpolation=cv2.INTER_AREA).astype(int)
    assert np.abs(ours - ref).max() <= 1
    grow = np.array([[2.0, 0, 1], [0, 2.0, 3]])  # no shrink: the plain bilinear warp
    assert np.array_equal(warp_area(img, grow, 40), cv2.warpAffine(img, grow, (40, 40), flags=cv2.INTER_LINEAR))


def test_points_box_follows_the_face_geometry():
    pts = np.array([[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]], float)
    box = points_box(pts)
    turned = points_box(pts @ np.array([[0, 1], [-1, 0]]).T)  # the face turned by 90 degrees: the same side
    assert box[2] - box[0] == pytest.approx(2.65 * 40) and turned[2] - turned[0] == pytest.approx(2.65 * 40)
    assert points_box(pts * 2 + 7) == pytest.approx(box * 2 + 7)  # moves and scales with the points
    assert moved_box(box, pts, pts + [3, -2]) == pytest.approx(box + [3, -2, 3, -2], abs=1e-4)


@pytest.fixture(scope="module")
def detector():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the CPU is shared; one thread is faster than contended many
    yield FaceDetector(device="cpu", refine=0)
    torch.set_num_threads(threads)


def _spread(a, b) -> float:
    """Largest coordinate difference of two faces' points, in eye distances."""
    return float(np.abs(a.points - b.points).max() / np.linalg.norm(a.points[0] - a.points[1]))


@pytest.mark.shared
def test_refined_points_do_not_depend_on_the_pyramid(shared_data, detector):
    """Real frames (pyfeat, GRID) at min_face_size 20 and at 0.15 of the short side: MTCNN's points
    differ by ~3.6 % of the eye distance; after 2 passes by less than a third of that, and the refined
    points stay within a few % of MTCNN's (the same framing)."""
    videos = [shared_data / "videos" / "pyfeat" / "single_face.mp4", shared_data / "videos" / "grid" / "id2_vcd_swwp2s.mpg"]
    if not all(v.is_file() for v in videos):
        pytest.skip(f"real videos not found under {shared_data / 'videos'}")
    pairs = []
    for v in videos:
        frames = [rgb for k, _, rgb in iter_frames(v) if k % 6 == 0][:8]
        found = {}
        for size in (20, int(0.15 * min(frames[0].shape[:2]))):
            detector.mtcnn.min_face_size = size
            found[size] = [select_faces(f, "largest", frames[0].shape) for f in detector.detect(frames)]
        detector.mtcnn.min_face_size = 20
        pairs += [(rgb, a[0], b[0]) for rgb, a, b in zip(frames, *found.values(), strict=True) if a and b]
    assert len(pairs) >= 12
    detector.refine_passes = 2
    try:
        raw = [_spread(a, b) for _, a, b in pairs]
        refined = [(detector.refine([im], [[a]])[0][0], detector.refine([im], [[b]])[0][0]) for im, a, b in pairs]
    finally:
        detector.refine_passes = 0
    after = [_spread(a, b) for a, b in refined]
    assert np.mean(after) < np.mean(raw) / 3, (np.mean(raw), np.mean(after))
    drift = [_spread(r, a) for (r, _), (_, a, _) in zip(refined, pairs, strict=True)]
    assert np.mean(drift) < 0.06, np.mean(drift)


@pytest.mark.shared
@pytest.mark.parametrize("passes", [0, 2])
def test_carried_faces_follow_a_face_moved_by_a_known_shift(shared_data, detector, passes):
    """A photo slid 4 px right and 2 px down per frame, detected every 3rd frame: with refinement the
    carried frames' points move with it (within 1 px of the detected frame's points plus the shift);
    without, they stay where the face was detected."""
    photo = shared_data / "faces" / "pyfeat" / "0-f1-su-ph.jpg"
    if not photo.is_file():
        pytest.skip(f"{photo} not found")
    from affect.face import load_image

    img = load_image(photo)
    scale = 360 / img.shape[0]
    img = cv2.resize(img, (round(img.shape[1] * scale), 360), interpolation=cv2.INTER_AREA)
    shift = np.array([4.0, 2.0])
    frames = [(k, k / 25, cv2.warpAffine(img, np.array([[1, 0, k * shift[0]], [0, 1, k * shift[1]]]), img.shape[1::-1],
                                         borderMode=cv2.BORDER_REFLECT)) for k in range(6)]  # fmt: skip
    opts = FaceOptions(image_size=96, select="largest", detect_every=3)
    detector.refine_passes = passes
    try:
        table = FaceTable()
        FaceExtractor(detector, opts).add_video_frames("slide", frames, table, InputReport("slide", "video"),
                                                       VideoTracks.start(opts))  # fmt: skip
    finally:
        detector.refine_passes = 0
    rows = table.rows
    assert [r["carried"] for r in rows] == [0, 1, 1, 0, 1, 1] and all(r["face_detected"] for r in rows)
    nose = np.array([[r["nose_x"], r["nose_y"]] for r in rows])
    for detected in (0, 3):
        for k in (detected + 1, detected + 2):
            expected = nose[detected] + (k - detected) * shift
            err = np.abs(nose[k] - expected).max()
            if passes:
                assert err < 1.0, (k, nose[k], expected)
            else:
                assert np.abs(nose[k] - nose[detected]).max() == 0  # carried as detected: the shift is missed
    if passes:
        assert np.abs(nose[3] - (nose[0] + 3 * shift)).max() < 1.0  # the next detection agrees


def test_refine_passes_are_checked():
    from affect.predict.datamodule import MediaDataModule
    from affect.store.shard import PrepareOptions

    with pytest.raises(ValueError, match="refine"):
        FaceDetector(refine=-1)
    with pytest.raises(ConfigError, match="refine_passes"):
        MediaDataModule(inputs=None, refine_passes=-1)
    with pytest.raises(ConfigError, match="refine"):
        PrepareOptions(refine_passes=-1).check()
    assert PrepareOptions().refine_passes == 2  # part of a store's job: a store records how its points were made


@pytest.mark.shared
def test_face_crop_images_keep_mtcnns_points(shared_data):
    """Face-crop images (FER2013's 48 px) are detected once with fixed settings on an enlarged copy,
    where O-Net drifts: their points are MTCNN's, whatever the detector's refine passes."""
    from affect.face.pipeline import detect_faces, is_whole_image

    fer = sorted((shared_data / "fer2013" / "train" / "happy").glob("*.jpg"))[:12]
    if not fer:
        pytest.skip(f"FER2013 not found under {shared_data / 'fer2013'}")
    from affect.face import load_image

    images = [load_image(p) for p in fer]
    plain, refining = FaceDetector(refine=0), FaceDetector(refine=2)
    a, b = detect_faces(images, plain, "largest"), detect_faces(images, refining, "largest")
    assert sum(not is_whole_image(f[0]) for f in a) >= 6  # most are detected, not taken whole
    for fa, fb in zip(a, b, strict=True):
        assert np.array_equal(fa[0].points, fb[0].points) and np.array_equal(fa[0].box, fb[0].box)
