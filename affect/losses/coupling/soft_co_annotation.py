"""Soft co-annotation (paper VI-B.3): soft emotion labels scored from AU annotations, and ``L_soft``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from affect.labels import AU_SET, NUM_EXPR
from affect.losses.coupling.tables import CouplingTables, relatedness_tables
from affect.losses.task import soft_cross_entropy
from affect.relatedness import Relatedness

__all__ = [
    "soft_co_annotation_loss",
    "soft_co_annotation_targets",
    "soft_co_annotation_targets_tables",
    "soft_co_annotation_targets_with",
]


def soft_co_annotation_targets_tables(
    au: Tensor,
    au_weight: Tensor,
    related: Tensor,
    weights: Tensor,
    reweight: bool = True,
    neutral_score: float | None = 0.0,
    temperature: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """:func:`soft_co_annotation_targets` on precomputed ``[7, A]`` tables."""
    if au.ndim != 2 or au.shape != au_weight.shape:
        raise ValueError(
            f"soft co-annotation: expected au and au_weight [N, A], got {tuple(au.shape)}, {tuple(au_weight.shape)}"
        )
    if related.shape != (NUM_EXPR, au.shape[1]):
        raise ValueError(
            f"soft co-annotation: relatedness table is {tuple(related.shape)} but the batch has {au.shape[1]} AUs"
        )
    if temperature <= 0:
        raise ValueError(f"soft co-annotation: temperature must be > 0, got {temperature}")
    tables = CouplingTables(related, weights, reweight).to(au.device)
    return soft_co_annotation_targets_with(au, au_weight, tables, neutral_score, temperature)


def soft_co_annotation_targets_with(
    au: Tensor,
    au_weight: Tensor,
    tables: CouplingTables,
    neutral_score: float | None = 0.0,
    temperature: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """:func:`soft_co_annotation_targets` with the tables derived once: fixed shapes, no host sync."""
    dtype = au.dtype if au.is_floating_point() else torch.float32
    annotated = au_weight > 0
    w_t = tables.fill_weights.to(dtype).T
    y = torch.where(annotated, au.to(dtype), 0.0)
    num = y @ w_t  # [N, 7]
    den = annotated.to(dtype) @ w_t
    scorable = den > 0
    score = torch.where(scorable, num / den.clamp_min(torch.finfo(dtype).tiny), 0.0)
    # Neutral without a related AU: a fixed score, or excluded (-inf)
    score = torch.where(tables.neutral_fixed, float("-inf") if neutral_score is None else float(neutral_score), score)
    soft = F.softmax(score if temperature == 1.0 else score / temperature, dim=-1)
    return soft, scorable.any(-1)


def soft_co_annotation_targets(
    au: Tensor,
    au_weight: Tensor,
    relatedness: Relatedness | str,
    au_set: Sequence[int] = AU_SET,
    reweight: bool = True,
    neutral_score: float | None = 0.0,
    temperature: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """Soft emotion labels from AU annotations (paper VI-B.3): ``(soft [N, 7], valid [N])``.

    ``score_e = sum_{au in related(e)} w_au y_au / sum_{au in related(e)} w_au``, e.g. happiness
    ``(y_AU12 + y_AU25 + 0.51 y_AU6) / (1 + 1 + 0.51)`` (all ``w = 1`` without ``reweight``),
    then ``soft = softmax(score / temperature)`` over the 7 emotions.

    Choices where the paper is silent:

    - Only *annotated* AUs enter a score: numerator and denominator are renormalised over the
      related AUs whose ``au_weight > 0`` (``w`` from the table, not the annotation weight).
      An emotion none of whose related AUs is annotated scores 0 (no evidence).
    - ``valid`` is False for a sample none of whose annotated AUs relates to any emotion
      (no annotated AU at all, or only unrelated ones): it gets no soft label.
    - Neutral has no related AUs: ``neutral_score`` (default 0.0, i.e. scored like an emotion
      none of whose AUs is present) or ``None`` to exclude it (probability 0). Applied only when
      the table gives Neutral no related AU within ``au_set``.
    - ``temperature`` (default 1, the paper's plain softmax) divides the scores.

    >>> import torch
    >>> from affect.labels import au_index
    >>> au = torch.zeros(1, 17); au[0, au_index(12)] = au[0, au_index(25)] = 1.0   # all 17 annotated
    >>> soft, valid = soft_co_annotation_targets(au, torch.ones(1, 17), "du2014", neutral_score=None)
    >>> [round(v, 3) for v in soft[0].tolist()]   # scores: Happiness 2/2.51, Fear 1/5.53, Surprise 1/4.66
    [0.0, 0.131, 0.131, 0.157, 0.29, 0.131, 0.162]
    """
    related, weights = relatedness_tables(relatedness, au_set)
    return soft_co_annotation_targets_tables(
        au,
        au_weight,
        related,
        weights,
        reweight=reweight,
        neutral_score=neutral_score,
        temperature=temperature,
    )


def soft_co_annotation_loss(expr_logits: Tensor, soft_target: Tensor, valid: Tensor) -> Tensor:
    """``L_soft``: cross entropy of ``p(y_emo | x)`` with the soft labels (VI-B.3, "similarly to eq. 9").

    Mean over the ``valid`` samples; 0 (connected to the graph) when there is none.
    """
    return soft_cross_entropy(expr_logits, soft_target, valid)
