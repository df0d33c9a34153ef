"""The column set of ``affect predict``'s CSVs (one home; the README's table mirrors it).

Per face and frame (frames without a face: one row, ``face_detected = 0``, predictions empty):

| column | unit / range |
|---|---|
| ``input`` | the file as given (after folder / glob expansion) |
| ``kind`` | ``image`` or ``video`` |
| ``frame`` | 0-based decoded frame index (0 for images) |
| ``time_s`` | presentation time in seconds (from the stream; empty for images) |
| ``face_detected`` | 1 / 0: the row holds a face (detected, or a whole face-crop image: ``whole_image``) |
| ``whole_image`` | 1 when no face was detected in a face-crop-sized image (short side <= 128 px, e.g. FER2013) and the whole image was taken as the face (score empty) |
| ``face_id`` | track id within the input (0, 1, ...; -1 without a face); for images, faces by size |
| ``carried`` | 1 when the face's box and points were carried from an earlier detection (``detect_every`` > 1) |
| ``box_x, box_y, box_w, box_h`` | the MTCNN box in source pixels (top-left corner, width, height) |
| ``score`` | MTCNN confidence in [0, 1] |
| ``left_eye_x ... mouth_right_y`` | the 5 MTCNN points in source pixels (image-left eye first) |
| ``valence, arousal`` | in [-1, 1] (VA models) |
| ``Neutral ... Surprise`` | the 7 EXPR softmax probabilities (sum 1) and ``expression``, the argmax |
| ``AU01 ... AU26`` | one sigmoid probability per AU of the model's AU set |
| ``compound_<class>``, ``compound`` | compound-class probabilities and the argmax (compound models) |
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from affect.labels import EXPR_CLASSES
from affect.predict.media import POINT_NAMES

META_COLUMNS: tuple[str, ...] = (
    "input", "kind", "frame", "time_s", "face_detected", "whole_image", "face_id", "carried",
    "box_x", "box_y", "box_w", "box_h", "score",
    *(f"{n}_{a}" for n in POINT_NAMES for a in "xy"),
)  # fmt: skip


#: Row keys of :class:`affect.predict.media.FaceTable` that index arrays (not output columns).
INTERNAL = ("crop", "spec")


def au_columns(au_set: Sequence[int]) -> list[str]:
    """``AU01``-style names (OpenFace / py-feat spelling).

    >>> au_columns([1, 12, 25])
    ['AU01', 'AU12', 'AU25']
    """
    return [f"AU{int(a):02d}" for a in au_set]


def compound_columns(names: Sequence[str]) -> list[str]:
    """Compound-class probability columns.

    >>> compound_columns(["Happily Surprised"])
    ['compound_Happily_Surprised']
    """
    return ["compound_" + n.replace(" ", "_") for n in names]


def output_columns(present: Iterable[str]) -> list[str]:
    """The present columns in the documented order (meta, VA, EXPR, AU, compound); the internal
    ``crop`` / ``spec`` indices dropped."""
    present = list(present)
    order = [*META_COLUMNS, "valence", "arousal", *EXPR_CLASSES, "expression"]
    head = [c for c in order if c in present]
    aus = sorted(c for c in present if c.startswith("AU") and c[2:].isdigit())
    comp = [c for c in present if c.startswith("compound")]
    rest = [c for c in present if c not in head and c not in aus and c not in comp and c not in INTERNAL]
    return head + rest + aus + comp
