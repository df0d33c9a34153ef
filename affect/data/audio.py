"""Audio stream of the A/V models: one log-spectrogram image per video frame (paper Sec. IV, VI-A.3).

Paper: "the audio (mono) signal was sampled at 44,100 Hz. Then spectrograms were extracted;
spectrogram frames were computed over a 33 ms window with 11 ms overlap. The resulting
intensity values were normalized in [-1, 1]". Choices the paper leaves open, fixed here:

- **Decoding**: the media reader :func:`affect.io.read_audio` (PyAV; ``torchaudio.load`` needs
  torchcodec, which is not installed): resampled to 44,100 Hz by FFmpeg's swresample, the
  channels averaged to mono. Frame times: :func:`affect.io.frame_times` (the reader's one rule).
- **Spectrogram**: ``torchaudio.transforms.Spectrogram`` with a Hann window of
  ``win = round(0.033 * 44100) = 1455`` samples, hop ``win - round(0.011 * 44100) = 970``,
  ``n_fft = win`` (728 frequency bins), magnitude (power 1), ``center=False`` so that column
  ``j`` covers samples ``[j * hop, j * hop + win)`` and is centred at ``(j * hop + win / 2) / sr``.
- **Scaling** (fixed range, *not* per clip, so that values compare across clips and silence
  stays dark): ``dB = 20 log10(|X| / ref)`` with ``ref = sum(window) / 2`` (the peak magnitude
  of a full-scale sine, i.e. dB relative to full scale), clipped to ``[-DB_RANGE, 0]`` with
  ``DB_RANGE = 80`` and mapped linearly to ``[-1, 1]`` (-80 dBFS -> -1, 0 dBFS -> +1).
- **One image per video frame**: for a frame shown during ``[t_i, t_{i+1})`` (decoded
  timestamps, so variable frame rates work) the image covers ``context_s`` seconds
  (0.3 s default) centred on the frame's mid-time; its ``width`` columns are the
  spectrogram linearly interpolated at evenly spaced times in that window (times before the
  audio starts or after it ends read as silence, -1), and the 728 frequency bins are
  area-averaged to ``height`` rows (row 0 = lowest frequency). Output float32
  ``[T, 1, height, width]`` in [-1, 1], T = number of decoded video frames.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from affect.io import frame_times, read_audio

SAMPLE_RATE = 44_100
WINDOW_S = 0.033
OVERLAP_S = 0.011
DB_RANGE = 80.0


def window_and_hop(sample_rate: int = SAMPLE_RATE) -> tuple[int, int]:
    """Spectrogram window and hop in samples: 33 ms windows, 11 ms overlap.

    >>> window_and_hop(44100)
    (1455, 970)
    """
    win = round(WINDOW_S * sample_rate)
    return win, win - round(OVERLAP_S * sample_rate)


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, float]:
    """The first audio stream of ``path`` as mono float32 at ``sample_rate`` (:func:`affect.io.read_audio`):
    ``(samples [n], start_s)``, ``start_s`` on the video frames' clock. Raises
    :class:`~affect.io.MediaReadError` (a ValueError) if there is no audio or it cannot be decoded."""
    return read_audio(path, sample_rate)


def log_spectrogram(wav: np.ndarray, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Log-magnitude spectrogram scaled to [-1, 1]: float32 ``[F, N]`` (F = n_fft // 2 + 1).

    >>> s = log_spectrogram(np.zeros(44100, np.float32)); tuple(s.shape), float(s.max())
    ((728, 44), -1.0)
    """
    import torchaudio

    win, hop = window_and_hop(sample_rate)
    spec = torchaudio.transforms.Spectrogram(
        n_fft=win, win_length=win, hop_length=hop, power=1.0, center=False, window_fn=torch.hann_window
    )
    x = torch.as_tensor(np.asarray(wav, dtype=np.float32))
    if x.numel() < win:
        x = torch.nn.functional.pad(x, (0, win - x.numel()))
    mag = spec(x)
    ref = torch.hann_window(win, periodic=True).sum() / 2
    db = 20.0 * torch.log10(torch.clamp(mag / ref, min=1e-12))
    return (torch.clamp(db, -DB_RANGE, 0.0) / (DB_RANGE / 2.0) + 1.0).to(torch.float32)


def pooled_columns(wav: np.ndarray, sample_rate: int = SAMPLE_RATE, height: int = 96) -> torch.Tensor:
    """:func:`log_spectrogram` with its frequency bins area-averaged to ``height`` rows: ``[height, N]``.
    Each column depends only on its own ``win`` samples, so the columns of a stretch of samples that
    starts at a multiple of the hop are those columns of the whole signal."""
    spec = log_spectrogram(wav, sample_rate)  # [F, N]
    return torch.nn.functional.adaptive_avg_pool1d(spec.T[None], height)[0].T  # [H, N]


