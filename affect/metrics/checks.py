"""NaN / inf checks shared by every evaluation metric (:mod:`affect.metrics.functional`,
:mod:`affect.metrics.classification` and the ``Metric`` classes, whose common base is :class:`ScoreMetric`)."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

from affect.errors import AffectError

__all__ = ["NonFinitePredictionError"]


class NonFinitePredictionError(AffectError, ValueError):
    """NaN / inf predictions on annotated entries: scoring them would give plausible-looking numbers
    (``argmax`` over NaN scores picks class 0), so every metric refuses them the same way."""


def _count_nonfinite(preds: Tensor, annotated: Tensor) -> Tensor:
    """How many annotated entries have a NaN / inf prediction (a long scalar on ``preds``' device).

    ``annotated`` broadcasts against ``preds`` (``[..., 1]`` for per-sample EXPR rows). Entries that
    are not annotated are never scored, so what a model outputs there does not matter.
    """
    if not preds.is_floating_point():
        return torch.zeros((), dtype=torch.long, device=preds.device)
    return (~torch.isfinite(preds) & annotated).sum()


def _raise_nonfinite(count: Tensor | int, task: str) -> None:
    """Raise :class:`NonFinitePredictionError` when ``count`` (of :func:`_count_nonfinite`) is not 0.

    Reading ``count`` waits for the device: the metric classes do it in ``update`` when they validate
    their arguments, else once in ``compute`` (training metrics: no host sync per step).
    """
    n = int(count)
    if n:
        raise NonFinitePredictionError(
            f"{task} predictions are NaN/inf on {n} annotated entries: the model has diverged "
            "(or fp16 overflowed); lower the learning rate, train in bf16/fp32, or check the checkpoint"
        )


def _check_finite(preds: Tensor, annotated: Tensor, task: str) -> None:
    """Raise :class:`NonFinitePredictionError` if a prediction on an annotated entry is NaN or inf."""
    _raise_nonfinite(_count_nonfinite(preds, annotated), task)


def _out_dtype(x: Tensor) -> torch.dtype:
    """float64 stays float64; everything else (bf16, fp16, fp32, ints) comes back as float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


class ScoreMetric(Metric):
    """A task's evaluation scores (higher is better, in [0, 1] unless a subclass says otherwise) from additive
    states, refusing NaN / inf predictions on annotated entries: in ``update`` with ``validate_args``, else
    counted there without a host sync (``nonfinite``) and raised by ``compute`` (:meth:`raise_nonfinite`)."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    plot_lower_bound = 0.0
    plot_upper_bound = 1.0
    task = ""  # the task named in the error ("VA", "EXPR", "AU")

    nonfinite: Tensor

    def __init__(self, validate_args: bool = True) -> None:
        super().__init__()
        self.validate_args = validate_args
        self.add_state("nonfinite", default=torch.zeros((), dtype=torch.long), dist_reduce_fx="sum")

    def check_finite(self, preds: Tensor, annotated: Tensor) -> None:
        """Raise now (``validate_args``) or count for ``compute`` the NaN / inf ``preds`` on ``annotated`` entries."""
        if self.validate_args:
            _check_finite(preds, annotated, self.task)
        else:
            self.nonfinite += _count_nonfinite(preds, annotated)

    def raise_nonfinite(self) -> None:
        """Raise :class:`NonFinitePredictionError` if ``update`` counted NaN / inf predictions."""
        _raise_nonfinite(self.nonfinite, self.task)
