"""The batch format, stated once: the frame, sequence and domain batches, one table of label keys,
and :class:`FrameRows`, a batch's valid frames as rows.

Every place that needs to know a label key, its mask, its "not annotated" fill value or its dtype
reads :data:`LABELS` (lightning-pose ``data/datatypes.py`` style): the multi-domain batch merge
(:func:`affect.models.batching.concat_batches`), the domain filter of
:class:`~affect.data.multidomain.MultiDomainDataModule`, the loss (:mod:`affect.losses.multitask`)
and the ids carried into predictions.

A step flattens its batch once (:meth:`FrameRows.of`): the loss, the metric updates and the
evaluation callbacks (:mod:`affect.models.callbacks`) all read the same rows.

Conventions (paper Sec. IV; the label spaces of ``docs/corpora.md``):

- images are **uint8** RGB ``[3, H, W]`` (frames) or ``[T, 3, H, W]`` (sequences); the model
  normalises them on the device (``x / 127.5 - 1``);
- ``va`` float ``[2]`` (valence, arousal) in [-1, 1] with ``va_mask`` bool ``[2]``;
- ``expr`` int64 ``[]`` in the 7 classes of ``affect.labels.EXPR_CLASSES``, ``-1`` = not annotated
  (no separate mask: the fill value is the mask);
- ``au`` float ``[A]`` 0/1 with ``au_mask`` bool ``[A]`` (eq. 7's delta; A = 17 from the corpora,
  narrowed by a model to its AU set);
- sequence batches add the time axis after the batch axis and ``frame_mask`` bool ``[B, T]``
  (False = padding) and ``face_mask`` (False = a frame without a usable face).

>>> TASKS
('va', 'expr', 'au')
>>> TARGET_KEYS
('va', 'va_mask', 'expr', 'au', 'au_mask')
>>> LABELS["expr"].fill, LABELS["au"].mask_key
(-1, 'au_mask')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple, TypedDict

import torch
from torch import Tensor

__all__ = [
    "ID_KEYS",
    "INPUT_KEYS",
    "LABELS",
    "TARGET_KEYS",
    "TASKS",
    "Batch",
    "DomainBatch",
    "FrameBatch",
    "FrameItem",
    "FrameRows",
    "LabelKey",
    "SequenceBatch",
    "unannotated",
]


class LabelKey(NamedTuple):
    """One label of a batch: its key, the key of its mask (``None``: the fill value marks it),
    the value of an unannotated entry, and its dtype."""

    key: str
    mask_key: str | None
    fill: float | int
    dtype: torch.dtype


#: The three tasks' labels, in task order (VA, EXPR, AU).
LABELS: dict[str, LabelKey] = {
    "va": LabelKey("va", "va_mask", 0.0, torch.float32),
    "expr": LabelKey("expr", None, -1, torch.int64),
    "au": LabelKey("au", "au_mask", 0.0, torch.float32),
}
#: The tasks, in the order of the paper's tables (VA, EXPR, AU).
TASKS: tuple[str, ...] = tuple(LABELS)
#: Every key that holds a target or a target mask.
TARGET_KEYS: tuple[str, ...] = tuple(
    k for label in LABELS.values() for k in (label.key, label.mask_key) if k is not None
)
#: Keys a network may read (see ``input_keys`` of the networks in ``affect.models``).
INPUT_KEYS: tuple[str, ...] = ("image", "landmarks", "landmarks_mask", "audio")
#: Identifiers carried from a batch into ``predict_step``'s output (the media datamodule of
#: ``affect.predict`` adds ``row``, its per-face row index).
ID_KEYS: tuple[str, ...] = ("path", "corpus", "video", "frame", "frame_mask", "face_mask", "row")


class FrameItem(TypedDict):
    """One frame sample; the default collate stacks it into a :class:`FrameBatch`."""

    image: Tensor  # uint8 [3, H, W]
    va: Tensor  # float32 [2] (valence, arousal); 0 where masked
    va_mask: Tensor  # bool [2]
    expr: Tensor  # int64 [], -1 = no label
    au: Tensor  # float32 [A]; 0 where masked
    au_mask: Tensor  # bool [A] (eq. 7's delta)
    landmarks: Tensor  # float32 [68, 2] in [0, 1] of the crop; 0 where absent
    landmarks_mask: Tensor  # bool []
    compound: Tensor  # int64 [], -1 = none
    corpus: str
    video: str
    frame: Tensor  # int64 []


class FrameBatch(TypedDict, total=False):
    """A batch of frames (``B`` samples). Only ``image`` is required; labels absent = not annotated."""

    image: Tensor  # uint8 [B, 3, H, W]
    va: Tensor  # float32 [B, 2]
    va_mask: Tensor  # bool [B, 2]
    expr: Tensor  # int64 [B], -1 = no label
    au: Tensor  # float32 [B, A]
    au_mask: Tensor  # bool [B, A]
    landmarks: Tensor  # float32 [B, L, 2] in [0, 1]
    landmarks_mask: Tensor  # bool [B]
    compound: Tensor  # int64 [B], -1 = none
    corpus: list[str]
    video: list[str]
    path: list[str]
    frame: Tensor  # int64 [B]


class SequenceBatch(TypedDict, total=False):
    """A batch of ``B`` sequences of ``T`` frames: every :class:`FrameBatch` key with a time axis
    after the batch axis, plus the frame masks and the A/V models' spectrogram images."""

    image: Tensor  # uint8 [B, T, 3, H, W]
    frame_mask: Tensor  # bool [B, T], False = padding
    face_mask: Tensor  # bool [B, T], False = no usable face in that frame
    audio: Tensor  # float32 [B, T, 1, H', W'] in [-1, 1] (or uint8)
    va: Tensor  # float32 [B, T, 2]
    va_mask: Tensor  # bool [B, T, 2]
    expr: Tensor  # int64 [B, T]
    au: Tensor  # float32 [B, T, A]
    au_mask: Tensor  # bool [B, T, A]
    landmarks: Tensor  # float32 [B, T, L, 2]
    landmarks_mask: Tensor  # bool [B, T]
    corpus: list[str]
    video: list[str]


