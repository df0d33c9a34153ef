"""Expression metrics over a confusion matrix: macro F1, accuracy, UAR, Diag and E_total^Expr
(paper Sec. IV, Tables IV and VI; ``docs/metrics_losses.md``). ``"f1"`` is the ABAW P_EXPR.

One additive ``[C, C]`` long state (``dist_reduce_fx="sum"``) gives every score exactly under DDP.
``torchmetrics.MulticlassF1Score`` / ``MulticlassRecall`` would each keep their own counts and none of
them gives Diag or E_total; a single confusion matrix gives all five at once.
"""

from __future__ import annotations

import torch
from torch import Tensor

from affect.labels import EXPR_IGNORE, NUM_EXPR
from affect.metrics.checks import ScoreMetric
from affect.metrics.functional import _expr_compute, _expr_format, _expr_update


class ExprMetrics(ScoreMetric):
    """Macro F1, accuracy, UAR, Diag, E_total and the confusion matrix of expression predictions.

    ``update(preds, target)``: ``preds`` are scores ``[..., C]`` (logits or probabilities, argmax is
    taken) or integer class ids of ``target``'s shape; ``target`` long ``[...]`` with ``ignore_index``
    (default -1, no label) skipped.

    ``compute()`` returns ``{"f1", "acc", "uar", "diag", "e_total"}`` (float32 scalars) and
    ``"confmat"`` (long ``[C, C]``, rows = true class, columns = prediction):

    - ``f1``: macro F1 over all ``C`` classes, following ``sklearn.metrics.f1_score(average="macro",
      labels=range(C), zero_division=0)``: a class absent from both target and predictions scores 0 and
      is still averaged. (The ABAW scripts call ``f1_score`` without ``labels``, which averages only the
      classes present in either; the two agree whenever every class occurs, as on the challenge sets.)
    - ``acc``: accuracy. ``uar``: macro recall over all ``C`` classes (a class without samples scores 0,
      as sklearn's ``recall_score(..., labels=range(C), zero_division=0)``).
    - ``diag``: mean diagonal of the row-normalised confusion matrix, averaged over the rows that have
      samples (rows without samples are excluded, not counted as 0) — the RAF-DB "Diag." criterion.
      It equals ``uar`` whenever every class occurs in the target.
    - ``e_total`` = 0.67 F1 + 0.33 Acc (ABAW 2020 E_total^Expr, Table IV caption).
    - Without any labelled sample every scalar is NaN.

    >>> import torch
    >>> metric = ExprMetrics(num_classes=3)
    >>> metric.update(torch.tensor([[2.0, 0.1, 0.3], [0.0, 1.0, 0.5]]), torch.tensor([0, 1]))
    >>> metric.update(torch.tensor([1, 2]), torch.tensor([2, -1]))        # class ids; -1 is skipped
    >>> out = metric.compute()
    >>> out["confmat"]
    tensor([[1, 0, 0],
            [0, 1, 0],
            [0, 1, 0]])
    >>> {k: round(v.item(), 4) for k, v in out.items() if k != "confmat"}
    {'f1': 0.5556, 'acc': 0.6667, 'uar': 0.6667, 'diag': 0.6667, 'e_total': 0.5922}
    """

    task = "EXPR"

    confmat: Tensor

    def __init__(
        self, num_classes: int = NUM_EXPR, ignore_index: int = EXPR_IGNORE, validate_args: bool = True
    ) -> None:
        super().__init__(validate_args)
        if num_classes < 2:
            raise ValueError(f"ExprMetrics needs num_classes >= 2, found {num_classes}")
        if 0 <= ignore_index < num_classes:
            raise ValueError(
                f"ignore_index must not be a class id in [0, {num_classes}), found {ignore_index}"
            )
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.add_state(
            "confmat", default=torch.zeros(num_classes, num_classes, dtype=torch.long), dist_reduce_fx="sum"
        )

    def update(self, preds: Tensor, target: Tensor) -> None:
        """Add the batch's labelled samples to the confusion matrix (no host sync without ``validate_args``:
        NaN / inf scores of labelled samples are then counted here and refused by ``compute``)."""
        preds = preds.detach()
        pred_ids, tgt = _expr_format(preds, target, self.num_classes, self.ignore_index, self.validate_args)
        labelled = (target != self.ignore_index).unsqueeze(-1)
        self.check_finite(preds, labelled)
        self.confmat += _expr_update(pred_ids, tgt, self.num_classes, self.ignore_index)

    def compute(self) -> dict[str, Tensor]:
        """Scores over everything seen (all processes)."""
        self.raise_nonfinite()
        return _expr_compute(self.confmat)
