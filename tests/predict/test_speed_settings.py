"""``affect predict``'s speed settings: one home for their defaults (``MediaDataModule``'s signature, not
repeated by ``experiments/predict/media.yaml``), and detection every k-th frame on real clips whose face
appears or leaves mid-video: the change is picked up at the next detection (within k frames of per-frame
detection), and the frames in between are carried rows."""

from __future__ import annotations

import inspect

import cv2
import numpy as np
import pytest
import yaml

from affect.face import iter_video_frames
from affect.io import write_video
from affect.predict import CONFIG, MediaDataModule
from affect.predict.media import FaceExtractor, FaceOptions

#: the options docs/predict_speed.md measures; their defaults live in MediaDataModule's signature only
SPEED_OPTIONS = ("frame_stride", "detect_every", "min_face_fraction", "detect_max_side", "batch_size")


def test_media_yaml_agrees_with_the_datamodule_defaults():
    """The YAML leaves the speed options to the signature; anything else it sets is the signature's default."""
    init_args = yaml.safe_load(CONFIG.read_text())["data"]["init_args"]
    params = inspect.signature(MediaDataModule.__init__).parameters
    assert not set(SPEED_OPTIONS) & set(init_args), "media.yaml repeats a speed default: leave it to MediaDataModule"
    for key, value in init_args.items():
        assert key in params, f"media.yaml sets {key!r}, which MediaDataModule does not take"
        if params[key].default is not inspect.Parameter.empty:
            assert value == params[key].default, (key, value, params[key].default)
    assert params["detect_every"].default > 1 and params["min_face_fraction"].default > 0  # the fast defaults

#: (clip, first frame kept): noface_face.mov shows its face from frame 96 on, face_noface.mov until frame 71,
#: so each 20-frame cut holds the change at its 9th frame (not on a detection frame for k = 2, 3, 5)
CUTS = {"noface_face.mov": 88, "face_noface.mov": 63}


def face_frames(detector, clip, every: int) -> tuple[list[int], list[int]]:
    table = FaceExtractor(detector, FaceOptions(image_size=32, detect_every=every)).run([str(clip)])
    (report,) = table.reports
    assert report.status in ("ok", "no_face") and report.frames == 20
    faces = [r for r in table.rows if r["face_detected"]]
    return [r["frame"] for r in faces], [r["frame"] for r in faces if r["carried"]]


@pytest.mark.shared
@pytest.mark.parametrize("name", list(CUTS))
def test_face_appearing_or_leaving_is_picked_up_within_detect_every_frames(detector, shared_data, tmp_path, name):
    start = CUTS[name]
    frames = [cv2.resize(f, (320, 180), interpolation=cv2.INTER_AREA)
              for _, f in iter_video_frames(shared_data / "videos" / "pyfeat" / name, range(start, start + 20))]  # fmt: skip
    clip = write_video(tmp_path / name.replace(".mov", ".mp4"), np.stack(frames), fps=25)
    ref, ref_carried = face_frames(detector, clip, 1)
    assert ref_carried == [] and 0 < len(ref) < 20, "the cut must hold frames with and without the face"
    appears = name == "noface_face.mov"
    assert ref == (list(range(ref[0], 20)) if appears else list(range(ref[-1] + 1))), ref  # one change, no flicker
    assert ref[0 if appears else -1] in (7, 8, 9)  # the change is where CUTS says (re-encoding may move it by one)
    for every in (2, 3, 5):
        got, carried = face_frames(detector, clip, every)
        assert all(k % every == 0 for k in set(got) - set(carried))  # detections on the schedule only
        assert set(carried) == {k for k in got if k % every}  # every frame in between is a carried row
        if appears:  # picked up at the first detection after the face arrives; nothing before it
            assert got == list(range(got[0], 20)) and 0 <= got[0] - ref[0] < every, (every, got, ref)
        else:  # carried at most until the next detection, which sees the face gone
            assert got == list(range(got[-1] + 1)) and 0 <= got[-1] - ref[-1] < every, (every, got, ref)


@pytest.mark.shared
def test_min_face_fraction_applies_to_video_frames_not_photos(detector, shared_data, tmp_path):
    """A photo is one detection (speed hardly matters): every face size is searched for; the same picture
    as video frames drops a face smaller than the fraction of the short side."""
    photo = shared_data / "faces" / "pyfeat" / "single_face.jpg"
    rgb = np.asarray(cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB))
    h, w = (v * 320 // max(rgb.shape[:2]) // 2 * 2 for v in rgb.shape[:2])  # even sides for the MP4
    rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
    still = tmp_path / "still.png"
    cv2.imwrite(str(still), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    clip = write_video(tmp_path / "still.mp4", np.stack([rgb] * 2), fps=25)
    for fraction, video_faces in ((0.0, 2), (0.95, 0)):
        table = FaceExtractor(detector, FaceOptions(image_size=32, min_face_fraction=fraction)).run([str(still), str(clip)])
        faces = [r for r in table.rows if r["face_detected"]]
        assert sum(r["kind"] == "image" for r in faces) == 1, fraction  # the photo's face, whatever the fraction
        assert sum(r["kind"] == "video" for r in faces) == video_faces, fraction