#: One batch as a step sees it (the collates build plain dicts with these keys).
Batch = FrameBatch | SequenceBatch
#: A step of the multi-domain loader: one batch per domain (``{"va": ..., "au": ..., "expr": ...}``).
DomainBatch = dict[str, Batch]


def unannotated(key: str, shape: tuple[int, ...], like: Tensor) -> dict[str, Tensor]:
    """The label ``key`` (and its mask) for ``shape`` samples, all "not annotated"; dtype and device
    of ``like`` (the same label of another batch).

    >>> out = unannotated("va", (2, 2), torch.zeros(1))
    >>> out["va"].tolist(), out["va_mask"].tolist()
    ([[0.0, 0.0], [0.0, 0.0]], [[False, False], [False, False]])
    >>> unannotated("expr", (3,), torch.zeros(1, dtype=torch.long))["expr"].tolist()
    [-1, -1, -1]
    """
    label = LABELS[key]
    out = {key: torch.full(shape, label.fill, dtype=like.dtype, device=like.device)}
    if label.mask_key is not None:
        out[label.mask_key] = torch.zeros(shape, dtype=torch.bool, device=like.device)
    return out



@dataclass(frozen=True)
class FrameRows:
    """A batch's valid frames as rows: the network's ``outputs`` (``va`` / ``expr`` / ``au``, each
    ``[M, C]``) and the ``batch`` whose targets (:data:`TARGET_KEYS`) are ``[M, ...]`` too; its other
    keys (images, ids, ``frame_mask``) are the batch's own. ``M`` is the number of valid frames of a
    sequence batch, or ``B`` for a frame batch. Built once per step by :meth:`of`.
    """

    outputs: dict[str, Tensor]
    batch: dict

    @property
    def rows(self) -> int:
        """``M``, the number of rows."""
        return int(next(iter(self.outputs.values())).shape[0]) if self.outputs else 0

    def detach(self) -> FrameRows:
        """The same rows with the outputs detached from the graph (for metrics and callbacks)."""
        return FrameRows({k: v.detach() for k, v in self.outputs.items()}, self.batch)

    @classmethod
    def of(cls, outputs: Mapping[str, Tensor], batch: Batch) -> FrameRows:
        """Sequence outputs / targets ``[B, T, ...]`` as rows ``[M, ...]`` of the valid frames.

        Valid frames are ``batch["frame_mask"]`` (bool ``[B, T]``, False = padding); without it,
        ``[B, T, C]`` outputs keep every frame. Frame batches (``[B, C]`` outputs) pass through.
        The rows are picked with one index (one host sync for a masked sequence batch, whatever the
        number of keys), in batch-major order (``v[frame_mask]``).

        >>> out = {"va": torch.arange(12.0).view(2, 3, 2)}
        >>> rows = FrameRows.of(out, {"frame_mask": torch.tensor([[1, 1, 0], [1, 0, 0]]).bool(),
        ...                           "expr": torch.tensor([[0, 1, -1], [2, -1, -1]])})
        >>> rows.outputs["va"].tolist(), rows.batch["expr"].tolist(), rows.rows
        ([[0.0, 1.0], [2.0, 3.0], [6.0, 7.0]], [0, 1, 2], 3)
        """
        present = {k: outputs[k] for k in TASKS if outputs.get(k) is not None}
        frame_mask = batch.get("frame_mask")
        if frame_mask is None:
            seq = [v for v in present.values() if v.ndim == 3]
            if not seq:
                return cls(present, dict(batch))
            shape, index = tuple(seq[0].shape[:2]), None
        else:
            shape, index = tuple(frame_mask.shape), frame_mask.bool().reshape(-1).nonzero().squeeze(1)

        def take(v: Tensor) -> Tensor:
            flat = v.reshape(-1, *v.shape[2:])
            return flat if index is None else flat.index_select(0, index.to(flat.device))

        out = {}
        for k, v in present.items():
            if v.ndim != 3 or tuple(v.shape[:2]) != shape:
                raise ValueError(
                    f"sequence batch: output {k!r} has shape {tuple(v.shape)}, expected [B, T, C] with "
                    f"[B, T] = {shape} (frame_mask)"
                )
            out[k] = take(v)
        flat = dict(batch)
        for k in TARGET_KEYS:
            v = batch.get(k)
            if v is None:
                continue
            if tuple(v.shape[:2]) != shape:
                raise ValueError(
                    f"sequence batch: target {k!r} has shape {tuple(v.shape)}, expected [B, T, ...] = {shape}"
                )
            flat[k] = take(v)
        return cls(out, flat)
