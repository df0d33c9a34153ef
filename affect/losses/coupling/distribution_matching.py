"""Distribution matching ``L_DM`` (paper VI-B.2, eq. 8-9).

As printed, or footnote 4's per-AU Bernoulli KL over the related AUs: :data:`DM_FORMS`.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from affect.losses.task import upcast, zero_like_graph

__all__ = [
    "DMAUs",
    "DMForm",
    "DMGrad",
    "DMReduction",
    "DM_FORMS",
    "au_mixture",
    "distribution_matching_loss",
    "distribution_matching_with",
    "dm_au_weights",
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


def au_mixture(p_emo: Tensor, p_au_given_emo: Tensor) -> Tensor:
    """Eq. 8: ``q(y_au^i | x) = sum_e p(e | x) p(y_au^i | e)``, ``[N, 7] @ [7, A] -> [N, A]``.

    >>> import torch
    >>> from affect.labels import EXPR_CLASSES
    >>> from affect.losses.coupling import relatedness_tables
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
    *,
    aus: DMAUs = "all",
    reduction: DMReduction = "sum",
    **form: object,
) -> Tensor:
    """Distribution matching ``L_DM`` (paper eq. 8-9) over every sample given (all of the batch).

    ``p(y_au^i | x) = sigmoid(au_logits)``, ``q`` from :func:`au_mixture` with ``p(e | x) =
    softmax(expr_logits)``, and ``L_DM = mean_x sum_i [-p_i log q_i]`` (eq. 9 as printed: the
    defaults). :data:`DM_FORMS` names the two settings :class:`~affect.losses.MultiTaskLoss` offers.

    Args (``dm_grad``, ``binary``, ``kl`` and ``eps`` are passed on to :func:`distribution_matching_with`,
    whose defaults they keep):
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
    return distribution_matching_with(expr_logits, au_logits, p_au_given_emo, au_weights, **form)


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
    if dm_grad not in ("both", "au", "expr"):
        raise ValueError(f"dm_grad must be 'both', 'au' or 'expr', got {dm_grad!r}")
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
