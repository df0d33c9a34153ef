"""The one PyAV reader (``affect.io.decode``): frames with times, display rotation, the frame pixel cap, audio."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from affect.io import MediaReadError, VideoReader, frame_times, iter_frames, read_audio, write_video
from affect.io.decode import apply_display, display_ops


def _ramp(n: int, h: int = 32, w: int = 32) -> np.ndarray:
    """Frame k is flat grey 20 * (k + 1)."""
    return np.stack([np.full((h, w, 3), 20 * (k + 1), np.uint8) for k in range(n)])


def test_frames_index_time_rgb_and_indices(tmp_path):
    video = write_video(tmp_path / "v.mp4", _ramp(6), fps=10)
    got = list(iter_frames(video))
    assert [k for k, _, _ in got] == list(range(6))
    np.testing.assert_allclose([t for _, t, _ in got], np.arange(6) / 10, atol=1e-6)  # presentation times
    assert all(rgb.dtype == np.uint8 and rgb.shape == (32, 32, 3) for _, _, rgb in got)
    np.testing.assert_allclose([rgb.mean() for _, _, rgb in got], 20 * np.arange(1, 7), atol=3)
    np.testing.assert_allclose(frame_times(video), np.arange(6) / 10, atol=1e-6)
    times: list[float] = []
    assert [k for k, _, _ in iter_frames(video, stride=4, times=times)] == [0, 4]
    assert len(times) == 6  # every decoded frame's time, kept or not
    assert [k for k, _, _ in iter_frames(video, indices=[3, 1])] == [1, 3]
    with VideoReader(video) as r:
        assert r.fps == 10 and r.declared_frames == 6 and r.rotation == 0


def test_frame_time_fallback_rule(tmp_path):
    with VideoReader(write_video(tmp_path / "v.mp4", _ramp(2), fps=25)) as r:
        assert r.frame_time(7, SimpleNamespace(time=1.5)) == 1.5  # the timestamp when there is one
        assert r.frame_time(7, SimpleNamespace(time=None)) == pytest.approx(r.start_s + 7 / 25)
        r.fps = float("nan")
        assert math.isnan(r.frame_time(7, SimpleNamespace(time=None)))


def _marked(h: int = 32, w: int = 64) -> np.ndarray:
    """Dark frame, white 16 x 16 block in the top-left corner, mid-grey block in the top-right."""
    a = np.full((h, w, 3), 16, np.uint8)
    a[:16, :16] = 240
    a[:16, -16:] = 128
    return a


def _where(rgb: np.ndarray, value: int) -> tuple[float, float]:
    ys, xs = np.nonzero(np.abs(rgb.mean(axis=2) - value) < 30)
    return float(ys.mean()), float(xs.mean())


# display = stored pixels rotated counter-clockwise by `rotation`, then mirrored left-right if hflip
CASES = [(0, False), (90, False), (180, False), (270, False), (0, True), (90, True), (180, True), (270, True)]


@pytest.mark.parametrize(("rotation", "hflip"), CASES)
def test_phone_video_rotation_is_applied(tmp_path, rotation, hflip):
    stored = _marked()
    video = write_video(tmp_path / "r.mp4", np.stack([stored] * 3), fps=10, rotation=rotation, hflip=hflip)
    want = np.rot90(stored, rotation // 90)
    want = want[:, ::-1] if hflip else want
    frames = list(iter_frames(video))
    assert len(frames) == 3
    rgb = frames[0][2]
    assert rgb.shape == want.shape
    for value in (240, 128):  # both markers where a player shows them
        assert np.allclose(_where(rgb, value), _where(want, value), atol=1.0), (value, _where(rgb, value))
    with VideoReader(video) as r:
        next(r.frames())
        assert r.width == want.shape[1] and r.height == want.shape[0]


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_agrees_with_opencv(tmp_path, rotation):
    """An independent decoder: OpenCV's FFmpeg backend rotates by the display matrix itself."""
    cv2 = pytest.importorskip("cv2")
    video = write_video(tmp_path / "r.mp4", np.stack([_marked()] * 2), fps=10, rotation=rotation)
    cap = cv2.VideoCapture(str(video))
    ok, bgr = cap.read()
    auto = cap.get(cv2.CAP_PROP_ORIENTATION_AUTO)
    cap.release()
    if not ok or auto != 1:
        pytest.skip("this OpenCV build does not auto-rotate")
    rgb = next(iter_frames(video))[2]
    assert rgb.shape == bgr.shape
    assert np.abs(rgb.astype(int) - bgr[:, :, ::-1].astype(int)).mean() < 4


