"""VAMetrics and the functional ccc (paper eq. 1) against numpy / scipy references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr
from torchmetrics.regression import ConcordanceCorrCoef

from affect.metrics import VAMetrics, ccc, va_metrics


def ccc_np(x: np.ndarray, y: np.ndarray) -> float:
    """Eq. 1 with population (ddof=0) moments, written out as in the Aff-Wild evaluation script."""
    mx, my = x.mean(), y.mean()
    sxy = ((x - mx) * (y - my)).mean()
    return float(2 * sxy / (x.var() + y.var() + (mx - my) ** 2))


def ccc_pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Second form of eq. 1: 2 s_x s_y rho_xy / (s_x^2 + s_y^2 + (mean_x - mean_y)^2)."""
    rho = pearsonr(x, y).statistic
    sx, sy = x.std(), y.std()
    return float(2 * sx * sy * rho / (sx**2 + sy**2 + (x.mean() - y.mean()) ** 2))


def make_va(n: int, seed: int, mask_frac: float = 0.3):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(n, 2, generator=g) * 2 - 1
    preds = 0.7 * target + 0.25 * torch.randn(n, 2, generator=g) + torch.tensor([0.1, -0.05])
    mask = torch.rand(n, 2, generator=g) > mask_frac
    target = torch.where(mask, target, torch.tensor(float("nan")))  # unannotated = NaN, as in manifests
    return preds, target, mask


def reference(preds, target, mask) -> dict[str, float]:
    p, t, m = preds.double().numpy(), target.double().numpy(), mask.numpy()
    out = {}
    for i, k in enumerate("va"):
        x, y = p[m[:, i], i], t[m[:, i], i]
        out[f"ccc_{k}"] = ccc_np(x, y)
        assert out[f"ccc_{k}"] == pytest.approx(ccc_pearson(x, y), abs=1e-12)
        out[f"mse_{k}"] = float(((x - y) ** 2).mean())
    out["ccc"] = (out["ccc_v"] + out["ccc_a"]) / 2
    out["mse"] = (out["mse_v"] + out["mse_a"]) / 2
    return out


def test_matches_numpy_and_scipy_over_masked_batches():
    preds, target, mask = make_va(400, seed=0)
    metric = VAMetrics()
    for sl in torch.split(torch.arange(400), [50, 7, 143, 1, 99, 100]):
        metric.update(preds[sl], target[sl], mask[sl])
    got = metric.compute()
    ref = reference(preds, target, mask)
    assert set(got) == set(ref)
    for k, v in ref.items():
        assert got[k].item() == pytest.approx(v, abs=1e-6), k
    assert 0.5 < ref["ccc"] < 0.95  # the data are informative, not a degenerate case
    # the functional form gives the same numbers in one call
    for k, v in va_metrics(preds, target, mask).items():
        assert v.item() == pytest.approx(ref[k], abs=1e-6)


def test_mask_is_per_dimension_and_ignores_target_values():
    preds, target, mask = make_va(200, seed=1)
    filled = torch.where(mask, target, torch.tensor(123.0))  # garbage where masked must not matter
    a, b = ccc(preds, target, mask), ccc(preds, filled, mask)
    torch.testing.assert_close(a, b)
    assert not torch.isnan(a).any()
    torch.testing.assert_close(ccc(preds, target), a)  # mask=None: NaN targets are "not annotated"
    # a dimension only uses its own annotated rows
    only_v = ccc(preds[mask[:, 0], 0], target[mask[:, 0], 0])
    assert a[0].item() == pytest.approx(only_v.item(), abs=1e-6)


def test_hand_computed_cases():
    t = torch.tensor([-0.6, -0.2, 0.1, 0.3, 0.4])
    t = (t - t.mean())[:, None].double()  # mean 0
    var = t.var(unbiased=False).item()
    assert ccc(t, t).item() == pytest.approx(1.0)  # perfect
    assert ccc(-t, t).item() == pytest.approx(-1.0)  # anti-correlated, equal means
    c = 0.3  # constant shift: 2 var / (2 var + c^2)
    assert ccc(t + c, t).item() == pytest.approx(2 * var / (2 * var + c**2))
    assert ccc(t + c, t).item() < 1.0
    assert ccc(2 * t, t).item() == pytest.approx(0.8)  # scale 2: 4 var / (var + 4 var)
    # pearson is 1 for both, CCC tells them apart
    assert pearsonr((t + c).ravel().numpy(), t.ravel().numpy()).statistic == pytest.approx(1.0)


