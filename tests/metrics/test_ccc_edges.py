"""One CCC (eq. 1) for the VA loss and the VA metrics, with its edge cases against a numpy reference.

The reference is written here from eq. 1 (population moments, two-pass, float64), independently of the
package; its ``0 / 0`` is NaN. The metric (``eps = 0``) must match it case by case, NaN included; the
loss's CCC (``eps > 0``) must match eq. 1 with ``eps`` in the denominator and be finite everywhere.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from affect.losses import ccc_loss, ccc_per_dim
from affect.metrics import VAMetrics, ccc

EPS = 1e-8


def np_ccc(x: np.ndarray, y: np.ndarray, eps: float = 0.0) -> float:
    """Eq. 1 with population moments; NaN for ``0 / 0`` (and for no entry when ``eps = 0``)."""
    if len(x) == 0:
        return float("nan") if eps == 0 else 0.0
    mx, my = x.mean(), y.mean()
    vx, vy = ((x - mx) ** 2).mean(), ((y - my) ** 2).mean()
    cov = ((x - mx) * (y - my)).mean()
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.float64(2 * cov) / np.float64(vx + vy + (mx - my) ** 2 + eps))


def _cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=50)
    return {
        "random": (x, 0.6 * x + 0.4 * rng.normal(size=50) + 0.2),
        "constant_equal": (np.full(6, 0.3), np.full(6, 0.3)),
        "constant_different_means": (np.full(6, 0.3), np.full(6, -0.1)),
        "prediction_constant": (np.full(6, 0.3), rng.normal(size=6)),
        "target_constant": (rng.normal(size=6), np.full(6, 0.5)),
        "one_entry_equal": (np.array([0.2]), np.array([0.2])),
        "one_entry_different": (np.array([0.2]), np.array([-0.4])),
        "empty": (np.zeros(0), np.zeros(0)),
    }


CASES = _cases()


def _padded(x: np.ndarray, y: np.ndarray, pad: int = 3):
    """The case as a masked ``[n + pad, 1]`` column whose padding holds NaN targets (never read)."""
    pred = torch.tensor(np.concatenate([x, np.full(pad, 7.0)]))[:, None]
    target = torch.tensor(np.concatenate([y, np.full(pad, np.nan)]))[:, None]
    mask = torch.arange(len(x) + pad)[:, None] < len(x)
    return pred, target, mask


@pytest.mark.parametrize("case", sorted(CASES))
def test_metric_ccc_matches_the_reference_nan_included(case):
    x, y = CASES[case]
    want = np_ccc(x, y)
    got = ccc(*_padded(x, y)).item()
    if np.isnan(want):
        assert np.isnan(got), (case, got)
    else:
        assert got == pytest.approx(want, abs=1e-12), case


@pytest.mark.parametrize("case", sorted(CASES))
def test_loss_ccc_is_eq1_with_eps_and_finite(case):
    x, y = CASES[case]
    pred, target, mask = _padded(x, y)
    pred.requires_grad_(True)
    value, count = ccc_per_dim(pred, target, mask, eps=EPS)
    assert count.item() == len(x)
    assert value.item() == pytest.approx(np_ccc(x, y, eps=EPS), abs=1e-9), case
    value.sum().backward()
    assert torch.isfinite(pred.grad).all(), case


@pytest.mark.parametrize("case", sorted(CASES))
def test_accumulated_metric_equals_the_functional_form(case):
    """``VAMetrics`` over the case split into two batches gives the one-batch value (NaN included)."""
    x, y = CASES[case]
    pred, target, mask = _padded(x, y)
    pred2, target2, mask2 = pred.repeat(1, 2), target.repeat(1, 2), mask.repeat(1, 2)
    metric = VAMetrics()
    half = len(pred2) // 2
    metric.update(pred2[:half].float(), target2[:half].float(), mask2[:half])
    metric.update(pred2[half:].float(), target2[half:].float(), mask2[half:])
    got = metric.compute()["ccc_v"].item()
    want = ccc(pred2.float(), target2.float(), mask2)[0].item()
    assert (np.isnan(got) and np.isnan(want)) or got == pytest.approx(want, abs=1e-6), (case, got, want)


def test_loss_and_metric_share_one_implementation():
    """Same inputs, same numbers, to the last bit: the loss's CCC with ``eps = 0`` is the metric's."""
    g = torch.Generator().manual_seed(3)
    pred = torch.randn(64, 2, generator=g)
    target = 0.5 * pred + torch.randn(64, 2, generator=g)
    mask = torch.rand(64, 2, generator=g) > 0.2
    value, _ = ccc_per_dim(pred, target, mask, eps=0.0)
    assert torch.equal(value, ccc(pred, target, mask))
    rho = ccc(pred, target, mask)
    assert ccc_loss(pred, target, mask, eps=0.0).item() == pytest.approx(1 - rho.mean().item(), abs=1e-7)


def test_half_precision_predictions_give_a_float32_loss():
    pred = torch.randn(16, 2).half()
    value, count = ccc_per_dim(pred, pred.float() * 0.5, None, eps=EPS)
    assert value.dtype == torch.float32 and count.dtype == torch.float32
