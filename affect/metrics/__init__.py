"""Evaluation metrics of the paper (Sec. IV eq. 1, Tables II-VI) as ``torchmetrics.Metric`` classes,
exact under DDP (additive states, ``dist_reduce_fx="sum"``), plus the ABAW challenge scores.

- ``VAMetrics()`` -> ``{"ccc_v", "ccc_a", "ccc", "mse_v", "mse_a", "mse"}``
- ``ExprMetrics(num_classes=7)`` -> ``{"f1", "acc", "uar", "diag", "e_total", "confmat"}``
- ``AUMetrics(num_aus=17, threshold=0.5)`` -> ``{"f1", "acc", "afa", "total_acc", "e_total",
  "f1_per_au", "acc_per_au"}``
- ``WeightedMeans(names)`` -> ``{name: weighted mean}`` (the training loss terms, one update per step)
- ``ccc(preds, target, mask=None)`` (differentiable, for losses), ``va_metrics``, ``expr_metrics``,
  ``au_metrics`` (functional forms); ``p_va``, ``p_expr``, ``p_au``, ``p_mtl`` (ABAW 2022+),
  ``e_total_expr``, ``e_total_au`` (ABAW 2020).

Key names inside a ``torchmetrics.MetricCollection`` (torchmetrics 1.9 flattens dict results):

- Keys of the dicts are used as they are, with the collection's prefix in front, as long as no two
  members return the same key: ``MetricCollection({"va": VAMetrics()}, prefix="val/")`` gives
  ``"val/ccc"``, ``"val/mse_v"``, ...
- As soon as two members share a key (``ExprMetrics`` and ``AUMetrics`` both have ``"f1"``), EVERY key
  becomes ``"{member}_{key}"``: ``MetricCollection({"va": VAMetrics(), "expr": ExprMetrics(),
  "au": AUMetrics()}).clone(prefix="val/")`` gives ``"val/va_ccc"``, ``"val/expr_f1"``, ``"val/au_f1"``.
- For the project's ``"{stage}/{task}/{metric}"`` names use one single-member collection per task and
  stage, e.g. ``MetricCollection([VAMetrics()]).clone(prefix="val/va/")`` gives ``"val/va/ccc"``
  (update it with that task's tensors). Nesting collections also works for the names, but the outer
  collection renames its members ``"{outer}_{inner prefix}{inner}"`` (e.g. ``val["va_va/m"]``).
- ``torchmetrics.wrappers.MultitaskWrapper({"va": VAMetrics(), ...})`` passes only ``(preds, target)``:
  code "not annotated" as NaN in the VA / AU targets (``mask=None`` derives the mask from it) and -1 in
  the EXPR target; its ``compute()`` is nested, ``{"val/va": {"ccc": ...}, ...}``.
- ``"confmat"`` ``[C, C]``, ``"f1_per_au"`` and ``"acc_per_au"`` ``[A]`` are not scalars: drop them
  (``scalar_items``) before ``LightningModule.log_dict``.

>>> import torch
>>> from torchmetrics import MetricCollection
>>> val = MetricCollection([VAMetrics()]).clone(prefix="val/va/")
>>> val.update(torch.tensor([[0.1, 0.2], [0.3, 0.1]]), torch.tensor([[0.1, 0.3], [0.4, 0.0]]))
>>> sorted(val.compute())
['val/va/ccc', 'val/va/ccc_a', 'val/va/ccc_v', 'val/va/mse', 'val/va/mse_a', 'val/va/mse_v']
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

from affect.metrics.abaw import e_total_au, e_total_expr, p_au, p_expr, p_mtl, p_va
from affect.metrics.au import AUMetrics
from affect.metrics.expr import ExprMetrics
from affect.metrics.functional import NonFinitePredictionError, au_metrics, ccc, expr_metrics, va_metrics
from affect.metrics.means import WeightedMeans
from affect.metrics.va import VAMetrics


def scalar_items(result: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The scalar entries of a metric result (what ``LightningModule.log_dict`` accepts).

    >>> import torch
    >>> sorted(scalar_items({"f1": torch.tensor(0.5), "confmat": torch.zeros(7, 7)}))
    ['f1']
    """
    return {k: v for k, v in result.items() if not isinstance(v, Tensor) or v.numel() == 1}


__all__ = [
    "AUMetrics",
    "ExprMetrics",
    "NonFinitePredictionError",
    "VAMetrics",
    "WeightedMeans",
    "au_metrics",
    "ccc",
    "e_total_au",
    "e_total_expr",
    "expr_metrics",
    "p_au",
    "p_expr",
    "p_mtl",
    "p_va",
    "scalar_items",
    "va_metrics",
]
