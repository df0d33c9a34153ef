"""Valence-arousal metrics: CCC (paper Sec. IV eq. 1) and MSE per dimension and their means (Tables II,
III, IV, VI). ``"ccc"`` is the ABAW P_VA.

Why not ``torchmetrics.ConcordanceCorrCoef(num_outputs=2)``: it has no mask (our VA annotations are
masked per dimension: a frame may carry valence but not arousal, and corpora without VA are masked
out), and it uses Bessel-corrected (``1/(n-1)``) variances, whereas eq. 1 as computed by the Aff-Wild
evaluation script uses population (``1/n``) moments. So this metric accumulates the additive sufficient
statistics ``n, sum p, sum t, sum p^2, sum t^2, sum p*t, sum (p-t)^2`` per dimension in float64 with
``dist_reduce_fx="sum"``: the result is the CCC over the whole evaluation set, exact under DDP and
independent of batching (never a mean of per-batch CCCs).
"""

from __future__ import annotations

import torch
from torch import Tensor

from affect.metrics.checks import ScoreMetric
from affect.metrics.functional import _va_compute, _va_format, _va_update

_STATES = ("n", "sum_p", "sum_t", "sum_pp", "sum_tt", "sum_pt", "sum_se")


class VAMetrics(ScoreMetric):
    """CCC (eq. 1, population moments) and MSE of valence and arousal over the whole evaluation set.

    ``update(preds, target, mask=None)``: ``preds``/``target`` float ``[..., 2]`` (valence, arousal;
    e.g. ``[B, 2]`` or ``[B, T, 2]``), ``mask`` bool of the same shape (False = not annotated; such
    entries are ignored per dimension, whatever the target holds there, NaN included). ``mask=None``
    takes the entries whose target is not NaN (the manifests' "not annotated"), so the metric also
    works under ``torchmetrics.wrappers.MultitaskWrapper``, which passes only ``(preds, target)``.

    ``compute()`` returns float32 scalars ``{"ccc_v", "ccc_a", "ccc", "mse_v", "mse_a", "mse"}`` where
    ``ccc`` and ``mse`` are the means of the two dimensions. A dimension without annotated entries gives
    NaN (and so does the mean). ``higher_is_better`` refers to the CCC keys; the MSE keys are lower-better.

    >>> import torch
    >>> metric = VAMetrics()
    >>> target = torch.tensor([[0.1, -0.2], [0.4, 0.3], [-0.5, 0.0], [0.2, 0.9]])
    >>> mask = torch.tensor([[True, True], [True, False], [True, True], [True, False]])
    >>> metric.update(target[:2] + 0.1, target[:2], mask[:2])
    >>> metric.update(target[2:] + 0.1, target[2:], mask[2:])
    >>> {k: round(v.item(), 4) for k, v in metric.compute().items()}
    {'ccc_v': 0.9574, 'ccc_a': 0.6667, 'ccc': 0.8121, 'mse_v': 0.01, 'mse_a': 0.01, 'mse': 0.01}
    """

    # not differentiable (ScoreMetric): states are detached float64 sums; use affect.metrics.ccc in a loss
    task = "VA"
    plot_lower_bound = -1.0

    n: Tensor
    sum_p: Tensor
    sum_t: Tensor
    sum_pp: Tensor
    sum_tt: Tensor
    sum_pt: Tensor
    sum_se: Tensor

    def __init__(self, validate_args: bool = True) -> None:
        super().__init__(validate_args)
        for name in _STATES:
            self.add_state(name, default=torch.zeros(2, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds: Tensor, target: Tensor, mask: Tensor | None = None) -> None:
        """Add the batch's sums (masked entries excluded). NaN / inf predictions on annotated entries raise
        here with ``validate_args``, else (no host sync) they are counted and refused by ``compute``."""
        p, t, m = _va_format(preds.detach(), target.detach(), mask, num_outputs=2)
        self.check_finite(p, m)
        for name, value in zip(_STATES, _va_update(p, t, m), strict=True):
            setattr(self, name, getattr(self, name) + value)

    def compute(self) -> dict[str, Tensor]:
        """CCC and MSE per dimension and their means over everything seen (all processes)."""
        self.raise_nonfinite()
        return _va_compute(*(getattr(self, name) for name in _STATES))