def test_display_ops_cover_the_eight_right_angle_matrices():
    a = np.arange(2 * 3 * 1).reshape(2, 3, 1)
    fp = 1 << 16
    for deg in (0, 90, 180, 270):
        c, s = round(math.cos(math.radians(deg))), round(math.sin(math.radians(deg)))
        m = np.array([c * fp, -s * fp, 0, s * fp, c * fp, 0, 0, 0, 1 << 30], np.int32)  # FFmpeg's rotation matrix
        np.testing.assert_array_equal(apply_display(a, display_ops(m)), np.rot90(a, deg // 90))
    assert display_ops(None) == (False, False, False)
    assert display_ops(np.array([46341, -46341, 0, 46341, 46341, 0, 0, 0, 1 << 30], np.int32)) == (False, False, False)


def test_frames_above_the_pixel_cap_are_downscaled(tmp_path):
    video = write_video(tmp_path / "big.mp4", _ramp(2, 48, 64), fps=5)
    with VideoReader(video, max_pixels=64 * 48 // 4) as r:
        frames = list(r.frames())
        assert r.scale == 2.0 and (r.width, r.height) == (32, 24)
    assert all(rgb.shape == (24, 32, 3) for _, _, rgb in frames)
    assert [rgb.shape for _, _, rgb in iter_frames(video)] == [(48, 64, 3)] * 2  # under the default cap: as is


def test_missing_corrupt_and_streamless_media_name_the_file(tmp_path):
    with pytest.raises(MediaReadError, match="video not found: .*nope.mp4") as err:
        list(iter_frames(tmp_path / "nope.mp4"))
    assert err.value.status == "not_found"
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    with pytest.raises(MediaReadError, match="bad.mp4") as err:
        list(iter_frames(bad))
    assert err.value.status == "unreadable"
    silent = write_video(tmp_path / "silent.mp4", _ramp(2), fps=5)
    with pytest.raises(MediaReadError, match="silent.mp4.*has no audio stream"):
        read_audio(silent, 16_000)
    assert isinstance(err.value, ValueError)  # callers that catch ValueError keep working


def test_audio_is_resampled_to_mono_at_the_given_rate(tmp_path):
    import av  # a stereo file, written directly (the project's writer is mono)

    path, rate, n = tmp_path / "stereo.mp4", 48_000, 48_000
    t = np.arange(n) / rate
    left, right = 0.5 * np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 440 * t + np.pi)  # opposite phase
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=rate)
        s.layout = "stereo"
        for start in range(0, n, 1024):
            block = np.stack([left[start:start + 1024], right[start:start + 1024]]).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(block, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = rate, start
            for pkt in s.encode(frame):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    wav, start = read_audio(path, 16_000)
    assert wav.dtype == np.float32 and wav.ndim == 1 and abs(len(wav) - 16_000) < 2048
    assert np.abs(wav[2000:-2000]).max() < 0.05  # channels averaged: opposite phases cancel
    assert start == pytest.approx(0.0, abs=0.05)


def test_mono_audio_round_trip_keeps_the_tone(tmp_path):
    rate = 44_100
    tone = (0.5 * np.sin(2 * np.pi * 1000 * np.arange(rate) / rate)).astype(np.float32)
    video = write_video(tmp_path / "av.mp4", _ramp(10), fps=10, audio=tone, sample_rate=rate)
    wav, _ = read_audio(video, 8_000)
    spectrum = np.abs(np.fft.rfft(wav[1000:7000]))
    peak_hz = np.argmax(spectrum) * 8_000 / 6000
    assert abs(peak_hz - 1000) < 5 and 0.3 < np.abs(wav[1000:7000]).max() < 0.7
