"""The face table of ``affect predict``: inputs, bad input statuses, huge images, tracks, carried boxes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from affect.predict.media import FaceExtractor, FaceOptions, expand_inputs
from affect.predict.tracks import box_iou


def run(detector, inputs, **opts):
    return FaceExtractor(detector, FaceOptions(image_size=32, **opts)).run([str(p) for p in inputs])


def test_expand_inputs_folders_globs_and_missing(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/x.jpg", "a/b/y.PNG", "a/b/z.mp4", "a/notes.txt"):
        (tmp_path / name).write_bytes(b"1")
    folder = expand_inputs(str(tmp_path / "a"))
    assert [p.rsplit("/", 1)[-1] for p in folder] == ["y.PNG", "z.mp4", "x.jpg"]  # sorted by path, recursive
    assert expand_inputs([str(tmp_path / "a" / "*.jpg"), str(tmp_path / "missing.mp4")]) == [
        str(tmp_path / "a" / "x.jpg"), str(tmp_path / "missing.mp4")]  # fmt: skip


def test_bad_inputs_are_counted_named_rows(detector, bad_inputs, tmp_path):
    bad = bad_inputs
    missing = tmp_path / "missing.jpg"
    table = run(detector, [*bad.values(), missing])
    status = {r.input: r.status for r in table.reports}
    for want, path in bad.items():
        assert status[str(path)] == want.removesuffix("_image"), (want, status[str(path)], [r.detail for r in table.reports if r.input == str(path)])
    assert status[str(missing)] == "not_found"
    # decodable inputs without a face are rows with face_detected = 0, one per frame
    rows = [r for r in table.rows if r["input"] == str(bad["no_face"])]
    assert len(rows) == 6 and all(r["face_detected"] == 0 and r["crop"] == -1 for r in rows)
    assert [r["frame"] for r in rows] == list(range(6))
    np.testing.assert_allclose([r["time_s"] for r in rows], np.arange(6) / 10, atol=1e-6)
    tiny = [r for r in table.rows if r["input"] == str(bad["too_small"])]
    assert len(tiny) == 1 and tiny[0]["face_detected"] == 0
    truncated = next(r for r in table.reports if r.input == str(bad["truncated"]))
    assert 0 < truncated.frames < 48 and truncated.frames_without_face == truncated.frames
    assert table.crops == []


@pytest.mark.shared
def test_huge_image_is_detected_on_a_downscaled_copy(detector, shared_data, tmp_path):
    """A 6x upscaled photo: its boxes (in source pixels) match 6 x the boxes found on the original."""
    src = shared_data / "faces" / "face_alignment" / "aflw-test.jpg"
    img = Image.open(src).convert("RGB")
    (ref,) = [r for r in run(detector, [src]).rows]
    for suffix in ("png", "jpg"):  # png: full decode, then reduced; jpg: reduced-scale decode (draft)
        big = tmp_path / f"big.{suffix}"
        img.resize((img.width * 6, img.height * 6), Image.BILINEAR).save(big)
        table = run(detector, [big], detect_max_side=640)
        (report,) = table.reports
        assert report.status == "ok" and report.width == img.width * 6, report
        how = "decoded at reduced scale" if suffix == "jpg" else "reduced after decoding"
        assert report.detail.startswith(how), report.detail
        (row,) = table.rows
        box = [row["box_x"], row["box_y"], row["box_x"] + row["box_w"], row["box_y"] + row["box_h"]]
        want = 6 * np.array([ref["box_x"], ref["box_y"], ref["box_x"] + ref["box_w"], ref["box_y"] + ref["box_h"]])
        assert box_iou(np.array(box), want)[0, 0] > 0.8, (box, want)
        np.testing.assert_allclose(row["nose_x"], 6 * ref["nose_x"], atol=0.05 * 6 * ref["box_w"])


@pytest.mark.shared
def test_multi_face_image_rows_ordered_by_size(detector, shared_data):
    table = run(detector, [shared_data / "faces" / "face_alignment" / "aflw-test-grid3x3.jpg"], detect_max_side=900)
    faces = [r for r in table.rows if r["face_detected"]]
    assert len(faces) >= 6
    assert [r["face_id"] for r in faces] == list(range(len(faces)))
    areas = [r["box_w"] * r["box_h"] for r in faces]
    assert areas == sorted(areas, reverse=True)
    assert len(table.crops) == len(faces) and table.crops[0].shape == (32, 32, 3)
    assert run(detector, [shared_data / "faces" / "face_alignment" / "aflw-test-grid3x3.jpg"],
               detect_max_side=900, select="largest").reports[0].faces == 1  # fmt: skip


@pytest.mark.shared
@pytest.mark.slow
def test_video_with_and_without_face_tracks_and_carried_boxes(detector, shared_data):
    """face_noface.mov: a face, then none; every kept frame is a row; one track while the face is there;
    detect_every=3 carries boxes on the frames between detections, close to the per-frame boxes."""
    video = shared_data / "videos" / "pyfeat" / "face_noface.mov"
    every = run(detector, [video], frame_stride=12, detect_max_side=480)
    (report,) = every.reports
    assert report.status == "ok" and report.frames == len({r["frame"] for r in every.rows})
    with_face = [r for r in every.rows if r["face_detected"]]
    without = [r for r in every.rows if not r["face_detected"]]
    assert with_face and without, "face_noface.mov shows a face, then none"
    assert max(r["frame"] for r in with_face) < min(r["frame"] for r in without)
    assert {r["face_id"] for r in with_face} == {0}
    times = [r["time_s"] for r in every.rows]
    assert times == sorted(times) and times[1] > times[0]
    skip = run(detector, [video], frame_stride=12, detect_max_side=480, detect_every=3)
    carried = [r for r in skip.rows if r["carried"]]
    assert carried and all(r["frame"] % 36 != 0 for r in carried)
    by_frame = {r["frame"]: r for r in with_face}
    for r in carried:
        if r["frame"] in by_frame:
            a = by_frame[r["frame"]]
            boxes = [[x["box_x"], x["box_y"], x["box_x"] + x["box_w"], x["box_y"] + x["box_h"]] for x in (a, r)]
            assert box_iou(np.array(boxes[0]), np.array(boxes[1]))[0, 0] > 0.5
