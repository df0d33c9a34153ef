"""``affect prepare --audio``: each row's spectrogram image, made a window of frames at a time
(affect.store.shard.audio_images), equals the whole-video computation's (video_spectrogram_frames), and
rows without a source, past the video's end or of a video without sound are counted and stored as silence."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from affect.data.audio import SAMPLE_RATE, to_uint8, video_spectrogram_frames
from affect.io import write_video
from affect.store.shard import PrepareOptions, audio_images

FPS = 25


def _clip(path, seconds: float, sound: bool = True):
    n = round(seconds * FPS)
    frames = np.zeros((n, 32, 32, 3), np.uint8)
    frames[:, 8:24, 8:24] = (np.arange(n) * 9 % 256)[:, None, None, None]
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wave = (0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.5 * t))).astype(np.float32)
    return write_video(path, frames, FPS, audio=wave if sound else None)


def test_rows_get_the_whole_video_images_and_bad_rows_are_counted(tmp_path):
    long = _clip(tmp_path / "long.mp4", 14.0)  # 350 frames: more than one window of 256
    mute = _clip(tmp_path / "mute.mp4", 1.0, sound=False)
    opts = PrepareOptions(image_size=32, detect="never", audio=True, audio_height=16, audio_width=16)
    wanted = [0, 5, 255, 256, 257, 300, 349, 5]  # across the window edge, the last frame, a repeat
    rows = pd.DataFrame({
        "path": ["long.mp4"] * len(wanted) + ["long.mp4", "mute.mp4", "photo.jpg"],
        "frame": wanted + [350, 0, -1],  # past the end; a video without sound; not a video
    })  # fmt: skip
    counts: Counter = Counter()
    out = audio_images(rows, tmp_path, opts, counts)
    whole = to_uint8(video_spectrogram_frames(long, 16, 16, opts.audio_context_s))
    assert len(whole) == 350
    for j, k in enumerate(wanted):
        assert np.array_equal(out[j], whole[k]), f"row {j} (frame {k})"
    assert len({out[j].tobytes() for j in range(len(wanted))}) == len(set(wanted))  # the images differ
    assert not out[len(wanted):].any()  # silence (0) where there is no image
    assert counts == Counter(audio_frame_out_of_range=1, audio_unreadable=1, audio_no_source=1)
    assert mute.is_file()
