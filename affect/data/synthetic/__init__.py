"""Procedurally drawn faces whose geometry follows their labels ("fixtures that learn").

A small CNN can learn VA, EXPR and AU from these images in about a minute on a CPU, so the
fixture corpora (``affect.data.fixtures``) exercise the real parsers *and* give training
curves that move. Pieces:

- :func:`sample_labels` (``labels.py``): expression -> AUs from paper Table V (prototypical
  always, observational with probability ``w``), VA from a circumplex table, compounds;
- :func:`draw_face` (``face.py``): 68 iBUG landmarks deformed by the AUs, posed and rendered
  with anti-aliased OpenCV primitives plus nuisance factors (skin, hair, background, light,
  noise, pose);
- :func:`make_face` = both; :func:`face_sequence` / :func:`synthetic_audio` (``video.py``):
  smooth videos of one identity and a VA-driven audio track.

>>> img, lm, lab = make_face(np.random.default_rng(0), expr=6, size=48)   # Surprise
>>> img.shape, lab["expr"], lab["au"][[0, 1, 15, 16]].tolist()           # AU1, 2, 25, 26 on
((48, 48, 3), 6, [1.0, 1.0, 1.0, 1.0])
"""

from __future__ import annotations

import numpy as np

from affect.data.synthetic.face import Appearance, Pose, draw_face
from affect.data.synthetic.labels import CIRCUMPLEX, VA_NOISE, expected_au_rates, sample_labels
from affect.data.synthetic.video import face_sequence, sequence_labels, synthetic_audio

__all__ = [
    "CIRCUMPLEX",
    "VA_NOISE",
    "Appearance",
    "Pose",
    "draw_face",
    "expected_au_rates",
    "face_sequence",
    "make_face",
    "sample_labels",
    "sequence_labels",
    "synthetic_audio",
]


def make_face(
    rng: np.random.Generator,
    expr: int | None = None,
    compound: str | None = None,
    size: int = 96,
    relatedness: str = "du2014",
) -> tuple[np.ndarray, np.ndarray, dict]:
    """:func:`sample_labels` then :func:`draw_face`: ``(image uint8 [H, W, 3], landmarks [68, 2], labels)``."""
    labels = sample_labels(rng, expr=expr, relatedness=relatedness, compound=compound)
    image, landmarks = draw_face(labels["au_intensity"], rng, size, labels["valence"], labels["arousal"])
    return image, landmarks, labels
