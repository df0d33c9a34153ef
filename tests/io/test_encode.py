"""The one PyAV encoder (``affect.io.encode``): round trips through the reader."""

from __future__ import annotations

import numpy as np
import pytest

from affect.io import VideoReader, VideoWriter, iter_frames, read_audio, write_video


@pytest.mark.parametrize(("suffix", "codec"), [(".mp4", None), (".avi", None), (".mkv", "mpeg4")])
def test_round_trip_frames_and_rate(tmp_path, suffix, codec):
    frames = np.stack([np.full((16, 24, 3), v, np.uint8) for v in (30, 90, 150, 210)])
    video = write_video(tmp_path / f"v{suffix}", frames, fps=12, codec=codec)
    got = [rgb for _, _, rgb in iter_frames(video)]
    assert len(got) == 4 and got[0].shape == (16, 24, 3)
    np.testing.assert_allclose([g.mean() for g in got], [30, 90, 150, 210], atol=3)
    with VideoReader(video) as r:
        assert r.fps == 12


def test_writer_crops_to_even_sides_and_keeps_one_size(tmp_path):
    with VideoWriter(tmp_path / "odd.mp4", fps=5) as w:
        w.write(np.zeros((9, 11, 3), np.uint8))
        with pytest.raises(ValueError, match="differs from the first frame's 10x8"):
            w.write(np.zeros((12, 12, 3), np.uint8))
        with pytest.raises(ValueError, match="uint8"):
            w.write(np.zeros((8, 10, 3), np.float32))
    assert [rgb.shape for _, _, rgb in iter_frames(tmp_path / "odd.mp4")] == [(8, 10, 3)]


def test_write_video_rejects_bad_frames(tmp_path):
    with pytest.raises(ValueError, match="uint8 \\[T, H, W, 3\\]"):
        write_video(tmp_path / "v.mp4", np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "v.mp4", np.zeros((2, 9, 8, 3), np.uint8))


def test_audio_track_length_and_writer_without_audio(tmp_path):
    rate = 16_000
    audio = (0.3 * np.sin(np.arange(2 * rate) * 0.05)).astype(np.float32)
    video = write_video(tmp_path / "av.mp4", np.zeros((20, 16, 16, 3), np.uint8), fps=10, audio=audio, sample_rate=rate)
    wav, _ = read_audio(video, rate)
    assert abs(len(wav) - len(audio)) < 2048  # AAC priming / padding only
    with VideoWriter(tmp_path / "v.mp4") as w:
        w.write(np.zeros((8, 8, 3), np.uint8))
        with pytest.raises(ValueError, match="no audio stream"):
            w.write_audio(audio)
