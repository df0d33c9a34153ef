"""Spectrogram images a window of frames at a time (affect.data.audio_windows) against the whole-video
computation (affect.data.audio.video_spectrogram_frames): the same numbers, for window edges, frame
strides, the video's end, audio that ends before the picture, timestamps out of order and a real
clip; and the audio held does not grow with the video's length."""

from __future__ import annotations

import numpy as np
import pytest

from affect.data.audio import SAMPLE_RATE, frame_mids, to_uint8, video_spectrogram_frames, window_and_hop
from affect.data.audio_windows import FrameClock, SpectrogramWindows, VideoWindows
from affect.io import AudioReader, VideoReader, write_video

H, W, CONTEXT = 24, 16, 0.3
FPS = 25


def _video(path, seconds: float, audio_seconds: float | None = None, seed: int = 0):
    """A 32x32 clip at 25 fps with noise whose loudness swells and a tone whose pitch rises (so every
    image differs), ``audio_seconds`` of sound (default: as long as the picture)."""
    rng = np.random.default_rng(seed)
    n = round(seconds * FPS)
    frames = np.zeros((n, 32, 32, 3), np.uint8)
    frames[:, 8:24, 8:24] = (np.arange(n) * 7 % 256)[:, None, None, None]
    t = np.arange(round((audio_seconds or seconds) * SAMPLE_RATE)) / SAMPLE_RATE
    sound = 0.3 * (0.5 + 0.5 * np.sin(2 * np.pi * 0.7 * t)) * rng.uniform(-1, 1, len(t))
    sound += 0.2 * np.sin(2 * np.pi * (300 + 200 * t) * t)
    return write_video(path, frames, FPS, audio=sound.astype(np.float32))


def windowed(path, window: int, stride: int = 1, every: int = 1):
    """The images of every ``stride``-th frame, made as affect predict makes them: the video read once,
    each window of ``window`` kept frames asked for once the frame after it is decoded (every
    ``every``-th window only: the others stand for batches without a face). Returns ``({frame:
    image}, the SpectrogramWindows, the most frame times the clock held, the audio samples decoded)``."""
    out = {}
    with VideoWindows(path, H, W, CONTEXT, window, stride) as vw:
        for i, frames in enumerate(vw):
            if i % every == 0:
                out.update(zip(frames, vw.images(frames), strict=True))
    return out, vw.spectrograms, vw.peak_frame_times, vw.spectrograms.samples_decoded


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return _video(tmp_path_factory.mktemp("aw") / "clip.mp4", 4.0)


@pytest.mark.parametrize(("window", "stride"), [(1, 1), (7, 1), (16, 1), (5, 3), (200, 1)])
def test_windows_give_the_whole_video_images(clip, window, stride):
    whole = video_spectrogram_frames(clip, H, W, CONTEXT)
    got, sw, _, _ = windowed(clip, window, stride)
    assert sorted(got) == list(range(0, len(whole), stride))
    assert (len(whole) - 1) in got or stride > 1  # the last frame: its mid-time from the median duration
    for k, image in got.items():
        np.testing.assert_allclose(image, whole[k], rtol=0, atol=1e-6, err_msg=f"frame {k}")
        assert np.array_equal(to_uint8(image), to_uint8(whole[k]))
    assert sw.rewinds == 0
    assert np.ptp(whole.mean(axis=(1, 2, 3))) > 0.1  # the check can fail: images differ from frame to frame


def test_audio_ending_before_the_picture_reads_as_silence(tmp_path):
    """1.5 s of sound under 3 s of picture: windows past the audio's end are all -1, windows across it
    half; both as in the whole-video images."""
    path = _video(tmp_path / "short_sound.mp4", 3.0, audio_seconds=1.5)
    whole = video_spectrogram_frames(path, H, W, CONTEXT)
    got, _, _, _ = windowed(path, 6)
    assert sorted(got) == list(range(len(whole)))
    for k, image in got.items():
        np.testing.assert_allclose(image, whole[k], rtol=0, atol=1e-6, err_msg=f"frame {k}")
    assert (whole[-20:] == -1).all() and (whole[30] > -1).any()  # after the sound: silence


