"""Co-annotation (paper VI-B.1): EXPR -> AU and AU -> EXPR target rewriting from the relatedness."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from affect.labels import AU_SET, NUM_EXPR
from affect.losses.coupling.tables import PRESENT_THRESHOLD, CouplingTables, relatedness_tables
from affect.relatedness import Relatedness

__all__ = ["co_annotate", "co_annotate_tables", "co_annotate_with"]


def co_annotate_tables(
    expr: Tensor, au: Tensor, au_weight: Tensor, related: Tensor, weights: Tensor, reweight: bool = True
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`co_annotate` on precomputed ``[7, A]`` tables (see :func:`relatedness_tables`)."""
    if expr.ndim != 1 or au.ndim != 2 or au.shape != au_weight.shape or au.shape[0] != expr.shape[0]:
        raise ValueError(
            "co_annotate: expected expr [N], au [N, A], au_weight [N, A]; got "
            f"{tuple(expr.shape)}, {tuple(au.shape)}, {tuple(au_weight.shape)}"
        )
    if related.shape != (NUM_EXPR, au.shape[1]):
        raise ValueError(
            f"co_annotate: relatedness table is {tuple(related.shape)} but the batch has {au.shape[1]} AUs "
            f"(expected [{NUM_EXPR}, {au.shape[1]}]); build it over the model's AU set"
        )
    return co_annotate_with(expr, au, au_weight, CouplingTables(related, weights, reweight).to(au.device))


def co_annotate_with(
    expr: Tensor, au: Tensor, au_weight: Tensor, tables: CouplingTables
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`co_annotate` with the tables derived once (:class:`CouplingTables`): fixed shapes, no host sync."""
    expr = expr.long()
    dtype = au.dtype if au.is_floating_point() else torch.float32
    au_weight, au = au_weight.to(dtype), au.to(dtype)
    annotated = au_weight > 0
    has_au = annotated.any(-1)
    has_expr = expr >= 0

    # EXPR -> AU: emotion label and no AU annotation at all -> its related AUs become positives.
    fill = (has_expr & ~has_au)[:, None]
    rows = expr.clamp_min(0)
    au_new = torch.where(fill & tables.related_bool[rows], 1.0, au)
    weight_new = torch.where(fill, tables.fill_weights[rows].to(dtype), au_weight)

    # AU -> EXPR: all related AUs (within the AU set) annotated and present; largest requirement wins.
    absent = (~(annotated & (au >= PRESENT_THRESHOLD))).to(dtype)
    missing = absent @ tables.related_t.to(dtype)  # [N, 7] required AUs not present
    best_key, best = torch.where(missing == 0, tables.priority, -1).max(-1)
    assign = (~has_expr) & has_au & (best_key >= 0)
    expr_new = torch.where(assign, best, expr)
    return expr_new, au_new, weight_new


def co_annotate(
    expr: Tensor,
    au: Tensor,
    au_weight: Tensor,
    relatedness: Relatedness | str,
    au_set: Sequence[int] = AU_SET,
    reweight: bool = True,
) -> tuple[Tensor, Tensor, Tensor]:
    """Co-annotation (paper VI-B.1): returns ``(expr_new [N], au_new [N, A], au_weight_new [N, A])``.

    - **EXPR -> AU.** A sample with an emotion label and *no* annotated AU (all ``au_weight`` 0)
      gets its emotion's prototypical and observational AUs (within ``au_set``) as positive
      targets, with weight 1 for prototypical AUs and ``w`` for observational ones when
      ``reweight`` (else 1). All other AUs stay unannotated (weight 0): footnote 2, "y_au only
      contains prototypical/observational AUs". Neutral has no related AUs, so a Neutral sample
      gains nothing. Real AU annotations are never overwritten.
    - **AU -> EXPR.** A sample with annotated AUs and no emotion label gets emotion ``e`` when
      *every* related AU of ``e`` within ``au_set`` is annotated and present (target >= 0.5).
      When several emotions qualify, the one with the most related AUs wins; ties go to the
      lower canonical EXPR index (Neutral, Anger, Disgust, Fear, Happiness, Sadness, Surprise).
      An emotion with no related AU in ``au_set`` (Neutral) never qualifies.

    The two directions read the input labels only, so they never chain. ``au_weight`` may be a
    bool mask; the returned weights are float. Targets are labels: no gradient flows here.

    >>> import torch
    >>> expr = torch.tensor([4, -1])                      # Happiness; unlabelled
    >>> au = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    >>> mask = torch.tensor([[False, False, False], [True, True, True]])
    >>> e, a, w = co_annotate(expr, au, mask, "du2014", au_set=(6, 12, 25))
    >>> e.tolist(), a[0].tolist(), [round(x, 2) for x in w[0].tolist()]
    ([4, 4], [1.0, 1.0, 1.0], [0.51, 1.0, 1.0])
    """
    related, weights = relatedness_tables(relatedness, au_set)
    return co_annotate_tables(expr, au, au_weight, related, weights, reweight=reweight)
