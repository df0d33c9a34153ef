"""Synthetic videos and audio: smooth expression changes for the video corpora and A/V models.

:func:`face_sequence` draws one identity (fixed :class:`Appearance`) whose expression changes
every ``segment_s`` seconds (uniform in the range), with cosine-eased transitions of
``transition_s`` seconds between the AU intensities and VA of consecutive segments, a slow
VA wobble (+/- 0.05) and a slowly drifting head pose (sinusoids of 0.05-0.3 Hz).

Per-frame labels: ``expr`` switches at the middle of a transition; an AU counts as occurring
(``au`` = 1) where its current intensity is >= :data:`AU_ON`.

:func:`synthetic_audio` turns per-frame VA into a waveform: a voiced buzz (5 harmonics)
whose pitch (110-220 Hz) and loudness rise with arousal, mixed with white noise in proportion
to ``(1 - valence) / 2`` (positive valence = harmonic, negative = noisy), modulated by a
3.5 Hz syllable-like envelope.
"""

from __future__ import annotations

import numpy as np

from affect.data.synthetic.face import Appearance, Pose, draw_face
from affect.data.synthetic.labels import sample_labels
from affect.labels import NUM_AU

AU_ON = 0.2


def _segments(rng: np.random.Generator, n_frames: int, fps: float, segment_s: tuple[float, float]) -> list[int]:
    starts, t = [], 0
    while t < n_frames:
        starts.append(t)
        t += max(1, round(rng.uniform(*segment_s) * fps))
    return starts


def sequence_labels(
    rng: np.random.Generator,
    n_frames: int,
    fps: float = 30.0,
    segment_s: tuple[float, float] = (2.0, 5.0),
    transition_s: float = 0.5,
    relatedness: str = "du2014",
    expressions: tuple[int, ...] | None = None,
) -> dict[str, np.ndarray]:
    """Per-frame labels of a synthetic video (see module docstring); arrays of length ``n_frames``."""
    starts = _segments(rng, n_frames, fps, segment_s)
    segs = []
    for _ in starts:
        expr = None if expressions is None else int(rng.choice(expressions))
        segs.append(sample_labels(rng, expr=expr, relatedness=relatedness))
    expr = np.empty(n_frames, np.int64)
    inten = np.empty((n_frames, NUM_AU), np.float32)
    va = np.empty((n_frames, 2), np.float32)
    trans = max(1, round(transition_s * fps))
    ends = [*starts[1:], n_frames]
    for k, (s, e) in enumerate(zip(starts, ends, strict=True)):
        cur = segs[k]
        expr[s:e] = cur["expr"]
        inten[s:e] = cur["au_intensity"]
        va[s:e] = (cur["valence"], cur["arousal"])
        if k == 0:
            continue
        prev = segs[k - 1]
        n = min(trans, e - s)
        w = 0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 1) / (trans + 1))  # ease in
        inten[s : s + n] = (1 - w[:, None]) * prev["au_intensity"] + w[:, None] * cur["au_intensity"]
        va[s : s + n] = (1 - w[:, None]) * np.array([prev["valence"], prev["arousal"]]) + w[:, None] * va[s]
        expr[s : s + n] = np.where(w < 0.5, prev["expr"], cur["expr"])
    t = np.arange(n_frames) / fps
    wobble = 0.05 * np.sin(2 * np.pi * rng.uniform(0.05, 0.2, 2)[None, :] * t[:, None] + rng.uniform(0, 6.3, 2))
    va = np.clip(va + wobble, -1, 1).astype(np.float32)
    return {
        "expr": expr,
        "au": (inten >= AU_ON).astype(np.float32),
        "au_intensity": inten,
        "valence": va[:, 0].copy(),
        "arousal": va[:, 1].copy(),
    }