def test_a_window_before_what_is_kept_reads_the_stream_again(clip):
    whole = video_spectrogram_frames(clip, H, W, CONTEXT)
    clock = FrameClock()
    with VideoReader(clip) as reader:
        for t in reader.times():
            clock.append(t)
    clock.end()
    with SpectrogramWindows(clip, H, W, CONTEXT) as sw:
        for frames in ([60, 61, 62], [90, 99], [0, 1, 2, 3], [98, 99]):  # back to the start (read again), then on
            np.testing.assert_allclose(sw.images(clock.mids(frames)), whole[frames], rtol=0, atol=1e-6)
        assert sw.rewinds == 1


def test_held_audio_does_not_grow_with_the_video(tmp_path):
    """An 8 s and a 32 s clip, windows of 16 frames (every third one asked for, as when the frames in
    between have no face): the samples, columns and frame times held at most are the same, bounded
    by one window's span plus the context, while the audio decoded is 4x as long."""
    win, hop = window_and_hop()
    runs = {}
    for seconds in (8.0, 32.0):
        path = _video(tmp_path / f"clip_{seconds:g}.mp4", seconds, seed=1)
        _, sw, held, decoded = windowed(path, 16, every=3)
        runs[seconds] = (sw.peak_samples, sw.peak_columns, held, decoded)
    (s8, c8, h8, d8), (s32, c32, h32, d32) = runs[8.0], runs[32.0]
    span = (16 / FPS + CONTEXT) * SAMPLE_RATE  # one window's frames plus the context
    assert s8 <= span + win + 2 * hop + 4096 and s32 <= span + win + 2 * hop + 4096, runs
    assert abs(s32 - s8) <= 4096 and abs(c32 - c8) <= 2, runs  # at most a decoded chunk apart
    assert h8 == h32 <= 16 + 2, runs
    assert d32 > 3.9 * d8 and d8 > 7.9 * SAMPLE_RATE, runs  # the whole audio was read


def test_frame_clock_mid_times_follow_the_whole_video_rule():
    rng = np.random.default_rng(0)
    cases = [
        np.cumsum(rng.choice([0.033, 0.034, 0.05], 41)),  # variable frame rate, odd number of durations
        np.cumsum(rng.choice([0.04, 0.08], 10)),  # even: the mean of the two middle durations
        np.arange(30) * (1001 / 30000),  # NTSC: durations differ in the last bits
        np.array([3.5]),  # one frame: 1/25 s
        np.array([0.0, 0.04, np.nan, 0.12]),  # a frame without a time: the last frame's mid is NaN
    ]
    for times in cases:
        clock = FrameClock()
        for t in times:
            clock.append(t)
        with pytest.raises(RuntimeError, match="not known"):
            clock.mids([len(times) - 1])  # the last frame before the video has ended
        clock.end()
        np.testing.assert_array_equal(clock.mids(list(range(len(times)))), frame_mids(times))
    clock.forget_before(3)
    with pytest.raises(RuntimeError, match="not known"):
        clock.mids([0])
    assert frame_mids(np.array([0.0, 0.04, 0.08, 0.2]))[-1] == pytest.approx(0.2 + 0.02)  # median 0.04


def test_audio_reader_chunks_are_the_whole_stream(clip):
    from affect.io import read_audio

    wav, start = read_audio(clip, SAMPLE_RATE)
    with AudioReader(clip, SAMPLE_RATE) as reader:
        sizes = [len(c) for c in reader.chunks()]
        assert reader.samples == sum(sizes) == len(wav) and reader.start_s == start
    assert max(sizes) < 10_000 and len(sizes) > 100  # chunks, not the stream at once


@pytest.mark.shared
def test_a_real_clip_windowed(shared_data):
    """A GRID sentence (MPEG-1 video, 25 fps, stereo MP2 at 44.1 kHz) in windows of 16 frames."""
    path = shared_data / "videos" / "grid" / "GRID" / "bbaf2n.mpg"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    whole = video_spectrogram_frames(path, H, W, CONTEXT)
    got, _, _, _ = windowed(path, 16)
    assert sorted(got) == list(range(len(whole))) == list(range(75))
    for k, image in got.items():
        np.testing.assert_allclose(image, whole[k], rtol=0, atol=1e-6, err_msg=f"frame {k}")
