"""Canonical label spaces (the design notes, "Canonical label spaces").

Every corpus maps into these spaces; nothing else in the package defines a class order.

- EXPR: 7 basic expressions in the Aff-Wild2 order (``EXPR_CLASSES``); ``-1`` = no label.
- AU: the 17 action units of the paper's holistic set (``AU_SET``), configurable per model;
  a sample carries an ``au`` 0/1 vector and an ``au_mask`` (the paper's delta_i, eq. 7):
  AUs a corpus does not annotate are masked, never treated as 0.
- VA: valence and arousal in [-1, 1]; ``va_mask`` marks which of the two are annotated.
- RAF-DB compound classes, ids 1..11 (``RAFDB_COMPOUND_CLASSES``).

>>> EXPR_CLASSES.index("Happiness")
4
>>> map_expr([1, 7, 8], AFFECTNET_EXPR_ORDER).tolist()   # Happy, Contempt, None
[4, -1, -1]
>>> au_index(12)
8
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

EXPR_CLASSES: tuple[str, ...] = ("Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise")
NUM_EXPR = len(EXPR_CLASSES)
EXPR_IGNORE = -1  # "no EXPR label" in every batch and manifest

AU_SET: tuple[int, ...] = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 24, 25, 26)
NUM_AU = len(AU_SET)

VA_RANGE: tuple[float, float] = (-1.0, 1.0)
VA_DIMS: tuple[str, str] = ("valence", "arousal")

# Corpus class orders (id -> canonical name, None = outside the 7 basic classes).
AFFECTNET_EXPR_ORDER: dict[int, str | None] = {
    0: "Neutral", 1: "Happiness", 2: "Sadness", 3: "Surprise", 4: "Fear", 5: "Disgust", 6: "Anger",
    7: None,  # Contempt
    8: None,  # None
    9: None,  # Uncertain
    10: None,  # No-Face
}
AFFECTNET_EXPR_NAMES: dict[int, str] = {
    0: "Neutral", 1: "Happy", 2: "Sad", 3: "Surprise", 4: "Fear", 5: "Disgust", 6: "Anger",
    7: "Contempt", 8: "None", 9: "Uncertain", 10: "Non-Face",
}
RAFDB_BASIC_ORDER: dict[int, str] = {
    1: "Surprise", 2: "Fear", 3: "Disgust", 4: "Happiness", 5: "Sadness", 6: "Anger", 7: "Neutral",
}
FER2013_FOLDERS: dict[str, str] = {
    "angry": "Anger", "disgust": "Disgust", "fear": "Fear", "happy": "Happiness",
    "neutral": "Neutral", "sad": "Sadness", "surprise": "Surprise",
}
# OMG-Emotion EmotionMaxVote ids (OMG-Emotion README): 0 anger, 1 disgust, 2 fear, 3 happy,
# 4 neutral, 5 sad, 6 surprise.
OMG_EXPR_ORDER: dict[int, str] = {
    0: "Anger", 1: "Disgust", 2: "Fear", 3: "Happiness", 4: "Neutral", 5: "Sadness", 6: "Surprise",
}

RAFDB_COMPOUND_CLASSES: tuple[str, ...] = (
    "Happily Surprised", "Happily Disgusted", "Sadly Fearful", "Sadly Angry", "Sadly Surprised",
    "Sadly Disgusted", "Fearfully Angry", "Fearfully Surprised", "Angrily Surprised",
    "Angrily Disgusted", "Disgustedly Surprised",
)  # RAF-DB compound ids 1..11, in this order
NUM_RAFDB_COMPOUND = len(RAFDB_COMPOUND_CLASSES)


def expr_index(name: str) -> int:
    """Canonical index of an expression name (case-insensitive)."""
    lowered = [c.lower() for c in EXPR_CLASSES]
    try:
        return lowered.index(name.lower())
    except ValueError:
        raise ValueError(f"unknown expression {name!r}; expected one of {EXPR_CLASSES}") from None


def map_expr(ids: Sequence[int] | np.ndarray, order: Mapping[int, str | None]) -> np.ndarray:
    """Map corpus class ids to canonical EXPR indices; ids outside the 7 classes map to -1.

    Ids that the ``order`` does not know at all raise: that is malformed input, not a sentinel.
    """
    ids = np.asarray(ids, dtype=np.int64)
    out = np.full(ids.shape, EXPR_IGNORE, dtype=np.int64)
    unknown = sorted({int(i) for i in np.unique(ids)} - set(order))
    if unknown:
        raise ValueError(f"class ids {unknown} are not in the corpus order {sorted(order)}")
    for corpus_id, name in order.items():
        if name is not None:
            out[ids == corpus_id] = expr_index(name)
    return out


def au_index(au: int, au_set: Sequence[int] = AU_SET) -> int:
    """Position of action unit ``au`` (e.g. 12 for AU12) in ``au_set``."""
    try:
        return list(au_set).index(int(au))
    except ValueError:
        raise ValueError(f"AU{au} is not in the AU set {list(au_set)}") from None


def au_vector(
    values: Mapping[int, float], au_set: Sequence[int] = AU_SET, unknown: Sequence[float] = ()
) -> tuple[np.ndarray, np.ndarray]:
    """Scatter ``{au: 0/1}`` into an ``(au, au_mask)`` pair over ``au_set``.

    AUs absent from ``values``, outside ``au_set``'s annotation, or equal to an ``unknown``
    sentinel (e.g. EmotioNet 999, BP4D 9) are masked out (mask 0, value 0).

    >>> v, m = au_vector({1: 1, 2: 0, 4: 999}, au_set=(1, 2, 4, 5), unknown=(999,))
    >>> v.tolist(), m.tolist()
    ([1.0, 0.0, 0.0, 0.0], [True, True, False, False])
    """
    au = np.zeros(len(au_set), dtype=np.float32)
    mask = np.zeros(len(au_set), dtype=bool)
    position = {a: i for i, a in enumerate(au_set)}
    for unit, value in values.items():
        if int(unit) not in position or value in unknown:
            continue
        if value not in (0, 1):
            raise ValueError(f"AU{unit} occurrence must be 0 or 1 (or a sentinel {list(unknown)}), got {value!r}")
        au[position[int(unit)]] = float(value)
        mask[position[int(unit)]] = True
    return au, mask


def va_with_mask(
    valence: float, arousal: float, sentinels: Sequence[float] = (), scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Rescale a (valence, arousal) pair by ``1/scale`` and mask sentinel or non-finite values.

    Values outside [-1, 1] after rescaling raise, since they mean a wrong scale, not noise.

    >>> va, m = va_with_mask(5, -2, sentinels=(-2,), scale=10)   # AFEW-VA-like integers
    >>> va.tolist(), m.tolist()
    ([0.5, 0.0], [True, False])
    """
    raw = np.array([valence, arousal], dtype=np.float64)
    mask = np.isfinite(raw)
    for s in sentinels:
        mask &= raw != s
    va = np.where(mask, raw / scale, 0.0).astype(np.float32)
    if np.any(np.abs(va[mask]) > 1.0 + 1e-6):
        raise ValueError(f"VA values {raw[mask].tolist()} fall outside [-1, 1] after dividing by {scale}")
    return va, mask
