"""Coupling losses of FaceBehaviorNet (paper Sec. VI-B), driven by the relatedness of Table V.

- :func:`co_annotate` — VI-B.1, co-annotation EXPR -> AU and AU -> EXPR;
- :func:`au_mixture` / :func:`distribution_matching_loss` — VI-B.2, eq. 8 and eq. 9 (as printed, or
  the per-AU Bernoulli KL of footnote 4 over related AUs: :data:`DM_FORMS`);
- :func:`soft_co_annotation_targets` / :func:`soft_co_annotation_loss` — VI-B.3.

The relatedness enters as two ``[7, A]`` tables over the model's AU set, rows in the canonical
EXPR order (:func:`relatedness_tables`): ``related`` (1 where the AU is prototypical or
observational for the emotion, eq. 8's ``p(y_au | y_emo)``) and ``weights`` (1 for prototypical
AUs, the annotators' agreement ``w`` for observational ones; every AU of the ``affwild2`` table
carries its ``w``). AUs outside the AU set (AU11 for sadness in ``du2014``) are dropped with a
warning by :meth:`affect.relatedness.Relatedness.p_au_given_emotion`.

>>> import torch
>>> related, weights = relatedness_tables("du2014", au_set=(1, 2, 6, 12, 25))
>>> related[4].tolist(), [round(w, 2) for w in weights[4].tolist()]   # Happiness: AU12, AU25; AU6 w=0.51
([0.0, 0.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.51, 1.0, 1.0])
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from affect.labels import AU_SET, NUM_EXPR, expr_index
from affect.losses.task import soft_cross_entropy, upcast, zero_like_graph
from affect.relatedness import Relatedness, load_relatedness

__all__ = [
    "CouplingTables",
    "DMGrad",
    "DMForm",
    "DM_FORMS",
    "relatedness_tables",
    "co_annotate",
    "co_annotate_tables",
    "co_annotate_with",
    "au_mixture",
    "distribution_matching_loss",
    "distribution_matching_with",
    "dm_au_weights",
    "soft_co_annotation_targets",
    "soft_co_annotation_targets_tables",
    "soft_co_annotation_targets_with",
    "soft_co_annotation_loss",
]

DMGrad = Literal["both", "au", "expr"]
DMAUs = Literal["all", "related"]
DMReduction = Literal["sum", "mean"]
DMForm = Literal["matched", "printed"]
# The two distribution-matching settings of MultiTaskLoss(dm_form=...): keyword arguments of
# distribution_matching_loss. "printed" is eq. 9 as printed; "matched" (the default) is footnote
# 4's KL(p || q) per AU as a Bernoulli pair, over the AUs some emotion relates to, averaged over
# them (the reasons and the numbers are in MultiTaskLoss's docstring).
DM_FORMS: dict[str, dict] = {
    "matched": {"binary": True, "kl": True, "aus": "related", "reduction": "mean"},
    "printed": {"binary": False, "kl": False, "aus": "all", "reduction": "sum"},
}
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


# --------------------------------------------------------------------------- co-annotation (VI-B.1)


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


# --------------------------------------------------------------------- distribution matching (VI-B.2)


def au_mixture(p_emo: Tensor, p_au_given_emo: Tensor) -> Tensor:
    """Eq. 8: ``q(y_au^i | x) = sum_e p(e | x) p(y_au^i | e)``, ``[N, 7] @ [7, A] -> [N, A]``.

    >>> import torch
    >>> from affect.labels import EXPR_CLASSES
    >>> table, _ = relatedness_tables("du2014", au_set=(2, 6, 12, 25))
    >>> p = torch.zeros(1, 7); p[0, EXPR_CLASSES.index("Happiness")] = 1.0
    >>> au_mixture(p, table).tolist()   # AU12, AU25, AU6 -> 1; AU2 -> 0
    [[0.0, 1.0, 1.0, 1.0]]
    """
    if p_emo.shape[-1] != p_au_given_emo.shape[0]:
        raise ValueError(
            f"au_mixture: {p_emo.shape[-1]} emotion probabilities vs a table of {p_au_given_emo.shape[0]} rows"
        )
    return p_emo @ p_au_given_emo.to(p_emo.device, p_emo.dtype)


def distribution_matching_loss(
    expr_logits: Tensor,
    au_logits: Tensor,
    p_au_given_emo: Tensor,
    dm_grad: DMGrad = "both",
    binary: bool = False,
    kl: bool = False,
    eps: float = 1e-6,
    aus: DMAUs = "all",
    reduction: DMReduction = "sum",
) -> Tensor:
    """Distribution matching ``L_DM`` (paper eq. 8-9) over every sample given (all of the batch).

    ``p(y_au^i | x) = sigmoid(au_logits)``, ``q`` from :func:`au_mixture` with ``p(e | x) =
    softmax(expr_logits)``, and ``L_DM = mean_x sum_i [-p_i log q_i]`` (eq. 9 as printed: the
    defaults). :data:`DM_FORMS` names the two settings :class:`~affect.losses.MultiTaskLoss` offers.

    Args:
        p_au_given_emo: ``[7, A]`` table with entries in [0, 1] (``related`` or ``weights`` of
            :func:`relatedness_tables`: eq. 8 as printed, or footnote 3's re-weighted variant).
        dm_grad: which side is trained (the paper does not say): ``"both"`` (default),
            ``"au"`` (q is a detached soft target for the AU head) or ``"expr"`` (p is a detached
            soft target, the distillation reading of "cross entropy with the soft targets").
        binary: add the complement ``(1 - p_i) log(1 - q_i)`` (each AU as a Bernoulli pair).
            Default False = eq. 9 as printed. Note that with the printed form the AU side's
            gradient ``-log q_i >= 0`` only pushes AU probabilities *down*; if the AU head is
            trained by this term (``dm_grad`` "both"/"au"), ``binary=True`` is the sounder choice.
        kl: subtract p's own (Bernoulli when ``binary``) entropy, giving footnote 4's
            ``KL(p || q)``; it changes only the AU side's gradient, which then pulls ``p`` to ``q``.
        eps: ``q`` is clamped to ``[eps, 1]`` (``[eps, 1 - eps]`` when ``binary``). A mixture of
            rows in [0, 1] is already ``<= 1`` since the emotion probabilities sum to 1; the upper
            clamp only absorbs rounding (and guards ``log(1 - q)``).
        aus: ``"all"`` (eq. 9's sum over the 17 AUs) or ``"related"``: only the AUs that the
            table relates to at least one emotion. For an unrelated AU (AU14 under ``du2014``;
            14, 20, 23, 24 under ``affwild2``) ``q`` is 0 whatever the emotions, so its term
            carries no information about them and only pushes the AU towards 0 (as printed, with
            a weight ``-log eps`` = 13.8).
        reduction: ``"sum"`` over the matched AUs (as printed) or ``"mean"`` (one AU's
            Bernoulli term on the scale of ``L_AU``, which eq. 7 averages over annotated AUs).
    """
    if dm_grad not in ("both", "au", "expr"):
        raise ValueError(f"dm_grad must be 'both', 'au' or 'expr', got {dm_grad!r}")
    if aus not in ("all", "related"):
        raise ValueError(f"distribution matching: aus must be 'all' or 'related', got {aus!r}")
    if reduction not in ("sum", "mean"):
        raise ValueError(f"distribution matching: reduction must be 'sum' or 'mean', got {reduction!r}")
    if expr_logits.ndim != 2 or au_logits.ndim != 2 or expr_logits.shape[0] != au_logits.shape[0]:
        raise ValueError(
            f"distribution matching: expected expr [N, 7] and au [N, A], got {tuple(expr_logits.shape)}, {tuple(au_logits.shape)}"
        )
    if p_au_given_emo.shape != (expr_logits.shape[1], au_logits.shape[1]):
        raise ValueError(
            f"distribution matching: table is {tuple(p_au_given_emo.shape)}, outputs need "
            f"[{expr_logits.shape[1]}, {au_logits.shape[1]}]; build it over the model's AU set"
        )
    au_weights = dm_au_weights(p_au_given_emo, aus, reduction)
    return distribution_matching_with(expr_logits, au_logits, p_au_given_emo, au_weights, dm_grad, binary, kl, eps)


def dm_au_weights(p_au_given_emo: Tensor, aus: DMAUs = "all", reduction: DMReduction = "sum") -> Tensor:
    """``[A]`` weights that turn ``L_DM``'s per-AU terms into its per-sample value (one dot product).

    1 per AU (``aus="all"``) or 1 per AU some emotion relates to (``"related"``), divided by their number
    for ``reduction="mean"``; all 0 when ``"related"`` finds no AU (``L_DM`` is then 0). Weights, not a
    selection of columns: fixed shapes, no host sync.

    >>> dm_au_weights(torch.tensor([[0.0, 1.0, 1.0], [0.0, 0.0, 1.0]]), "related", "mean").tolist()
    [0.0, 0.5, 0.5]
    """
    if aus == "related":
        weights = (p_au_given_emo > 0).any(0).float()
    else:
        weights = torch.ones(p_au_given_emo.shape[1], device=p_au_given_emo.device)
    return weights / weights.sum().clamp_min(1.0) if reduction == "mean" else weights


def distribution_matching_with(
    expr_logits: Tensor,
    au_logits: Tensor,
    p_au_given_emo: Tensor,
    au_weights: Tensor,
    dm_grad: DMGrad = "both",
    binary: bool = False,
    kl: bool = False,
    eps: float = 1e-6,
) -> Tensor:
    """:func:`distribution_matching_loss` with the per-AU weights of :func:`dm_au_weights` given (derived
    once): ``mean_x sum_i au_weights_i term_i``, where with ``kl`` the term is written as
    ``p (log p - log q) [+ (1 - p) (log(1 - p) - log(1 - q))]`` (fewer ops than the cross entropy minus
    the entropy, the same value up to rounding)."""
    if expr_logits.shape[0] == 0:  # no sample (a shape, not a value: no host sync)
        return zero_like_graph(expr_logits, au_logits)
    p_emo = F.softmax(upcast(expr_logits), dim=-1)
    p_au = torch.sigmoid(upcast(au_logits))
    if dm_grad == "au":
        p_emo = p_emo.detach()
    elif dm_grad == "expr":
        p_au = p_au.detach()
    q = au_mixture(p_emo, p_au_given_emo).clamp(eps, 1.0 - eps if binary else 1.0)
    pc = p_au.clamp(eps, 1.0 - eps) if kl else None
    term = p_au * (torch.log(pc) - torch.log(q) if kl else -torch.log(q))
    if binary:
        term = term + (1.0 - p_au) * (torch.log1p(-pc) - torch.log1p(-q) if kl else -torch.log1p(-q))
    return (term @ au_weights.to(term.dtype)).mean()


# ------------------------------------------------------------------------ soft co-annotation (VI-B.3)


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
