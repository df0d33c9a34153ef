"""AUMetrics against sklearn per AU (annotated entries only), torchmetrics' stat scores, hand cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score
from torchmetrics.classification import MultilabelStatScores

from affect.metrics import AUMetrics, au_metrics

A = 17


def make_au(n: int, seed: int, num_aus: int = A):
    g = torch.Generator().manual_seed(seed)
    target = (torch.rand(n, num_aus, generator=g) < 0.3).float()
    probs = (0.5 * target + 0.7 * torch.rand(n, num_aus, generator=g)).clamp(0, 1)
    mask = torch.rand(n, num_aus, generator=g) > 0.3
    mask[:, 3] = False  # AU never annotated
    mask[n // 2 :, 5] = False  # AU annotated in half of the frames (a corpus without it)
    target[:, 7] = 0.0  # AU annotated only as negative ...
    probs[:, 7] = 0.1  # ... and never predicted: F1 = 0 (zero_division=0)
    target = torch.where(mask, target, torch.tensor(float("nan")))
    return probs, target, mask


def sk_reference(probs, target, mask, thr) -> dict:
    p, t, m = probs.numpy(), target.numpy(), mask.numpy()
    thr = np.broadcast_to(np.asarray(thr, dtype=np.float32), (p.shape[1],))
    f1s, accs, correct, total = [], [], 0, 0
    for a in range(p.shape[1]):
        sel = m[:, a]
        if not sel.any():
            f1s.append(np.nan)
            accs.append(np.nan)
            continue
        y, d = t[sel, a].astype(int), (p[sel, a] > thr[a]).astype(int)
        f1s.append(f1_score(y, d, zero_division=0))
        accs.append(accuracy_score(y, d))
        correct += int((y == d).sum())
        total += int(sel.sum())
    f1, acc = np.nanmean(f1s), np.nanmean(accs)
    return {
        "f1_per_au": np.array(f1s),
        "acc_per_au": np.array(accs),
        "f1": f1,
        "acc": acc,
        "afa": (f1 + acc) / 2,
        "total_acc": correct / total,
        "e_total": 0.5 * f1 + 0.5 * correct / total,
    }


def check(got: dict, ref: dict):
    for k in ("f1", "acc", "afa", "total_acc", "e_total"):
        assert got[k].item() == pytest.approx(ref[k], abs=1e-6), k
    for k in ("f1_per_au", "acc_per_au"):
        np.testing.assert_allclose(got[k].numpy(), ref[k], atol=1e-6, equal_nan=True, err_msg=k)


@pytest.mark.parametrize("per_au_threshold", [False, True])
def test_matches_sklearn_over_masked_batches(per_au_threshold):
    probs, target, mask = make_au(300, seed=0)
    thr = torch.linspace(0.3, 0.7, A).tolist() if per_au_threshold else 0.5
    metric = AUMetrics(num_aus=A, threshold=thr)
    for sl in torch.split(torch.arange(300), [64, 64, 1, 171]):
        metric.update(probs[sl], target[sl], mask[sl])
    got = metric.compute()
    ref = sk_reference(probs, target, mask, thr)
    check(got, ref)
    assert math.isnan(got["f1_per_au"][3].item()) and math.isnan(got["acc_per_au"][3].item())
    assert got["f1_per_au"][7].item() == 0.0 and got["acc_per_au"][7].item() == 1.0
    # unequal annotation counts per AU: mean per-AU accuracy differs from the total accuracy
    assert abs(got["acc"].item() - got["total_acc"].item()) > 1e-6
    check(au_metrics(probs, target, mask, thr), ref)
    check(au_metrics(probs, target, None, thr), ref)  # mask=None: NaN targets are "not annotated"


def test_counts_match_torchmetrics_with_ignore_index():
    probs, target, mask = make_au(200, seed=1)
    metric = AUMetrics(num_aus=A)
    metric.update(probs, target, mask)
    tm = MultilabelStatScores(num_labels=A, threshold=0.5, average=None, ignore_index=-1)
    tp, fp, tn, fn, _ = tm(probs, torch.where(mask, target, -1.0).long()).T
    for ours, theirs in ((metric.tp, tp), (metric.fp, fp), (metric.tn, tn), (metric.fn, fn)):
        torch.testing.assert_close(ours, theirs)


def test_unannotated_never_counted_as_negative():
    probs = torch.tensor([[0.9, 0.9], [0.1, 0.9]])
    target = torch.tensor([[1.0, float("nan")], [0.0, float("nan")]])
    mask = torch.tensor([[True, False], [True, False]])
    out = au_metrics(probs, target, mask)
    assert out["f1_per_au"][0].item() == 1.0 and math.isnan(out["f1_per_au"][1].item())
    assert out["f1"].item() == 1.0 and out["acc"].item() == 1.0 and out["total_acc"].item() == 1.0
    # if the second AU were (wrongly) taken as 0, its F1 and accuracy would be 0
    assert au_metrics(probs, target.nan_to_num(0.0))["f1"].item() == 0.5


def test_hand_computed_and_decisions():
    # AU0: t 1 1 0 0, d 1 0 1 0 -> tp1 fn1 fp1 tn1: F1 0.5, acc 0.5 ; AU1: t 1 0 - -, d 1 0 -> F1 1, acc 1
    target = torch.tensor([[1, 1], [1, 0], [0, 0], [0, 0]])
    mask = torch.tensor([[True, True], [True, True], [True, False], [True, False]])
    decisions = torch.tensor([[1, 1], [0, 0], [1, 1], [0, 1]])
    out = au_metrics(decisions, target, mask)
    assert out["f1_per_au"].tolist() == [0.5, 1.0]
    assert out["f1"].item() == 0.75 and out["acc"].item() == 0.75 and out["afa"].item() == 0.75
    assert out["total_acc"].item() == pytest.approx(4 / 6)
    assert out["e_total"].item() == pytest.approx(0.5 * 0.75 + 0.5 * 4 / 6)
    torch.testing.assert_close(au_metrics(decisions.bool(), target, mask)["f1"], out["f1"])
    # threshold: prob exactly at the threshold is "not active" (prob > threshold)
    assert au_metrics(torch.tensor([[0.5]]), torch.tensor([[1.0]]))["f1"].item() == 0.0


def test_nothing_annotated_gives_nan():
    metric = AUMetrics(num_aus=4)
    metric.update(torch.rand(3, 4), torch.full((3, 4), float("nan")), torch.zeros(3, 4, dtype=torch.bool))
    metric.update(torch.rand(0, 4), torch.zeros(0, 4), torch.zeros(0, 4, dtype=torch.bool))
    out = metric.compute()
    for k in ("f1", "acc", "afa", "total_acc", "e_total"):
        assert math.isnan(out[k].item()), k
    assert torch.isnan(out["f1_per_au"]).all()


@pytest.mark.parametrize(
    ("preds", "target", "mask", "match"),
    [
        (torch.rand(4, 16), torch.zeros(4, 16), None, r"shape \[\.\.\., 17\], found \(4, 16\) and \(4, 16\)"),
        (torch.rand(4, 17), torch.zeros(4, 17), torch.ones(4, 17), r"mask must be a bool tensor"),
        (torch.rand(4, 17), torch.zeros(4, 17), torch.ones(4, dtype=torch.bool), r"mask must have the shape"),
        (
            torch.randn(4, 17) * 5,
            torch.zeros(4, 17),
            None,
            r"probabilities in \[0, 1\] \(apply torch.sigmoid",
        ),
        (torch.rand(4, 17), torch.full((4, 17), 2.0), None, r"0 or 1 wherever mask is True .* \[2.0\]"),
        (
            torch.rand(4, 17),
            torch.full((4, 17), float("nan")),
            torch.ones(4, 17, dtype=torch.bool),
            r"0 or 1 wherever mask is True",
        ),
    ],
)
def test_bad_input_raises(preds, target, mask, match):
    with pytest.raises(ValueError, match=match):
        AUMetrics().update(preds, target, mask)


def test_bad_threshold_raises():
    with pytest.raises(ValueError, match=r"a float or 3 per-AU values, found shape \(2,\)"):
        AUMetrics(num_aus=3, threshold=[0.5, 0.5])
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        AUMetrics(num_aus=2, threshold=[0.5, 1.5])
