"""Action-unit metrics: per-AU F1 and accuracy, their means, AFA and E_total^AU (paper Sec. IV,
Tables IV and VI; ``docs/metrics_losses.md``). ``"f1"`` is the ABAW P_AU.

Only annotated entries count (``mask``, the paper's delta_i): an AU a corpus does not annotate is
never a negative. ``torchmetrics.MultilabelStatScores`` has no per-entry mask (only an
``ignore_index`` in the target) and gives neither AFA nor the ABAW 2020 total accuracy, so this metric
keeps its own four additive ``[A]`` long counters (``dist_reduce_fx="sum"``), exact under DDP.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from affect.labels import NUM_AU
from affect.metrics.checks import ScoreMetric
from affect.metrics.functional import _au_compute, _au_format, _au_threshold, _au_update


class AUMetrics(ScoreMetric):
    """Per-AU TP/FP/FN/TN over annotated entries, and the AU scores derived from them.

    ``update(preds, target, mask=None)``: ``preds`` probabilities in [0, 1] ``[..., A]`` (apply
    ``torch.sigmoid`` to logits) or 0/1 decisions (bool / integer); ``target`` 0/1 ``[..., A]`` (any
    value, NaN included, where ``mask`` is False); ``mask`` bool ``[..., A]``; ``None`` takes the
    entries whose target is not NaN (so ``MultitaskWrapper``, which passes ``(preds, target)``, works).
    A probability counts as "active" when ``prob > threshold`` (torchmetrics' convention); ``threshold``
    is one float or one value per AU (e.g. thresholds validated per AU).

    ``compute()`` returns float32:

    - ``"f1_per_au"`` ``[A]``: 2TP / (2TP + FP + FN); 0 for an AU annotated only as negative and never
      predicted active (sklearn's ``zero_division=0``); NaN for an AU never annotated.
    - ``"acc_per_au"`` ``[A]``: (TP + TN) / annotated; NaN for an AU never annotated.
    - ``"f1"``: mean of ``f1_per_au`` over the AUs with at least one annotated entry (ABAW P_AU).
    - ``"acc"``: mean of ``acc_per_au`` over the same AUs. ``"afa"`` = (f1 + acc) / 2 (Table VI).
    - ``"total_acc"``: correct / all annotated frame x AU decisions (ABAW 2020 "total accuracy");
      ``"e_total"`` = 0.5 f1 + 0.5 total_acc (E_total^AU, Table IV caption).
    - with nothing annotated every scalar is NaN.

    >>> import torch
    >>> metric = AUMetrics(num_aus=3, threshold=[0.5, 0.5, 0.3])
    >>> probs = torch.tensor([[0.9, 0.2, 0.4], [0.7, 0.8, 0.1], [0.1, 0.6, 0.2]])
    >>> target = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    >>> mask = torch.tensor([[True, True, False], [True, True, False], [True, True, False]])
    >>> metric.update(probs, target, mask)
    >>> out = metric.compute()
    >>> out["f1_per_au"], out["acc_per_au"]
    (tensor([0.6667, 1.0000,    nan]), tensor([0.6667, 1.0000,    nan]))
    >>> {k: round(out[k].item(), 4) for k in ("f1", "acc", "afa", "total_acc", "e_total")}
    {'f1': 0.8333, 'acc': 0.8333, 'afa': 0.8333, 'total_acc': 0.8333, 'e_total': 0.8333}
    """

    task = "AU"

    tp: Tensor
    fp: Tensor
    fn: Tensor
    tn: Tensor
    threshold: Tensor

    def __init__(
        self, num_aus: int = NUM_AU, threshold: float | Sequence[float] = 0.5, validate_args: bool = True
    ) -> None:
        super().__init__(validate_args)
        if num_aus < 1:
            raise ValueError(f"AUMetrics needs num_aus >= 1, found {num_aus}")
        self.num_aus = num_aus
        self.register_buffer("threshold", _au_threshold(threshold, num_aus), persistent=False)
        for name in ("tp", "fp", "fn", "tn"):
            self.add_state(name, default=torch.zeros(num_aus, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor, mask: Tensor | None = None) -> None:
        """Add the batch's per-AU counts over the annotated entries (no host sync without ``validate_args``:
        NaN / inf predictions are then counted here and refused by ``compute``)."""
        p, t, m = _au_format(preds.detach(), target, mask, self.num_aus, self.validate_args)
        self.check_finite(p, m)
        tp, fp, fn, tn = _au_update(p, t, m, self.threshold)
        self.tp += tp
        self.fp += fp
        self.fn += fn
        self.tn += tn

    def compute(self) -> dict[str, Tensor]:
        """Per-AU and mean scores over everything seen (all processes)."""
        self.raise_nonfinite()
        return _au_compute(self.tp, self.fp, self.fn, self.tn)
