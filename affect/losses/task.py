"""Per-task losses of the multi-task objective (paper eq. 4-6 and eq. 7).

- :func:`ccc_loss` — ``L_VA = 1 - 0.5 (rho_v + rho_a)`` (eq. 2 / eq. 6), CCC over the batch;
- :func:`expr_ce_loss` — ``L_Emo`` / ``L_CCE`` (eq. 4 / eq. 7), cross entropy over EXPR-labelled samples;
- :func:`soft_cross_entropy` — cross entropy with soft targets (used by soft co-annotation, VI-B.3);
- :func:`au_bce_loss` — ``L_AU`` / ``L_BCE`` (eq. 5 / eq. 7), BCE over annotated AUs normalised per sample.

Every loss over an empty subset (no VA-, EXPR- or AU-annotated sample in the batch) is exactly 0
and still connected to the autograd graph (``0 * predictions.sum()``), so ``backward()`` works on a
batch that lacks a task and never produces NaN.

>>> import torch
>>> pred = torch.tensor([[0.1, 0.2], [0.3, 0.1], [0.5, 0.4]])
>>> round(float(ccc_loss(pred, pred.clone())), 6)   # perfect agreement
0.0
>>> float(expr_ce_loss(torch.zeros(2, 7), torch.tensor([-1, -1])))   # no labelled sample
0.0
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from affect.metrics.functional import ccc_from_sums, ccc_sums

__all__ = [
    "upcast",
    "zero_like_graph",
    "ccc_per_dim",
    "ccc_loss",
    "expr_ce_loss",
    "soft_cross_entropy",
    "au_bce_loss",
]


def zero_like_graph(*tensors: Tensor) -> Tensor:
    """A scalar 0 that is connected to the graph of ``tensors`` (so ``backward()`` works).

    Used for a loss term over an empty subset: its gradient is exactly 0, never NaN
    (as long as the predictions themselves are finite).
    """
    out = None
    for t in tensors:
        term = (t * 0).sum()  # NaN-free only for finite t; predictions are finite
        out = term if out is None else out + term
    if out is None:
        raise ValueError("zero_like_graph needs at least one tensor")
    return out


def upcast(x: Tensor) -> Tensor:
    """Half / bfloat16 (autocast) inputs are promoted to float32 for the loss arithmetic."""
    return x.float() if x.is_floating_point() and x.dtype in (torch.float16, torch.bfloat16) else x


def _check_same_shape(name: str, a: Tensor, b: Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name}: predictions have shape {tuple(a.shape)} but targets {tuple(b.shape)}")


def ccc_per_dim(
    pred: Tensor, target: Tensor, mask: Tensor | None = None, eps: float = 1e-8
) -> tuple[Tensor, Tensor]:
    """Differentiable masked CCC (paper eq. 1) per column of ``[N, D]`` inputs, and the counts.

    The metrics' CCC (:func:`affect.metrics.functional.ccc_from_sums`, float64 sums, population
    statistics over the entries whose ``mask`` is True) with ``eps`` in the denominator:
    ``rho = 2 s_xy / (s_x^2 + s_y^2 + (mu_x - mu_y)^2 + eps)``, so the value and its gradient stay
    finite (0 when both predictions and targets are constant, or with no entry; the edge cases are
    tabled in :mod:`affect.metrics.functional`). Masked entries may hold anything (NaN included):
    they never enter a sum. Returns ``(ccc [D], count [D])`` in the predictions' dtype (float32 for
    half precision); a column with fewer than 2 entries is to be ignored via ``count``.
    """
    _check_same_shape("ccc", pred, target)
    if pred.ndim != 2:
        raise ValueError(f"ccc: expected [N, D] inputs, got shape {tuple(pred.shape)}")
    if mask is None:
        mask = torch.ones_like(pred, dtype=torch.bool)
    else:
        _check_same_shape("ccc mask", pred, mask)
        mask = mask.bool()
    pred = upcast(pred)
    sums = ccc_sums(pred, target.to(pred.dtype), mask)
    return ccc_from_sums(*sums, eps=eps).to(pred.dtype), sums[0].to(pred.dtype)


def ccc_loss(pred: Tensor, target: Tensor, mask: Tensor | None = None, eps: float = 1e-8) -> Tensor:
    """``L_VA = 1 - 0.5 (rho_v + rho_a)`` over the batch (paper eq. 2 / eq. 6, eq. 7's ``L_VA``).

    Args:
        pred: ``[N, 2]`` valence/arousal predictions (any ``[N, D]`` works; the loss is
            ``1 - mean_d rho_d``).
        target: ``[N, 2]`` annotations (masked entries may be NaN or sentinels).
        mask: ``[N, 2]`` bool, True where annotated; ``None`` = all annotated.
        eps: added to the CCC denominator so constant predictions (and targets) stay finite.

    Choices where the paper is silent: CCC uses population statistics (the organisers'
    evaluation script). A dimension with fewer than 2 annotated entries has no CCC and is
    *skipped*: the loss is ``1 - mean`` over the usable dimensions (so a batch with valence only
    gives ``1 - rho_v``). With no usable dimension the loss is 0 (connected to the graph).

    >>> import torch
    >>> pred = torch.tensor([[0.0, 1.0], [1.0, 0.0], [2.0, 1.0]])
    >>> target = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])   # arousal target constant
    >>> round(float(ccc_loss(pred, target)), 4)   # rho_v = 1, rho_a = 0
    0.5
    """
    if mask is None:
        mask = torch.ones_like(pred, dtype=torch.bool)
    _check_same_shape("ccc mask", pred, mask)
    usable = mask.bool().sum(0) >= 2  # [D]
    # unusable dimensions enter with no entry (CCC 0, gradient 0) and weight 0: the mean over the usable
    # ones is taken by weights, never by selecting them (no host sync); 0 when there is none
    ccc, _ = ccc_per_dim(pred, target, mask.bool() & usable, eps=eps)
    u = usable.to(ccc.dtype)
    k = u.sum()
    return (k > 0) * (1.0 - (ccc * u).sum() / k.clamp_min(1.0))


def soft_cross_entropy(logits: Tensor, soft_target: Tensor, valid: Tensor | None = None) -> Tensor:
    """Cross entropy with soft targets ``mean_n [-sum_c s_nc log softmax(logits)_nc]``.

    ``valid`` ([N] bool) selects the samples that carry a soft target; 0 (with grad) if none.
    Soft targets are treated as constants (detached); a row that is not ``valid`` may hold anything.
    The selection is a weighted mean, never an index: no host sync, fixed shapes.
    """
    _check_same_shape("soft_cross_entropy", logits, soft_target)
    logp = F.log_softmax(upcast(logits), dim=-1)
    if valid is None:
        return -(soft_target.detach().to(logp.dtype) * logp).sum(-1).mean()
    target = torch.where(valid[:, None], soft_target.detach().to(logp.dtype), 0.0)
    w = valid.to(logp.dtype)
    return -(target * logp).sum(-1).sum() / w.sum().clamp_min(1.0)


def expr_ce_loss(
    logits: Tensor,
    target: Tensor,
    soft_target: Tensor | None = None,
    label_smoothing: float = 0.0,
    validate_args: bool = True,
) -> Tensor:
    """``L_Emo = E_{x, y_emo}[-log p(y_emo | x)]`` (paper eq. 4 / eq. 7), over labelled samples.

    Args:
        logits: ``[N, C]`` expression logits (softmax inside, via ``log_softmax``).
        target: ``[N]`` long class indices; ``< 0`` (``EXPR_IGNORE`` = -1) means no label.
        soft_target: optional ``[N, C]`` distributions for samples *without* a hard label
            (an all-zero row = none). A hard label wins where both exist. Each counted sample
            contributes its (hard or soft) cross entropy once; the loss is their mean.
        label_smoothing: ``eps`` in [0, 1): hard labels become ``(1 - eps) one_hot + eps / C``
            (Szegedy et al. 2016; what ``F.cross_entropy(label_smoothing=eps)`` computes). Not in
            the paper (0 = its eq. 4); an option of the FER2013 recipe. Soft targets are not smoothed.
        validate_args: check that no class id is ``>= C`` (a host sync on a GPU; ``MultiTaskLoss``
            skips it: the datasets map every label into the 7 classes or -1).

    Returns 0 (connected to the graph) when no sample has a label. The mean is taken with masks,
    not boolean indexing, so the loss costs no device-to-host copy per call.

    >>> import torch
    >>> logits = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    >>> round(float(expr_ce_loss(logits, torch.tensor([0, -1]))), 4)   # -log(e^2 / (e^2 + 1))
    0.1269
    >>> round(float(expr_ce_loss(logits, torch.tensor([0, -1]), label_smoothing=0.2)), 4)  # 0.9 * 0.1269 + 0.1 * 2.1269
    0.3269
    """
    if logits.ndim != 2 or target.shape != logits.shape[:1]:
        raise ValueError(
            f"expr_ce_loss: expected logits [N, C] and target [N], got {tuple(logits.shape)} and {tuple(target.shape)}"
        )
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"expr_ce_loss: label_smoothing must be in [0, 1), got {label_smoothing}")
    target = target.long()
    if validate_args and bool((target >= logits.shape[1]).any()):
        raise ValueError(f"expr_ce_loss: target holds class ids >= {logits.shape[1]}: {target.max().item()}")
    hard = target >= 0
    if soft_target is None:
        per_sample = F.cross_entropy(
            upcast(logits), target.clamp(min=0), reduction="none", label_smoothing=label_smoothing
        )
        weight = hard.to(per_sample.dtype)
        return (per_sample * weight).sum() / weight.sum().clamp(min=1.0)
    _check_same_shape("expr_ce_loss soft_target", logits, soft_target)
    soft = (~hard) & (soft_target.sum(-1) > 0)
    num_classes = logits.shape[1]
    one_hot = F.one_hot(target.clamp(min=0), num_classes).to(logits.dtype)
    one_hot = one_hot * (1.0 - label_smoothing) + label_smoothing / num_classes
    dist = torch.where(hard[:, None], one_hot, soft_target.detach().to(logits.dtype))
    return soft_cross_entropy(logits, dist, hard | soft)


def au_bce_loss(logits: Tensor, target: Tensor, weight: Tensor, validate_args: bool = True) -> Tensor:
    """``L_AU`` (paper eq. 5 / eq. 7): per-sample weighted BCE normalised by the mask count.

    For sample ``n``: ``sum_i delta_ni * BCE(logit_ni, y_ni) / sum_k [delta_nk > 0]``, averaged
    over the samples with at least one annotated AU (0, connected to the graph, if none).

    Args:
        logits: ``[N, A]`` AU logits (BCE-with-logits, numerically stable).
        target: ``[N, A]`` 0/1 (or soft in [0, 1]) targets; unannotated entries may be anything.
        weight: ``[N, A]`` the paper's ``delta`` (a bool / 0-1 mask) or non-negative real weights
            (co-annotation re-weighting of observational AUs, VI-B.1).
        validate_args: check that no weight is negative (a host sync on a GPU; ``MultiTaskLoss``
            skips it: its weights are masks or relatedness weights, non-negative by construction).

    Choice: the normaliser is the *count* of annotated AUs (``weight > 0``), not the sum of the
    weights. For a 0/1 mask the two agree (eq. 7 exactly); with real weights a re-weighted
    observational AU therefore contributes ``w`` times as much as a fully annotated one, which is
    what "we re-weight the contributions of the observational AUs" asks for.

    >>> import torch
    >>> logits = torch.zeros(1, 3)
    >>> target = torch.tensor([[1.0, 0.0, 1.0]])
    >>> w = torch.tensor([[1.0, 1.0, 0.0]])
    >>> round(float(au_bce_loss(logits, target, w)), 4)   # (log 2 + log 2) / 2
    0.6931
    """
    _check_same_shape("au_bce_loss", logits, target)
    _check_same_shape("au_bce_loss weight", logits, weight)
    if logits.ndim != 2:
        raise ValueError(f"au_bce_loss: expected [N, A] inputs, got shape {tuple(logits.shape)}")
    logits = upcast(logits)
    weight = weight.to(logits.dtype)
    if validate_args and bool((weight < 0).any()):
        raise ValueError("au_bce_loss: weights must be non-negative")
    annotated = weight > 0
    count = annotated.sum(-1).to(logits.dtype)
    y = torch.where(annotated, target.to(logits.dtype), 0.0)
    bce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    # a sample without annotated AU has weight 0 everywhere: 0 / 1 = 0, and is not counted (no host sync)
    per_sample = (weight * bce).sum(-1) / count.clamp_min(1.0)
    return per_sample.sum() / (count > 0).sum().clamp_min(1)
