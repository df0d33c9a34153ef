r"""Functional forms of the evaluation metrics and the ``_x_update`` / ``_x_compute`` helpers they share
with the ``Metric`` classes (paper Sec. IV eq. 1, Tables II-VI; the design notes, "Metrics").

The ``Metric`` classes (:mod:`affect.metrics.va`, :mod:`.expr`, :mod:`.au`) call ``_x_format`` and
``_x_update`` in ``update()`` to turn a batch into additive sufficient statistics, and ``_x_compute``
in ``compute()`` to finish. The functional forms here run the same two steps on one set of tensors. The
EXPR and AU ones live in :mod:`affect.metrics.classification` and the NaN / inf checks in
:mod:`affect.metrics.checks`; both are re-exported here.

CCC (eq. 1), with population (biased, ``1/n``) variances and covariance as in the Aff-Wild evaluation
script::

    rho_c = 2 s_xy / (s_x^2 + s_y^2 + (mean_x - mean_y)^2)

It is computed from the sums ``n, S_p, S_t, S_pp, S_tt, S_pt`` per dimension (accumulated in float64),
so it is exact over any split of the data into batches or processes; :func:`ccc_from_sums` is the one
implementation of eq. 1, shared by the metrics and the VA loss (:func:`affect.losses.ccc_loss`), and
differentiable (plain torch ops on its inputs, no detach). Its edge cases, by ``eps``:

=========================================== ============================ ==========================
case (per dimension)                        ``eps = 0`` (the metrics)     ``eps > 0`` (the loss)
=========================================== ============================ ==========================
no annotated entry (``n = 0``)              NaN (undefined)              0
one entry (``n = 1``)                       0 if ``p != t``, else NaN    0
predictions and targets constant, equal     NaN (``0 / 0``)              0
constant, different means                   0                            0
one side constant, the other varying        0                            0
=========================================== ============================ ==========================

``eps`` also keeps the gradient finite; the loss skips dimensions with fewer than 2 entries. "Constant"
means constant within the rounding of the float64 sums (a variance below ~1e-14 of the mean square).

>>> import torch
>>> target = torch.tensor([[0.1, -0.2], [0.4, 0.3], [-0.5, 0.0], [0.2, 0.9]])
>>> ccc(target, target)                       # perfect predictions
tensor([1., 1.])
>>> ccc(-target, target)[0]                   # valence: anti-correlated, means 0.05 vs -0.05
tensor(-0.9574)
>>> mask = torch.tensor([[True, True], [True, False], [True, True], [True, False]])
>>> ccc(target + 0.1, target, mask)           # a constant shift is penalised; arousal uses 2 entries
tensor([0.9574, 0.6667])
"""

from __future__ import annotations

import torch
from torch import Tensor

from affect.metrics.checks import (  # noqa: F401 - re-exported: the metric classes import them from here
    NonFinitePredictionError,
    _check_finite,
    _count_nonfinite,
    _out_dtype,
    _raise_nonfinite,
)
from affect.metrics.classification import (  # noqa: F401 - re-exported beside the VA metrics
    _au_compute,
    _au_format,
    _au_threshold,
    _au_update,
    _expr_compute,
    _expr_format,
    _expr_update,
    au_metrics,
    expr_metrics,
)

VA_DIM_NAMES: tuple[str, str] = ("v", "a")


