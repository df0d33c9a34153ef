"""The relatedness tables the coupling losses read (paper Table V, Sec. VI-B).

The relatedness enters as two ``[7, A]`` tables over the model's AU set, rows in the canonical
EXPR order (:func:`relatedness_tables`): ``related`` (1 where the AU is prototypical or
observational for the emotion, eq. 8's ``p(y_au | y_emo)``) and ``weights`` (1 for prototypical
AUs, the annotators' agreement ``w`` for observational ones; every AU of the ``affwild2`` table
carries its ``w``). AUs outside the AU set (AU11 for sadness in ``du2014``) are dropped with a
warning by :meth:`affect.relatedness.Relatedness.p_au_given_emotion`. :class:`CouplingTables`
derives what the losses read from them once.

>>> related, weights = relatedness_tables("du2014", au_set=(1, 2, 6, 12, 25))
>>> related[4].tolist(), [round(w, 2) for w in weights[4].tolist()]   # Happiness: AU12, AU25; AU6 w=0.51
([0.0, 0.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.51, 1.0, 1.0])
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from affect.labels import AU_SET, NUM_EXPR, expr_index
from affect.relatedness import Relatedness, load_relatedness

__all__ = ["NEUTRAL", "PRESENT_THRESHOLD", "CouplingTables", "relatedness_tables"]

NEUTRAL = expr_index("Neutral")
PRESENT_THRESHOLD = 0.5  # an annotated AU target >= 0.5 counts as "present" (targets are 0/1)


def relatedness_tables(
    relatedness: Relatedness | str, au_set: Sequence[int] = AU_SET
) -> tuple[Tensor, Tensor]:
    """``(related, weights)``: two ``[7, len(au_set)]`` float tables from a relatedness (Table V).

    ``related`` is 0/1 (eq. 8 as printed); ``weights`` is 1 for prototypical AUs and ``w`` for
    observational ones (footnote 3's re-weighted variant). ``relatedness`` is a
    :class:`~affect.relatedness.Relatedness` or anything :func:`~affect.relatedness.load_relatedness`
    accepts (``"du2014"``, ``"affwild2"``, a JSON path). Dropped AUs warn once.
    """
    rel = load_relatedness(relatedness) if isinstance(relatedness, str) else relatedness
    related = rel.p_au_given_emotion(au_set, weighted=False)
    with warnings.catch_warnings():  # the same dropped AUs were just reported
        warnings.simplefilter("ignore")
        weights = rel.p_au_given_emotion(au_set, weighted=True)
    return related, weights


class CouplingTables(nn.Module):
    """What the coupling losses read from the ``[7, A]`` relatedness tables, derived once (not per step).

    Buffers (non-persistent: derived from the config; ``.to(device)`` moves them):

    - ``fill_weights``: the weight of each related AU of each emotion (``w`` when ``reweight``, else 1;
      0 for an unrelated AU): co-annotation's EXPR -> AU weights and soft co-annotation's score weights;
    - ``related_bool`` and ``related_t`` (float ``[A, 7]``): which AUs each emotion requires (AU -> EXPR);
    - ``priority``: per emotion, ``need * 8 + (7 - index)`` (more required AUs first, then the lower
      EXPR index), -1 for an emotion with no related AU (it never qualifies);
    - ``neutral_fixed``: bool ``[7]``, True at Neutral when it has no related AU (its soft score is fixed).

    >>> related, weights = relatedness_tables("du2014", au_set=(6, 12, 25))
    >>> t = CouplingTables(related, weights)
    >>> t.priority.tolist(), t.neutral_fixed.tolist()[0]   # Happiness needs 3 AUs (3 * 8 + 7 - 4), Fear 1
    ([-1, -1, -1, 12, 27, 10, 9], True)
    """

    fill_weights: Tensor
    related_bool: Tensor
    related_t: Tensor
    priority: Tensor
    neutral_fixed: Tensor

    def __init__(self, related: Tensor, weights: Tensor, reweight: bool = True) -> None:
        super().__init__()
        if related.ndim != 2 or related.shape[0] != NUM_EXPR or weights.shape != related.shape:
            raise ValueError(
                f"coupling tables: expected related and weights [{NUM_EXPR}, A], got "
                f"{tuple(related.shape)} and {tuple(weights.shape)}"
            )
        rel = related > 0
        w = (weights if reweight else related).float()
        need = rel.sum(-1)
        order = torch.arange(NUM_EXPR, device=related.device)
        priority = torch.where(need > 0, need * (NUM_EXPR + 1) + (NUM_EXPR - order), -1)
        neutral_fixed = (order == NEUTRAL) & ~rel[NEUTRAL].any()
        for name, value in (("fill_weights", torch.where(rel, w, 0.0)), ("related_bool", rel),
                            ("related_t", rel.float().T.contiguous()), ("priority", priority),
                            ("neutral_fixed", neutral_fixed)):  # fmt: skip
            self.register_buffer(name, value, persistent=False)
