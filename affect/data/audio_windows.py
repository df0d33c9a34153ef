"""The spectrogram images of :mod:`affect.data.audio`, made a window of frames at a time.

:func:`affect.data.audio.spectrogram_frames` decodes a video's whole audio and makes the images of
all its frames at once (memory grows with the video: ~10 MB of samples per minute at 44.1 kHz, plus
the spectrogram and the float images). Here the same images come out window by window, holding
only what the current window needs:

- :class:`FrameClock` takes the time of every decoded frame as the video is read (it is the
  ``times`` sink of :meth:`affect.io.VideoReader.frames`) and gives the frames' mid-times by the
  same rule (:func:`~affect.data.audio.frame_mids`): frame ``k`` is shown until frame ``k + 1``
  starts, so its mid-time is known once the next frame is decoded; the last frame's (it lasts the
  median frame duration) once the video has ended. The median is exact: durations are counted by
  value (a few distinct values for a constant frame rate), times before the current window dropped.
- :class:`SpectrogramWindows` reads the audio stream once, in order (:class:`affect.io.AudioReader`),
  and for a window's mid-times (:meth:`SpectrogramWindows.images`) keeps only the samples and
  spectrogram columns from the first column any of its images reads to one past the last: column
  ``j`` is made from samples ``[j * hop, j * hop + win)`` alone, so the columns of that stretch are
  the whole signal's columns, and the images are :func:`~affect.data.audio.sample_columns` of them:
  the same numbers as the whole-video computation. Samples before the window are dropped as they
  are decoded (frames without a face cost decoding, not memory); ``peak_samples`` /
  ``peak_columns`` say how much was held at most (bounded by the window's span plus
  ``context_s``, whatever the video's length). Windows are expected in time order; one that reaches
  back before what was kept re-reads the stream from the start (counted in ``rewinds``), so
  non-monotonic timestamps still get the same images.

:class:`VideoWindows` puts the two together over a video read once (the windowed counterpart of
:func:`~affect.data.audio.video_spectrogram_frames`; ``affect predict`` does the same inside its face
pipeline, :mod:`affect.predict.audio`).

The audio's start time is that of its first decoded frame (the whole-file reader takes the first
frame that has one: the same for every stream whose first frame carries a timestamp).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from affect.data.audio import SAMPLE_RATE, column_positions, pooled_columns, sample_columns, window_and_hop
from affect.io import AudioReader, VideoReader

__all__ = ["FrameClock", "SpectrogramWindows", "VideoWindows"]


class FrameClock:
    """Frame times as they are decoded (:meth:`append`, one per decoded frame, in order) -> mid-times."""

    def __init__(self) -> None:
        self.count = 0  # frames appended so far (the next frame's index)
        self.ended = False
        self._times: dict[int, float] = {}
        self._first = 0  # the times of frames before this one are forgotten
        self._durations: Counter = Counter()
        self._nan_durations = 0

    def append(self, t: float) -> None:
        t = float(t)
        if self.count:
            d = t - self._last
            if math.isnan(d):
                self._nan_durations += 1  # NaN is no dict key: counted apart (the median is then NaN)
            else:
                self._durations[d] += 1
        self._times[self.count] = self._last = t
        self.count += 1

    def end(self) -> None:
        """The video has ended: its last frame's mid-time is known now."""
        self.ended = True

    def _median(self) -> float:
        n = sum(self._durations.values()) + self._nan_durations
        if n == 0:
            return 1.0 / 25.0
        if self._nan_durations:
            return float("nan")
        values = sorted(self._durations)
        counts = np.cumsum([self._durations[v] for v in values])

        def nth(i: int) -> float:
            return values[int(np.searchsorted(counts, i, side="right"))]

        return nth(n // 2) if n % 2 else (nth(n // 2 - 1) + nth(n // 2)) / 2.0

    def mids(self, frames: list[int]) -> np.ndarray:
        """Mid-times (float64) of ``frames``: each must be remembered, with its next frame decoded or
        the video ended (else a RuntimeError: the caller asked too early)."""
        out = np.empty(len(frames), np.float64)
        for i, k in enumerate(frames):
            if not self._first <= k < self.count or (k + 1 == self.count and not self.ended):
                raise RuntimeError(f"frame {k}'s mid-time is not known (frames {self._first}..{self.count - 1} "
                                 f"decoded and remembered, ended: {self.ended})")  # fmt: skip
            t = self._times[k]
            out[i] = t + ((self._times[k + 1] - t) if k + 1 < self.count else self._median()) / 2.0
        return out

    def forget_before(self, k: int) -> None:
        """Drop the times of frames before ``k`` (no later window asks for them)."""
        while self._first < min(k, self.count - 1):
            del self._times[self._first]
            self._first += 1

    @property
    def held(self) -> int:
        """Frame times held now."""
        return len(self._times)


class SpectrogramWindows:
    """The audio of ``path`` as spectrogram images of windows of frames (module docstring); use as a
    context manager. Raises :class:`~affect.io.MediaReadError` (a ValueError) when there is no audio
    stream (at open) or it cannot be decoded (from :meth:`images`)."""

    def __init__(
        self, path: str | Path, height: int = 96, width: int = 96, context_s: float = 0.3,
        sample_rate: int = SAMPLE_RATE,
    ) -> None:  # fmt: skip
        self.path, self.height, self.width, self.context_s = str(path), int(height), int(width), float(context_s)
        self.sample_rate = int(sample_rate)
        self.win, self.hop = window_and_hop(self.sample_rate)
        self.peak_samples = self.peak_columns = self.rewinds = 0
        self._reader: AudioReader | None = None
        self._open()

    def _open(self) -> None:
        if self._reader is not None:
            self._reader.close()
        self._reader = AudioReader(self.path, self.sample_rate)
        self._chunks = self._reader.chunks()
        self._start: float | None = None
        self._ended = False
        self._decoded = 0  # samples decoded so far (absolute)
        self._col0 = 0  # first column held
        self._cols = torch.zeros((self.height, 0))  # columns _col0 .. _col0 + m - 1
        self._buf_start = 0  # absolute index of the first held sample: (_col0 + m) * hop, the next column's
        self._buf: list[np.ndarray] = []  # held samples from _buf_start (as decoded, joined when used)

    def __enter__(self) -> SpectrogramWindows:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()

    @property
    def samples_held(self) -> int:
        """Audio samples held now."""
        return sum(len(c) for c in self._buf)

    @property
    def samples_decoded(self) -> int:
        """Audio samples decoded so far (since the last re-read)."""
        return self._decoded

    @property
    def n_columns(self) -> int | None:
        """Columns of the whole audio, once it has ended (a stream shorter than one window: 1, padded)."""
        if not self._ended:
            return None
        return 1 if self._decoded < self.win else (self._decoded - self.win) // self.hop + 1

    def _pull(self) -> None:
        """Decode one more chunk, keeping only its samples from ``_buf_start`` on."""
        chunk = next(self._chunks, None)
        if chunk is None:
            self._ended = True
            return
        if self._start is None:
            self._start = self._reader.start_s or 0.0
        skip = max(0, self._buf_start - self._decoded)
        self._decoded += len(chunk)
        if skip < len(chunk):
            self._buf.append(chunk[skip:])
        self.peak_samples = max(self.peak_samples, self.samples_held)

    def _keep_from(self, col: int) -> None:
        """Drop the columns before ``col`` and every sample only they read."""
        m = self._cols.shape[1]
        if col < self._col0 + m:
            self._cols = self._cols[:, col - self._col0 :]
        else:
            self._cols = torch.zeros((self.height, 0))
            buf = np.concatenate(self._buf) if self._buf else np.zeros(0, np.float32)
            drop = col * self.hop - self._buf_start
            self._buf = [buf[drop:]] if drop < len(buf) else []
            self._buf_start = col * self.hop
        self._col0 = col

    def _make_columns(self) -> None:
        """Turn the held samples into every column they complete (at the end: the rest, or the one
        padded column of a stream shorter than a window)."""
        buf = np.concatenate(self._buf) if self._buf else np.zeros(0, np.float32)
        count = (len(buf) - self.win) // self.hop + 1 if len(buf) >= self.win else 0
        if count == 0 and self._ended and self._buf_start == 0 and self._cols.shape[1] == 0 and len(buf):
            self._cols, self._buf = pooled_columns(buf, self.sample_rate, self.height), []
            self._buf_start = self.hop  # past the one column (nothing more is decoded)
            return
        if count > 0:
            new = pooled_columns(buf[: (count - 1) * self.hop + self.win], self.sample_rate, self.height)
            self._cols = torch.cat([self._cols, new], dim=1)
            buf = buf[count * self.hop :]
            self._buf_start += count * self.hop
        self._buf = [buf] if len(buf) else []
        self.peak_columns = max(self.peak_columns, self._cols.shape[1])

    def _ensure(self, last: int) -> None:
        """Columns up to ``last`` (or to the end of the audio) made and held."""
        while not self._ended and self._decoded < last * self.hop + self.win:
            self._pull()
        self._make_columns()

    def images(self, mids: np.ndarray) -> np.ndarray:
        """The images (float32 ``[T, 1, H, W]`` in [-1, 1]) of frames with these mid-times (s, on the
        video's clock; :meth:`FrameClock.mids`): those of :func:`~affect.data.audio.spectrogram_frames`."""
        mids = np.asarray(mids, np.float64)
        while self._start is None and not self._ended:
            self._pull()
        pos = column_positions(mids, self._start or 0.0, self.sample_rate, self.width, self.context_s)
        read = pos[np.isfinite(pos) & (pos >= 0)]
        if len(read) == 0:  # every image column before the audio (or NaN): silence
            return sample_columns(self._cols, self._col0, 0, pos, self.width)
        first, last = int(np.floor(read.min())), int(np.floor(read.max())) + 1
        if first < self._col0:  # a window before what is kept: read the stream again from its start
            self.rewinds += 1
            self._open()
            while self._start is None and not self._ended:
                self._pull()
        n = self.n_columns
        if n is not None and first >= n:  # all after the audio's end
            return sample_columns(self._cols, self._col0, n, pos, self.width)
        self._keep_from(first)
        self._ensure(last)
        n = self.n_columns or self._col0 + self._cols.shape[1]
        return sample_columns(self._cols, self._col0, n, pos, self.width)


class VideoWindows:
    """``path`` read once: iterate for windows of ``window`` consecutive kept frames (every
    ``stride``-th decoded frame), each given once the frame after it is decoded (or the video has
    ended); :meth:`images` makes a window's images (before the next window is taken). Use as a
    context manager. ``peak_frame_times``: the most frame times the clock held."""

    def __init__(
        self, path: str | Path, height: int = 96, width: int = 96, context_s: float = 0.3, window: int = 16,
        stride: int = 1,
    ) -> None:  # fmt: skip
        self.path, self.window, self.stride = str(path), int(window), int(stride)
        self.clock = FrameClock()
        self.spectrograms = SpectrogramWindows(path, height, width, context_s)
        self.peak_frame_times = 0

    def __enter__(self) -> VideoWindows:
        return self

    def __exit__(self, *exc) -> None:
        self.spectrograms.close()

    def __iter__(self) -> Iterator[list[int]]:
        pending: list[int] = []
        with VideoReader(self.path) as reader:
            for k, t in reader.stamps():  # only the clock is needed: no RGB conversion
                self.clock.append(t)
                if k % self.stride:
                    continue
                self.peak_frame_times = max(self.peak_frame_times, self.clock.held)
                if len(pending) >= self.window:
                    yield pending
                    self.clock.forget_before(pending[-1] + 1)
                    pending = []
                pending.append(k)
        self.clock.end()
        if pending:
            yield pending

    def images(self, frames: list[int]) -> np.ndarray:
        """float32 ``[len(frames), 1, H, W]``: the images of a window's frames."""
        return self.spectrograms.images(self.clock.mids(frames))