def face_sequence(
    rng: np.random.Generator,
    n_frames: int,
    size: int = 96,
    fps: float = 30.0,
    segment_s: tuple[float, float] = (2.0, 5.0),
    transition_s: float = 0.5,
    relatedness: str = "du2014",
    expressions: tuple[int, ...] | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """A smooth synthetic video of one identity.

    Returns ``images`` uint8 ``[T, size, size, 3]``, ``landmarks`` float32 ``[T, 68, 2]``
    (pixels) and labels ``{"expr": int64 [T], "au": float32 [T, 17] 0/1,
    "au_intensity": float32 [T, 17], "valence": float32 [T], "arousal": float32 [T]}``.
    ``expressions`` restricts the classes drawn per segment (canonical indices).

    >>> imgs, lms, lab = face_sequence(np.random.default_rng(0), 4, size=32)
    >>> imgs.shape, lms.shape, lab["au"].shape
    ((4, 32, 32, 3), (4, 68, 2), (4, 17))
    """
    if n_frames < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    labels = sequence_labels(rng, n_frames, fps, segment_s, transition_s, relatedness, expressions)
    app = Appearance.sample(rng)
    base = Pose.sample(rng)
    freq = rng.uniform(0.05, 0.3, 5)
    phase = rng.uniform(0, 2 * np.pi, 5)
    amp = np.array([0.12, 0.05, 0.03, 0.015, 0.015])
    t = np.arange(n_frames) / fps
    drift = amp[None, :] * np.sin(2 * np.pi * freq[None, :] * t[:, None] + phase[None, :])
    images = np.empty((n_frames, size, size, 3), np.uint8)
    landmarks = np.empty((n_frames, 68, 2), np.float32)
    for f in range(n_frames):
        pose = Pose(
            yaw=float(np.clip(base.yaw * 0.5 + drift[f, 0], -0.35, 0.35)),
            roll=float(np.clip(base.roll * 0.5 + drift[f, 1], -0.2, 0.2)),
            scale=float(base.scale + drift[f, 2]),
            tx=float(base.tx + drift[f, 3]),
            ty=float(base.ty + drift[f, 4]),
            gaze=base.gaze,
        )
        images[f], landmarks[f] = draw_face(
            labels["au_intensity"][f], rng, size, float(labels["valence"][f]), float(labels["arousal"][f]),
            appearance=app, pose=pose,
        )
    return images, landmarks, labels


def synthetic_audio(
    valence: np.ndarray,
    arousal: np.ndarray,
    fps: float,
    sample_rate: int = 44_100,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Mono float32 waveform in [-1, 1] of ``round(T / fps * sample_rate)`` samples following VA.

    Arousal -> pitch (110-220 Hz) and loudness (0.05-0.4 peak); valence -> timbre (harmonic at
    +1, noise at -1). Per-frame values are linearly interpolated between frame centres.

    >>> w = synthetic_audio(np.zeros(3), np.zeros(3), fps=30, sample_rate=8000)
    >>> w.shape, w.dtype
    ((800,), dtype('float32'))
    """
    valence = np.asarray(valence, np.float64)
    arousal = np.asarray(arousal, np.float64)
    if valence.shape != arousal.shape or valence.ndim != 1:
        raise ValueError(f"valence and arousal must be 1-D of equal length; got {valence.shape}, {arousal.shape}")
    rng = rng if rng is not None else np.random.default_rng(0)
    n = round(len(valence) / fps * sample_rate)
    t = np.arange(n) / sample_rate
    frame_t = (np.arange(len(valence)) + 0.5) / fps
    v = np.clip(np.interp(t, frame_t, valence), -1, 1)
    a = np.clip(np.interp(t, frame_t, arousal), -1, 1)
    a01 = (a + 1) / 2
    f0 = 110.0 * 2.0**a01
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    harmonic = sum(np.sin(k * phase) / k for k in range(1, 6)) / 2.28  # 1 + 1/2 + ... + 1/5
    noise = rng.uniform(-1, 1, n)
    h = (v + 1) / 2
    envelope = 0.55 + 0.45 * np.abs(np.sin(2 * np.pi * 3.5 * t))
    amp = 0.05 + 0.35 * a01**1.5
    wave = amp * envelope * (h * harmonic + (1 - h) * noise)
    return np.clip(wave, -1, 1).astype(np.float32)
