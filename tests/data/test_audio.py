"""Audio stream (paper Sec. IV): 44.1 kHz mono, 33 ms / 11 ms-overlap spectrograms in [-1, 1],
one spectrogram image per video frame."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from affect.data.audio import (
    DB_RANGE,
    SAMPLE_RATE,
    load_audio,
    log_spectrogram,
    spectrogram_frames,
    to_uint8,
    video_spectrogram_frames,
    window_and_hop,
)
from affect.io import frame_times

SHARED = Path(os.environ.get("AFFECT_SHARED", Path(__file__).resolve().parents[2] / ".." / "shared" / "data"))
VIDEOS = SHARED / "videos"


def test_window_and_hop_follow_paper():
    win, hop = window_and_hop(44_100)
    assert win == round(0.033 * 44_100) == 1455
    assert win - hop == round(0.011 * 44_100)  # 11 ms overlap


def test_log_spectrogram_against_numpy_fft():
    """A full-scale sine is 0 dBFS (+1) at its FFT bin; the columns follow the hop; numpy reference."""
    win, hop = window_and_hop()
    f0 = 1000.0
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    wav = np.sin(2 * np.pi * f0 * t).astype(np.float32)
    spec = log_spectrogram(wav).numpy()
    assert spec.shape == (win // 2 + 1, 1 + (len(wav) - win) // hop)
    # reference column 3 with numpy: periodic Hann, rfft, dB re sum(window)/2, 80 dB range -> [-1, 1]
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    mag = np.abs(np.fft.rfft(wav[3 * hop : 3 * hop + win] * w))
    db = np.clip(20 * np.log10(np.maximum(mag / (w.sum() / 2), 1e-12)), -DB_RANGE, 0)
    np.testing.assert_allclose(spec[:, 3], db / (DB_RANGE / 2) + 1, atol=2e-3)
    peak = spec[:, 3].argmax()
    assert peak == round(f0 * win / SAMPLE_RATE)
    assert spec[peak, 3] > 0.97  # ~0 dBFS
    assert spec.min() >= -1 and spec.max() <= 1


def test_one_image_per_frame_aligned_by_time():
    """A tone burst from 1.0 s to 1.2 s lights up exactly the frames whose window touches it."""
    sr = SAMPLE_RATE
    wav = np.zeros(2 * sr, np.float32)
    t = np.arange(int(0.2 * sr)) / sr
    wav[sr : sr + len(t)] = 0.5 * np.sin(2 * np.pi * 440 * t)
    fps = 25
    times = np.arange(50) / fps
    context = 0.1
    imgs = spectrogram_frames(wav, times, 0.0, sr, height=32, width=16, context_s=context)
    assert imgs.shape == (50, 1, 32, 16) and imgs.dtype == np.float32
    loud = imgs.max(axis=(1, 2, 3)) > -0.5
    mids = times + 0.5 / fps
    # a frame is loud iff its [mid - 0.05, mid + 0.05] window overlaps the burst (allow one window of slack)
    win_s = window_and_hop()[0] / sr
    surely_loud = (mids + context / 2 > 1.0 + win_s) & (mids - context / 2 < 1.2 - win_s)
    surely_quiet = (mids + context / 2 < 1.0 - win_s) | (mids - context / 2 > 1.2 + win_s)
    assert loud[surely_loud].all() and not loud[surely_quiet].any()
    # an audio start offset shifts the alignment: the same burst 0.4 s later
    shifted = spectrogram_frames(wav, times, 0.4, sr, height=32, width=16, context_s=context)
    assert np.array_equal(shifted[10:].max(axis=(1, 2, 3)) > -0.5, loud[:40])


def test_frame_times_validation_and_uint8():
    with pytest.raises(ValueError, match="non-empty 1-D"):
        spectrogram_frames(np.zeros(100, np.float32), np.array([]))
    x = np.array([-1.0, -0.5, 0.0, 1.0])
    u = to_uint8(x)
    np.testing.assert_allclose(u / 127.5 - 1, x, atol=1 / 127.5)


def _count_video_frames(path: Path) -> int:
    import av

    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(c.streams.video[0]))


@pytest.mark.shared
@pytest.mark.parametrize(
    "rel", ["grid/GRID/bbaf2n.mpg", "grid/GRID/swiz3n.mpg", "grid/id2_vcd_swwp2s.mpg",
            "pyfeat/single_face.mp4", "pyfeat/no_face.mp4", "pyfeat/face_noface.mov"]
)
def test_real_videos_one_spectrogram_per_frame(rel):
    path = VIDEOS / rel
    if not path.is_file():
        pytest.skip(f"real video not found: {path} (set AFFECT_SHARED)")
    imgs = video_spectrogram_frames(path, height=48, width=24)
    assert imgs.shape == (_count_video_frames(path), 1, 48, 24)
    assert imgs.min() >= -1 and imgs.max() <= 1
    assert imgs.max() > -0.8  # the clips carry real sound (above -72 dBFS), not digital silence
    assert len(frame_times(path)) == len(imgs)


@pytest.mark.shared
def test_grid_speech_is_louder_than_edges():
    """GRID clips start and end with silence around the spoken sentence: the speech frames (from the
    word alignment file) are louder on average than the leading frames."""
    path = VIDEOS / "grid" / "id2_vcd_swwp2s.mpg"
    align = VIDEOS / "grid" / "swwp2s.align"
    if not path.is_file():
        pytest.skip(f"real video not found: {path}")
    wav, start = load_audio(path)
    assert wav.ndim == 1 and wav.dtype == np.float32 and abs(len(wav) / SAMPLE_RATE - 3.0) < 0.1
    words = [ln.split() for ln in align.read_text().splitlines() if ln.strip()]
    speech = [(int(a) / 25000, int(b) / 25000) for a, b, w in words if w != "sil"]
    imgs = video_spectrogram_frames(path, height=32, width=8, context_s=0.04)
    times = frame_times(path)
    in_speech = np.array([any(a <= t <= b for a, b in speech) for t in times])
    energy = imgs.mean(axis=(1, 2, 3))
    assert in_speech.any() and (~in_speech).any()
    assert energy[in_speech].mean() > energy[~in_speech].mean() + 0.05


def test_video_without_audio_is_a_clear_error(tmp_path):
    import av

    path = tmp_path / "silent.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=25)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        for _ in range(5):
            frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
            for pkt in s.encode(frame):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    assert len(frame_times(path)) == 5
    with pytest.raises(ValueError, match="has no audio stream"):
        load_audio(path)