def test_population_moments_not_bessel_corrected():
    """torchmetrics' ConcordanceCorrCoef uses 1/(n-1) moments: not eq. 1 as the Aff-Wild script computes it."""
    preds, target, _ = make_va(6, seed=2, mask_frac=0.0)
    ours = ccc(preds, target)
    tm = ConcordanceCorrCoef(num_outputs=2)(preds, target)
    p, t = preds.double().numpy(), target.double().numpy()
    for i in range(2):
        assert ours[i].item() == pytest.approx(ccc_np(p[:, i], t[:, i]), abs=1e-6)
        x, y = p[:, i], t[:, i]
        bessel = 2 * np.cov(x, y)[0, 1] / (x.var(ddof=1) + y.var(ddof=1) + (x.mean() - y.mean()) ** 2)
        assert tm[i].item() == pytest.approx(bessel, abs=1e-5)
        assert abs(tm[i].item() - ours[i].item()) > 1e-4


def test_whole_set_not_mean_of_batches():
    preds, target, mask = make_va(300, seed=3)
    metric = VAMetrics()
    batch_cccs = []
    for sl in torch.split(torch.arange(300), 30):
        metric.update(preds[sl], target[sl], mask[sl])
        batch_cccs.append(ccc(preds[sl], target[sl], mask[sl]))
    whole = metric.compute()
    ref = reference(preds, target, mask)
    assert whole["ccc_v"].item() == pytest.approx(ref["ccc_v"], abs=1e-6)
    batch_mean = torch.stack(batch_cccs).mean(0)
    assert abs(batch_mean[0].item() - ref["ccc_v"]) > 1e-3


def test_sequence_inputs_are_flattened():
    preds, target, mask = make_va(60, seed=4)
    metric = VAMetrics()
    metric.update(preds.reshape(6, 10, 2), target.reshape(6, 10, 2), mask.reshape(6, 10, 2))
    ref = reference(preds, target, mask)
    assert metric.compute()["ccc"].item() == pytest.approx(ref["ccc"], abs=1e-6)


def test_ccc_is_differentiable():
    g = torch.Generator().manual_seed(5)
    preds = torch.randn(12, 2, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.randn(12, 2, generator=g, dtype=torch.float64, requires_grad=True)
    mask = torch.rand(12, 2, generator=g) > 0.25
    assert torch.autograd.gradcheck(lambda p, t: ccc(p, t, mask), (preds, target))
    # masked NaN targets do not poison the gradient
    p32 = preds.detach().float().requires_grad_()
    t_nan = torch.where(mask, target.detach().float(), torch.tensor(float("nan")))
    loss = 1 - ccc(p32, t_nan, mask).mean()
    loss.backward()
    assert loss.dtype == torch.float32
    assert torch.isfinite(p32.grad).all()
    assert (p32.grad[~mask] == 0).all() and (p32.grad[mask] != 0).all()


def test_empty_and_degenerate_give_nan():
    metric = VAMetrics()
    metric.update(torch.zeros(4, 2), torch.full((4, 2), float("nan")), torch.zeros(4, 2, dtype=torch.bool))
    metric.update(torch.zeros(0, 2), torch.zeros(0, 2), torch.zeros(0, 2, dtype=torch.bool))
    out = metric.compute()
    assert all(math.isnan(v.item()) for v in out.values())
    # valence annotated, arousal not: valence is finite, arousal and the mean are NaN
    metric.reset()
    metric.update(
        torch.tensor([[0.1, 0.0], [0.3, 0.0]]),
        torch.tensor([[0.0, 0.0], [0.5, 0.0]]),
        torch.tensor([[True, False], [True, False]]),
    )
    out = metric.compute()
    assert out["ccc_v"].item() == pytest.approx(ccc_np(np.array([0.1, 0.3]), np.array([0.0, 0.5])), abs=1e-6)
    assert math.isnan(out["ccc_a"].item()) and math.isnan(out["ccc"].item())
    assert math.isnan(ccc(torch.ones(3, 1), torch.ones(3, 1)).item())  # 0 / 0: constant == constant


@pytest.mark.parametrize(
    ("preds", "target", "mask", "match"),
    [
        (
            torch.zeros(4, 2),
            torch.zeros(4, 3),
            None,
            r"same shape \[\.\.\., D\], found \(4, 2\) and \(4, 3\)",
        ),
        (
            torch.zeros(4, 3),
            torch.zeros(4, 3),
            None,
            r"2 outputs in the last dimension .* found shape \(4, 3\)",
        ),
        (torch.zeros(4, 2), torch.zeros(4, 2), torch.ones(4, dtype=torch.bool), r"mask must have the shape"),
        (
            torch.zeros(4, 2),
            torch.zeros(4, 2),
            torch.ones(4, 2),
            r"mask must be a bool tensor .* torch.float32",
        ),
        (torch.zeros(4, 2, dtype=torch.long), torch.zeros(4, 2), None, r"floating point .* torch.int64"),
    ],
)
def test_bad_input_raises(preds, target, mask, match):
    with pytest.raises(ValueError, match=match):
        VAMetrics().update(preds, target, mask)


def test_state_is_float64_sum_reduced():
    metric = VAMetrics()
    assert metric._reductions["sum_pt"].__name__ in {"dim_zero_sum", "sum"}
    assert metric.sum_pt.dtype == torch.float64 and metric.n.shape == (2,)
