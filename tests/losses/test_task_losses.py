"""Per-task losses (paper eq. 4-7) against numpy references and hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from affect.losses import au_bce_loss, ccc_loss, ccc_per_dim, expr_ce_loss, soft_cross_entropy


def np_ccc(x: np.ndarray, y: np.ndarray) -> float:
    """Population-statistics CCC (eq. 1), written independently of the package."""
    mx, my = x.mean(), y.mean()
    vx, vy = ((x - mx) ** 2).mean(), ((y - my) ** 2).mean()
    cov = ((x - mx) * (y - my)).mean()
    return 2 * cov / (vx + vy + (mx - my) ** 2)


# ----------------------------------------------------------------------------------------- CCC


def test_ccc_loss_matches_numpy_reference_with_mask():
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(40, 2, generator=g, dtype=torch.float64)
    target = 0.5 * pred + 0.3 * torch.randn(40, 2, generator=g, dtype=torch.float64) + 0.1
    mask = torch.rand(40, 2, generator=g) > 0.3
    rv = np_ccc(pred[mask[:, 0], 0].numpy(), target[mask[:, 0], 0].numpy())
    ra = np_ccc(pred[mask[:, 1], 1].numpy(), target[mask[:, 1], 1].numpy())
    loss = ccc_loss(pred, target, mask, eps=0.0)
    assert loss.item() == pytest.approx(1 - 0.5 * (rv + ra), abs=1e-12)


def test_ccc_loss_without_mask_matches_numpy():
    pred = torch.tensor([[0.1, -0.3], [0.5, 0.2], [-0.4, 0.9], [0.0, 0.1]])
    target = torch.tensor([[0.2, -0.1], [0.4, 0.0], [-0.1, 0.7], [0.3, 0.3]])
    expected = 1 - 0.5 * (
        np_ccc(pred[:, 0].numpy(), target[:, 0].numpy()) + np_ccc(pred[:, 1].numpy(), target[:, 1].numpy())
    )
    assert ccc_loss(pred, target).item() == pytest.approx(expected, abs=1e-6)


def test_ccc_loss_ignores_masked_targets_even_nan():
    pred = torch.randn(10, 2, generator=torch.Generator().manual_seed(1), requires_grad=True)
    target = torch.randn(10, 2, generator=torch.Generator().manual_seed(2))
    mask = torch.ones(10, 2, dtype=torch.bool)
    mask[3, 0] = mask[7, 1] = False
    base = ccc_loss(pred, target, mask)
    changed = target.clone()
    changed[3, 0], changed[7, 1] = float("nan"), 123.0
    other = ccc_loss(pred, changed, mask)
    assert other.item() == pytest.approx(base.item(), abs=1e-7)
    other.backward()
    assert torch.isfinite(pred.grad).all()
    assert pred.grad[3, 0] == 0 and pred.grad[7, 1] == 0


def test_ccc_loss_skips_dimension_with_fewer_than_two_entries():
    pred = torch.tensor([[0.1, 0.5], [0.4, 0.2], [-0.3, 0.0]])
    target = torch.tensor([[0.0, 0.9], [0.5, 0.0], [-0.2, 0.0]])
    mask = torch.tensor([[True, True], [True, False], [True, False]])  # arousal: one entry only
    rv = np_ccc(pred[:, 0].numpy(), target[:, 0].numpy())
    assert ccc_loss(pred, target, mask).item() == pytest.approx(1 - rv, abs=1e-6)


def test_ccc_loss_no_usable_dimension_is_zero_with_grad():
    pred = torch.randn(4, 2, requires_grad=True)
    mask = torch.zeros(4, 2, dtype=torch.bool)
    mask[0] = True  # one entry per dimension: still unusable
    loss = ccc_loss(pred, torch.full((4, 2), float("nan")), mask)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(pred.grad, torch.zeros(4, 2))


def test_ccc_loss_constant_predictions_are_finite():
    pred = torch.full((5, 2), 0.3, requires_grad=True)
    target = torch.full((5, 2), 0.3)  # constant and equal: 0 / 0 without eps
    loss = ccc_loss(pred, target)
    loss.backward()
    assert loss.item() == pytest.approx(1.0)
    assert torch.isfinite(pred.grad).all()
    pred2 = torch.full((5, 2), 0.1, requires_grad=True)
    loss2 = ccc_loss(pred2, torch.randn(5, 2))
    loss2.backward()
    assert loss2.item() == pytest.approx(1.0) and torch.isfinite(pred2.grad).all()


def test_ccc_per_dim_agrees_with_metrics_functional():
    functional = pytest.importorskip("affect.metrics.functional")
    g = torch.Generator().manual_seed(3)
    pred, target = (
        torch.randn(30, 2, generator=g, dtype=torch.float64),
        torch.randn(30, 2, generator=g, dtype=torch.float64),
    )
    mask = torch.rand(30, 2, generator=g) > 0.2
    ours, n = ccc_per_dim(pred, target, mask, eps=0.0)
    theirs = functional.ccc(pred, target, mask)
    torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-12)
    assert n.tolist() == mask.sum(0).tolist()


def test_ccc_loss_shape_error_message():
    with pytest.raises(ValueError, match=r"predictions have shape \(3, 2\) but targets \(3,\)"):
        ccc_loss(torch.zeros(3, 2), torch.zeros(3))


# ------------------------------------------------------------------------------------- EXPR CE


def np_log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_expr_ce_loss_over_labelled_samples_only():
    logits = torch.tensor([[1.0, 2.0, 0.5], [0.0, 0.0, 3.0], [2.0, -1.0, 0.0], [5.0, 5.0, 5.0]])
    target = torch.tensor([1, -1, 0, 2])
    lp = np_log_softmax(logits.numpy())
    expected = -(lp[0, 1] + lp[2, 0] + lp[3, 2]) / 3
    assert expr_ce_loss(logits, target).item() == pytest.approx(expected, abs=1e-6)


def test_expr_ce_loss_ignores_logits_of_unlabelled_samples():
    logits = torch.randn(4, 7, requires_grad=True)
    target = torch.tensor([-1, 3, -1, 6])
    expr_ce_loss(logits, target).backward()
    assert torch.equal(logits.grad[[0, 2]], torch.zeros(2, 7))
    assert logits.grad[[1, 3]].abs().sum() > 0


def test_expr_ce_loss_empty_is_zero_with_grad():
    logits = torch.randn(3, 7, requires_grad=True)
    loss = expr_ce_loss(logits, torch.full((3,), -1))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros(3, 7))
    empty = torch.zeros(0, 7, requires_grad=True)
    assert expr_ce_loss(empty, torch.zeros(0, dtype=torch.long)).item() == 0.0


def test_expr_ce_loss_soft_targets_for_unlabelled_samples():
    logits = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 1.0], [0.5, 0.5, 0.0]])
    target = torch.tensor([0, -1, -1])
    soft = torch.tensor(
        [[0.0, 1.0, 0.0], [0.2, 0.5, 0.3], [0.0, 0.0, 0.0]]
    )  # row 0 ignored (hard wins), row 2 none
    lp = np_log_softmax(logits.numpy())
    expected = (-lp[0, 0] - (0.2 * lp[1, 0] + 0.5 * lp[1, 1] + 0.3 * lp[1, 2])) / 2
    assert expr_ce_loss(logits, target, soft).item() == pytest.approx(expected, abs=1e-6)


def test_expr_ce_loss_label_smoothing_against_numpy():
    logits = torch.tensor([[1.0, 2.0, 0.5], [0.0, 0.0, 3.0], [2.0, -1.0, 0.0]])
    target = torch.tensor([1, -1, 0])
    eps, c = 0.3, 3
    lp = np_log_softmax(logits.numpy())
    smoothed = lambda row, k: -((1 - eps) * lp[row, k] + eps / c * lp[row].sum())  # noqa: E731
    expected = (smoothed(0, 1) + smoothed(2, 0)) / 2
    assert expr_ce_loss(logits, target, label_smoothing=eps).item() == pytest.approx(expected, abs=1e-6)
    # with soft targets: hard rows smoothed, the soft row (row 1) as it is
    soft = torch.tensor([[0.0, 0.0, 0.0], [0.2, 0.5, 0.3], [0.0, 0.0, 0.0]])
    soft_ce = -(0.2 * lp[1, 0] + 0.5 * lp[1, 1] + 0.3 * lp[1, 2])
    got = expr_ce_loss(logits, target, soft, label_smoothing=eps).item()
    assert got == pytest.approx((smoothed(0, 1) + soft_ce + smoothed(2, 0)) / 3, abs=1e-6)
    with pytest.raises(ValueError, match="label_smoothing"):
        expr_ce_loss(logits, target, label_smoothing=1.0)


def test_expr_ce_loss_bad_class_id():
    with pytest.raises(ValueError, match="class ids >= 7"):
        expr_ce_loss(torch.zeros(2, 7), torch.tensor([0, 7]))


def test_soft_cross_entropy_hand_value():
    logits = torch.tensor([[0.0, 0.0]])
    assert soft_cross_entropy(logits, torch.tensor([[0.3, 0.7]])).item() == pytest.approx(math.log(2))


# --------------------------------------------------------------------------------------- AU BCE


def bce(logit: float, y: float) -> float:
    p = 1 / (1 + math.exp(-logit))
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


def test_au_bce_loss_normalised_by_delta_per_sample():
    logits = torch.tensor([[2.0, -1.0, 0.5, 0.0], [0.3, 0.3, -2.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    target = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    delta = torch.tensor([[1, 1, 0, 1], [0, 1, 0, 0], [0, 0, 0, 0]], dtype=torch.bool)  # sample 3: no AU
    s0 = (bce(2.0, 1) + bce(-1.0, 0) + bce(0.0, 0)) / 3
    s1 = bce(0.3, 1) / 1
    assert au_bce_loss(logits, target, delta).item() == pytest.approx((s0 + s1) / 2, abs=1e-6)


def test_au_bce_loss_real_weights_normalised_by_count():
    logits = torch.tensor([[0.5, -0.5, 1.5]])
    target = torch.tensor([[1.0, 1.0, 0.0]])
    weight = torch.tensor([[1.0, 0.51, 0.0]])
    expected = (bce(0.5, 1) + 0.51 * bce(-0.5, 1)) / 2  # count of annotated AUs, not 1.51
    assert au_bce_loss(logits, target, weight).item() == pytest.approx(expected, abs=1e-6)


def test_au_bce_loss_masked_target_does_not_matter():
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(6, 17, generator=g)
    target = (torch.rand(6, 17, generator=g) > 0.5).float()
    mask = torch.rand(6, 17, generator=g) > 0.4
    changed = torch.where(mask, target, torch.full_like(target, float("nan")))
    assert au_bce_loss(logits, changed, mask).item() == pytest.approx(
        au_bce_loss(logits, target, mask).item(), abs=1e-7
    )
    flipped = torch.where(mask, target, 1 - target)
    assert au_bce_loss(logits, flipped, mask).item() == pytest.approx(
        au_bce_loss(logits, target, mask).item(), abs=1e-7
    )


def test_au_bce_loss_empty_is_zero_with_grad():
    logits = torch.randn(3, 5, requires_grad=True)
    loss = au_bce_loss(logits, torch.ones(3, 5), torch.zeros(3, 5, dtype=torch.bool))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros(3, 5))


def test_au_bce_loss_large_logits_are_stable():
    logits = torch.tensor([[80.0, -80.0]], requires_grad=True)
    loss = au_bce_loss(logits, torch.tensor([[0.0, 1.0]]), torch.ones(1, 2))
    loss.backward()
    assert loss.item() == pytest.approx(80.0, rel=1e-4)
    assert torch.isfinite(logits.grad).all()


def test_au_bce_loss_errors():
    with pytest.raises(ValueError, match="non-negative"):
        au_bce_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.tensor([[1.0, -0.5]]))
    with pytest.raises(
        ValueError, match=r"au_bce_loss weight: predictions have shape \(1, 2\) but targets \(1, 3\)"
    ):
        au_bce_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1, 3))