# --------------------------------------------------------------------------------------------------
# VA: CCC (eq. 1) and MSE
# --------------------------------------------------------------------------------------------------
def _va_format(
    preds: Tensor, target: Tensor, mask: Tensor | None, num_outputs: int | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Check shapes and flatten ``[..., D]`` inputs to ``[N, D]`` (a 1-D input is one dimension)."""
    if not (preds.is_floating_point() and target.is_floating_point()):
        raise ValueError(
            f"VA preds and target must be floating point tensors, found {preds.dtype} and {target.dtype}"
        )
    if preds.shape != target.shape:
        raise ValueError(
            f"VA preds and target must have the same shape [..., D], found {tuple(preds.shape)} "
            f"and {tuple(target.shape)}"
        )
    if preds.ndim == 0:
        raise ValueError("VA preds must have at least one dimension ([N] or [..., D]), found a scalar")
    if mask is None:
        mask = ~target.isnan()
    if mask.shape != preds.shape:
        raise ValueError(
            f"VA mask must have the shape of preds {tuple(preds.shape)}, found {tuple(mask.shape)}"
        )
    if mask.dtype != torch.bool:
        raise ValueError(f"VA mask must be a bool tensor (True = annotated), found {mask.dtype}")
    if preds.ndim == 1:
        preds, target, mask = preds[:, None], target[:, None], mask[:, None]
    d = preds.shape[-1]
    if num_outputs is not None and d != num_outputs:
        raise ValueError(
            f"VA inputs must have {num_outputs} outputs in the last dimension (valence, arousal), "
            f"found shape {tuple(preds.shape)}"
        )
    return preds.reshape(-1, d), target.reshape(-1, d), mask.reshape(-1, d)


def _va_update(preds: Tensor, target: Tensor, mask: Tensor) -> tuple[Tensor, ...]:
    """Sufficient statistics per dimension, float64 ``[D]`` each: ``n, S_p, S_t, S_pp, S_tt, S_pt, S_se``.

    Masked entries are replaced by 0 with ``torch.where`` (so a NaN "not annotated" target never leaks)
    and do not count in ``n``. Differentiable in ``preds`` and ``target``.
    """
    p = torch.where(mask, preds.double(), 0.0)
    t = torch.where(mask, target.double(), 0.0)
    n = mask.sum(0, dtype=torch.float64)
    return n, p.sum(0), t.sum(0), (p * p).sum(0), (t * t).sum(0), (p * t).sum(0), ((p - t) ** 2).sum(0)


def ccc_from_sums(
    n: Tensor, s_p: Tensor, s_t: Tensor, s_pp: Tensor, s_tt: Tensor, s_pt: Tensor, eps: float = 0.0
) -> Tensor:
    """CCC of eq. 1 from the sums of :func:`ccc_sums`, population (``1/n``) moments.

    ``eps = 0`` (the metrics): NaN where ``n == 0`` or ``0 / 0``; ``eps > 0`` (the loss): ``eps`` is
    added to the denominator, so every value is finite (the module docstring's table). An empty
    dimension's sums are all 0 and are divided by 1, not by ``n = 0`` (0 / eps = 0 for the loss).

    >>> import torch
    >>> sums = ccc_sums(torch.ones(3, 1), torch.ones(3, 1), torch.ones(3, 1, dtype=torch.bool))
    >>> ccc_from_sums(*sums), ccc_from_sums(*sums, eps=1e-8)   # constant and equal
    (tensor([nan], dtype=torch.float64), tensor([0.], dtype=torch.float64))
    """
    n = n.clamp_min(1.0)
    mean_p, mean_t = s_p / n, s_t / n
    var_p, var_t = _variance(s_pp / n, mean_p), _variance(s_tt / n, mean_t)
    cov = s_pt / n - mean_p * mean_t
    # |cov| <= s_x s_y (Cauchy-Schwarz); rounding of the one-pass sums can break it (a constant column
    # would give +-inf instead of NaN / 0); the bound is a constant for the gradient
    bound = (var_p * var_t).sqrt().detach()
    cov = torch.where(cov.abs() > bound, cov.sign() * bound, cov)
    return 2.0 * cov / (var_p + var_t + (mean_p - mean_t) ** 2 + eps)


def _variance(second_moment: Tensor, mean: Tensor) -> Tensor:
    """``E[x^2] - E[x]^2``, exactly 0 for a column that is constant within the rounding of the sums
    (a few float64 ulps of ``E[x^2]``; a real variance that small cannot be told from the sums)."""
    var = second_moment - mean**2
    tiny = 64 * torch.finfo(var.dtype).eps * second_moment
    return torch.where(var > tiny, var, torch.zeros_like(var))


def ccc_sums(preds: Tensor, target: Tensor, mask: Tensor) -> tuple[Tensor, ...]:
    """The CCC sums ``n, S_p, S_t, S_pp, S_tt, S_pt`` (float64 ``[D]`` each) of ``[N, D]`` inputs over the
    entries where ``mask`` is True (the others may hold NaN: they never enter a sum)."""
    return _va_update(preds, target, mask)[:6]


def _mse_compute(n: Tensor, s_se: Tensor) -> Tensor:
    """Mean squared error per dimension over the annotated entries; NaN where ``n == 0``."""
    return s_se / n


def _va_compute(
    n: Tensor, s_p: Tensor, s_t: Tensor, s_pp: Tensor, s_tt: Tensor, s_pt: Tensor, s_se: Tensor
) -> dict[str, Tensor]:
    """``{"ccc_v", "ccc_a", "ccc", "mse_v", "mse_a", "mse"}`` (float32) from the 2-D sums."""
    c = ccc_from_sums(n, s_p, s_t, s_pp, s_tt, s_pt).float()
    m = _mse_compute(n, s_se).float()
    out: dict[str, Tensor] = {}
    for i, name in enumerate(VA_DIM_NAMES):
        out[f"ccc_{name}"] = c[i]
    out["ccc"] = c.mean()
    for i, name in enumerate(VA_DIM_NAMES):
        out[f"mse_{name}"] = m[i]
    out["mse"] = m.mean()
    return out


def ccc(preds: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Concordance correlation coefficient (eq. 1) per dimension, ``Tensor[D]``, differentiable.

    Args:
        preds: predictions ``[N]`` or ``[..., D]`` (e.g. ``[B, 2]`` or ``[B, T, 2]``).
        target: annotations, same shape (may hold NaN where ``mask`` is False).
        mask: bool, same shape; False entries are ignored per dimension. ``None``: the entries whose
            target is not NaN.

    Returns:
        ``[D]`` (``[1]`` for 1-D inputs) in float32 (float64 for float64 inputs); NaN for a dimension with
        no annotated entry or with zero variance in both and equal means (the module docstring's table).
    """
    p, t, m = _va_format(preds, target, mask)
    return ccc_from_sums(*ccc_sums(p, t, m)).to(_out_dtype(preds))


def va_metrics(preds: Tensor, target: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
    """Functional ``VAMetrics``: ``{"ccc_v", "ccc_a", "ccc", "mse_v", "mse_a", "mse"}`` of ``[..., 2]`` inputs
    (``mask=None``: the entries whose target is not NaN).

    >>> import torch
    >>> p, t = torch.tensor([[0.0, 0.5], [0.5, 0.0]]), torch.tensor([[0.0, 0.5], [1.0, 0.0]])
    >>> {k: round(v.item(), 4) for k, v in va_metrics(p, t).items()}
    {'ccc_v': 0.6667, 'ccc_a': 1.0, 'ccc': 0.8333, 'mse_v': 0.125, 'mse_a': 0.0, 'mse': 0.0625}
    """
    p, t, m = _va_format(preds, target, mask, num_outputs=2)
    _check_finite(p, m, "VA")
    return _va_compute(*_va_update(p, t, m))