def frame_mids(times: np.ndarray) -> np.ndarray:
    """Mid-times of the frames shown during ``[t_i, t_{i+1})``; the last frame lasts the median
    frame duration (1/25 s for a single frame).

    >>> frame_mids(np.array([0.0, 0.04, 0.08])).tolist()
    [0.02, 0.06, 0.1]
    """
    dur = np.diff(times)
    last = float(np.median(dur)) if len(dur) else 1.0 / 25.0
    return times + np.append(dur, last) / 2.0


def column_positions(
    mids: np.ndarray, audio_start_s: float, sample_rate: int, width: int, context_s: float
) -> np.ndarray:
    """Fractional spectrogram column (float64 ``[T * width]``) of each image column of each frame:
    ``width`` evenly spaced times over ``context_s`` seconds centred on each mid-time; column ``j``
    is centred at ``audio_start_s + (j * hop + win / 2) / sample_rate``."""
    win, hop = window_and_hop(sample_rate)
    offsets = (np.arange(width) + 0.5) / width * context_s - context_s / 2.0
    query = (np.asarray(mids, np.float64)[:, None] + offsets[None, :]).ravel()  # [T * W]
    return (query - (audio_start_s + (win / 2.0) / sample_rate)) * sample_rate / hop


def sample_columns(cols: torch.Tensor, first: int, n: int, pos: np.ndarray, width: int) -> np.ndarray:
    """Images from spectrogram columns by linear interpolation at ``pos`` (:func:`column_positions`):
    float32 ``[T, 1, H, width]``. ``cols`` ``[H, m]`` holds columns ``first .. first + m - 1`` of the
    ``n`` columns of the audio (``n``: every column when the audio has ended, else at least all
    columns up to the one after the largest position); a position outside ``[0, n - 1]`` (before the
    audio starts, after it ends, NaN) reads as silence, -1."""
    height = cols.shape[0]
    inside = (pos >= 0) & (pos <= n - 1)
    out = torch.full((height, len(pos)), -1.0)
    if inside.any():
        p = pos[inside]
        lo = np.clip(np.floor(p).astype(np.int64), 0, n - 1)
        hi = np.clip(lo + 1, 0, n - 1)
        frac = torch.as_tensor(np.clip(p - lo, 0.0, 1.0), dtype=torch.float32)
        out[:, torch.as_tensor(inside)] = cols[:, lo - first] * (1 - frac) + cols[:, hi - first] * frac
    return out.reshape(height, len(pos) // width, width).permute(1, 0, 2)[:, None].contiguous().numpy()


def spectrogram_frames(
    wav: np.ndarray,
    frame_times: np.ndarray,
    audio_start_s: float = 0.0,
    sample_rate: int = SAMPLE_RATE,
    height: int = 96,
    width: int = 96,
    context_s: float = 0.3,
) -> np.ndarray:
    """One ``[1, height, width]`` spectrogram image per video frame: float32 ``[T, 1, H, W]`` in [-1, 1]
    (the whole audio at once; :class:`affect.data.audio_windows.SpectrogramWindows` makes the same
    images a window of frames at a time)."""
    times = np.asarray(frame_times, dtype=np.float64)
    if times.ndim != 1 or len(times) == 0:
        raise ValueError(f"frame_times must be a non-empty 1-D array; got shape {times.shape}")
    cols = pooled_columns(wav, sample_rate, height)
    pos = column_positions(frame_mids(times), audio_start_s, sample_rate, width, context_s)
    return sample_columns(cols, 0, cols.shape[1], pos, width)


def video_spectrogram_frames(
    path: str | Path, height: int = 96, width: int = 96, context_s: float = 0.3
) -> np.ndarray:
    """Decode ``path`` and return one spectrogram image per decoded video frame (float32 [T, 1, H, W])."""
    wav, start = load_audio(path)
    return spectrogram_frames(wav, frame_times(path), start, SAMPLE_RATE, height, width, context_s)


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Map [-1, 1] floats to uint8 (for the store): ``round((x + 1) * 127.5)``; inverse ``u / 127.5 - 1``.

    >>> to_uint8(np.array([-1.0, 0.0, 1.0])).tolist()
    [0, 128, 255]
    """
    return np.clip(np.rint((np.asarray(images) + 1.0) * 127.5), 0, 255).astype(np.uint8)
