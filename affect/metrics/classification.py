"""Functional EXPR and AU metrics and the ``_x_format`` / ``_x_update`` / ``_x_compute`` helpers the
``Metric`` classes share (macro F1, accuracy, UAR, Diag, E_total; per-AU F1, accuracy, AFA; the design
notes, "Metrics"). :mod:`affect.metrics.functional` re-exports them beside the VA metrics.

>>> import torch
>>> expr_metrics(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2]), num_classes=3)["acc"]
tensor(0.7500)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from affect.labels import EXPR_IGNORE
from affect.metrics.abaw import E_TOTAL_AU_WEIGHTS, E_TOTAL_EXPR_WEIGHTS
from affect.metrics.checks import _check_finite


# --------------------------------------------------------------------------------------------------
# EXPR: confusion matrix -> macro F1, accuracy, UAR, Diag, E_total
# --------------------------------------------------------------------------------------------------
def _expr_format(
    preds: Tensor, target: Tensor, num_classes: int, ignore_index: int = EXPR_IGNORE, validate: bool = True
) -> tuple[Tensor, Tensor]:
    """Predicted and true class ids ``[M]`` of the labelled samples (``target != ignore_index``).

    ``preds`` is either scores ``[..., C]`` (logits or probabilities; argmax is taken) with ``target``
    ``[...]``, or integer class ids of the shape of ``target``.
    """
    if target.is_floating_point() or target.dtype == torch.bool:
        raise ValueError(f"EXPR target must be an integer tensor of class ids, found {target.dtype}")
    if preds.is_floating_point():
        if preds.shape[:-1] != target.shape or preds.ndim == 0 or preds.shape[-1] != num_classes:
            raise ValueError(
                f"EXPR scores must have shape [..., {num_classes}] matching target {tuple(target.shape)} "
                f"(or pass integer class ids of the target's shape), found {tuple(preds.shape)}"
            )
        pred_ids = preds.argmax(-1)
    elif preds.dtype == torch.bool:
        raise ValueError("EXPR preds must be float scores [..., C] or integer class ids, found bool")
    else:
        if preds.shape != target.shape:
            raise ValueError(
                f"EXPR integer class ids must have the target's shape {tuple(target.shape)}, "
                f"found {tuple(preds.shape)}"
            )
        pred_ids = preds
    pred_ids, target = pred_ids.reshape(-1), target.reshape(-1)
    if validate and target.numel():
        keep = target != ignore_index
        bad_target = keep & ((target < 0) | (target >= num_classes))
        if bool(bad_target.any()):
            raise ValueError(
                f"EXPR target ids must be in [0, {num_classes}) or {ignore_index} (ignored), "
                f"found {target[bad_target].unique().tolist()}"
            )
        bad_pred = keep & ((pred_ids < 0) | (pred_ids >= num_classes))
        if bool(bad_pred.any()):
            raise ValueError(
                f"EXPR predicted class ids must be in [0, {num_classes}), found {pred_ids[bad_pred].unique().tolist()}"
            )
    return pred_ids, target


def _expr_update(pred_ids: Tensor, target: Tensor, num_classes: int, ignore_index: int = EXPR_IGNORE) -> Tensor:
    """Confusion matrix ``[C, C]`` (long; rows = true class, columns = predicted class) of the samples
    whose ``target`` is not ``ignore_index``.

    Counted by comparison with the ``C * C`` cells (ignored samples fall in one extra cell), not by
    ``bincount`` of the selected samples: both a selection and ``bincount`` wait for a GPU.
    """
    cells = num_classes * num_classes
    idx = torch.where(target != ignore_index, target.long() * num_classes + pred_ids.long(), cells)
    counts = (idx[:, None] == torch.arange(cells, device=idx.device)).sum(0)
    return counts.reshape(num_classes, num_classes)


def _expr_compute(confmat: Tensor) -> dict[str, Tensor]:
    """``{"f1", "acc", "uar", "diag", "e_total", "confmat"}`` from a confusion matrix.

    - ``f1``: macro F1 over all C classes; a class with 2TP + FP + FN = 0 (absent from target and preds)
      scores 0 and still counts, as ``sklearn.metrics.f1_score(average="macro", labels=range(C),
      zero_division=0)`` does.
    - ``uar``: macro recall over all C classes, a class without samples scores 0 (sklearn's
      ``recall_score(..., labels=range(C), zero_division=0)``).
    - ``diag``: mean diagonal of the row-normalised confusion matrix over the rows that have samples
      (the RAF-DB "Diag." criterion); equal to ``uar`` when every class occurs in the target.
    - ``acc``: accuracy; ``e_total`` = 0.67 F1 + 0.33 Acc (ABAW 2020).
    - no labelled sample at all: every scalar is NaN (nothing was evaluated); ``confmat`` is zeros.
    """
    cm = confmat.double()
    tp = cm.diagonal()
    support = cm.sum(1)  # true samples per class
    predicted = cm.sum(0)
    total = cm.sum()
    f1_c = torch.where(support + predicted > 0, 2 * tp / (support + predicted).clamp_min(1), 0.0)
    recall = torch.where(support > 0, tp / support.clamp_min(1), 0.0)
    nan = torch.tensor(float("nan"), dtype=torch.float64, device=cm.device)
    if total > 0:
        f1, uar, acc = f1_c.mean(), recall.mean(), tp.sum() / total
        diag = recall[support > 0].mean()
    else:
        f1 = uar = acc = diag = nan
    w_f1, w_acc = E_TOTAL_EXPR_WEIGHTS
    return {
        "f1": f1.float(),
        "acc": acc.float(),
        "uar": uar.float(),
        "diag": diag.float(),
        "e_total": (w_f1 * f1 + w_acc * acc).float(),
        "confmat": confmat,
    }


def expr_metrics(
    preds: Tensor, target: Tensor, num_classes: int = 7, ignore_index: int = EXPR_IGNORE
) -> dict[str, Tensor]:
    """Functional ``ExprMetrics``.

    >>> import torch
    >>> out = expr_metrics(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, -1]), num_classes=3)
    >>> {k: round(v.item(), 4) for k, v in out.items() if k != "confmat"}
    {'f1': 0.5556, 'acc': 0.6667, 'uar': 0.6667, 'diag': 0.6667, 'e_total': 0.5922}
    """
    pred_ids, tgt = _expr_format(preds, target, num_classes, ignore_index)
    _check_finite(preds, (target != ignore_index).unsqueeze(-1), "EXPR")
    return _expr_compute(_expr_update(pred_ids, tgt, num_classes, ignore_index))


# --------------------------------------------------------------------------------------------------
# AU: per-AU TP/FP/FN/TN over annotated entries -> F1, accuracy, AFA, E_total
# --------------------------------------------------------------------------------------------------
def _au_threshold(threshold: float | Sequence[float] | Tensor, num_aus: int) -> Tensor:
    """The decision threshold(s) as a float32 ``[A]`` tensor, checked to lie in [0, 1]."""
    t = torch.as_tensor(threshold, dtype=torch.float32).detach().clone()
    if t.ndim == 0:
        t = t.expand(num_aus).clone()
    if t.shape != (num_aus,):
        raise ValueError(
            f"AU threshold must be a float or {num_aus} per-AU values, found shape {tuple(t.shape)}"
        )
    if bool(((t < 0) | (t > 1)).any()) or bool(t.isnan().any()):
        raise ValueError(f"AU thresholds must lie in [0, 1], found {t.tolist()}")
    return t


def _au_format(
    preds: Tensor, target: Tensor, mask: Tensor | None, num_aus: int, validate: bool = True
) -> tuple[Tensor, Tensor, Tensor]:
    """Flatten ``[..., A]`` inputs to ``[N, A]``; target becomes bool (masked entries False), mask bool."""
    if preds.shape != target.shape or preds.ndim == 0 or preds.shape[-1] != num_aus:
        raise ValueError(
            f"AU preds and target must both have shape [..., {num_aus}], found {tuple(preds.shape)} "
            f"and {tuple(target.shape)}"
        )
    if mask is None:
        mask = ~target.isnan() if target.is_floating_point() else torch.ones_like(target, dtype=torch.bool)
    if mask.shape != preds.shape:
        raise ValueError(
            f"AU mask must have the shape of preds {tuple(preds.shape)}, found {tuple(mask.shape)}"
        )
    if mask.dtype != torch.bool:
        raise ValueError(f"AU mask must be a bool tensor (True = annotated), found {mask.dtype}")
    if validate:
        annotated = target[mask]
        if bool(((annotated != 0) & (annotated != 1)).any()):
            raise ValueError(
                "AU target must be 0 or 1 wherever mask is True (unannotated entries belong in the mask), "
                f"found values {annotated[(annotated != 0) & (annotated != 1)].unique().tolist()[:5]}"
            )
        if preds.is_floating_point():
            if bool((torch.isfinite(preds) & ((preds < 0) | (preds > 1))).any()):  # NaN: _check_finite
                raise ValueError(
                    "AU preds must be probabilities in [0, 1] (apply torch.sigmoid to logits) or 0/1 "
                    f"decisions, found values in [{preds.min().item():.4g}, {preds.max().item():.4g}]"
                )
        elif preds.dtype != torch.bool and bool(((preds != 0) & (preds != 1)).any()):
            raise ValueError("AU integer preds must be 0/1 decisions")
    tgt = (target == 1) & mask
    d = preds.shape[-1]
    return preds.reshape(-1, d), tgt.reshape(-1, d), mask.reshape(-1, d)


def _au_update(preds: Tensor, target: Tensor, mask: Tensor, threshold: Tensor) -> tuple[Tensor, ...]:
    """Per-AU ``tp, fp, fn, tn`` (long ``[A]``) over the annotated entries; decision = ``prob > threshold``
    for float preds (the torchmetrics convention), the value itself for bool / integer decisions."""
    dec = preds > threshold.to(preds.device) if preds.is_floating_point() else preds.bool()
    tp = (dec & target & mask).sum(0)
    fp = (dec & ~target & mask).sum(0)
    fn = (~dec & target & mask).sum(0)
    tn = (~dec & ~target & mask).sum(0)
    return tp, fp, fn, tn


def _au_compute(tp: Tensor, fp: Tensor, fn: Tensor, tn: Tensor) -> dict[str, Tensor]:
    """``{"f1", "acc", "afa", "total_acc", "e_total", "f1_per_au", "acc_per_au"}`` from the counts.

    - ``f1_per_au`` = 2TP / (2TP + FP + FN); an AU annotated only as negative and never predicted
      positive scores 0 (sklearn's ``zero_division=0``); NaN for an AU with no annotated entry.
    - ``acc_per_au`` = (TP + TN) / annotated entries; NaN for an AU with no annotated entry.
    - ``f1`` / ``acc``: means over the AUs with at least one annotated entry (P_AU is ``f1``).
    - ``afa`` = (f1 + acc) / 2 (paper Table VI, "AFA").
    - ``total_acc`` = correct / all annotated frame x AU decisions; ``e_total`` = 0.5 f1 + 0.5 total_acc
      (ABAW 2020 E_total^AU).
    - nothing annotated at all: every scalar is NaN.
    """
    tp, fp, fn, tn = (x.double() for x in (tp, fp, fn, tn))
    n = tp + fp + fn + tn
    nan = torch.full_like(n, float("nan"))
    f1_den = 2 * tp + fp + fn
    f1_per_au = torch.where(n > 0, torch.where(f1_den > 0, 2 * tp / f1_den.clamp_min(1), 0.0), nan)
    acc_per_au = torch.where(n > 0, (tp + tn) / n.clamp_min(1), nan)
    f1, acc = f1_per_au.nanmean(), acc_per_au.nanmean()  # NaN if no AU was annotated
    total_acc = (tp + tn).sum() / n.sum()  # 0 / 0 = NaN if nothing annotated
    w_f1, w_acc = E_TOTAL_AU_WEIGHTS
    return {
        "f1": f1.float(),
        "acc": acc.float(),
        "afa": (0.5 * (f1 + acc)).float(),
        "total_acc": total_acc.float(),
        "e_total": (w_f1 * f1 + w_acc * total_acc).float(),
        "f1_per_au": f1_per_au.float(),
        "acc_per_au": acc_per_au.float(),
    }


def au_metrics(
    preds: Tensor,
    target: Tensor,
    mask: Tensor | None = None,
    threshold: float | Sequence[float] | Tensor = 0.5,
) -> dict[str, Tensor]:
    """Functional ``AUMetrics`` on ``[..., A]`` probabilities (or 0/1 decisions), 0/1 targets and a mask
    (``None``: the entries whose target is not NaN).

    >>> import torch
    >>> probs = torch.tensor([[0.9, 0.2], [0.7, 0.8], [0.1, 0.6]])
    >>> target = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, float("nan")]])
    >>> mask = ~target.isnan()
    >>> out = au_metrics(probs, target, mask)
    >>> out["f1_per_au"], out["acc_per_au"]
    (tensor([0.6667, 1.0000]), tensor([0.6667, 1.0000]))
    >>> round(out["total_acc"].item(), 4)                # 4 of 5 annotated decisions are right
    0.8
    """
    a = preds.shape[-1] if preds.ndim else 0
    p, t, m = _au_format(preds, target, mask, a)
    _check_finite(p, m, "AU")
    return _au_compute(*_au_update(p, t, m, _au_threshold(threshold, a)))
