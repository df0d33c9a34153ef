"""ExprMetrics against sklearn (macro F1, accuracy, UAR, confusion matrix) and hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, recall_score

from affect.metrics import ExprMetrics, expr_metrics

C = 7


def sk_reference(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int = C) -> dict[str, float]:
    labels = list(range(num_classes))
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    rows = cm.sum(1) > 0
    return {
        "f1": f1_score(y_true, y_pred, average="macro", labels=labels, zero_division=0),
        "acc": accuracy_score(y_true, y_pred),
        "uar": recall_score(y_true, y_pred, average="macro", labels=labels, zero_division=0),
        "diag": float(np.mean(np.diag(cm)[rows] / cm.sum(1)[rows])),
        "cm": cm,
    }


def make_expr(n: int, seed: int, absent: tuple[int, ...] = (), never_predicted: tuple[int, ...] = ()):
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, C, (n,), generator=g)
    for c in absent:  # remove class c from the target
        target[target == c] = (c + 1) % C
    logits = torch.randn(n, C, generator=g) + 2.0 * torch.nn.functional.one_hot(target, C)
    logits[:, list(never_predicted)] = -1e4
    target[torch.rand(n, generator=g) < 0.2] = -1  # unlabelled
    return logits, target


def run_batches(metric, logits, target, sizes):
    for sl in torch.split(torch.arange(len(target)), sizes):
        metric.update(logits[sl], target[sl])
    return metric.compute()


@pytest.mark.parametrize(
    ("absent", "never_predicted"),
    [((), ()), ((3,), ()), ((5,), (5,)), ((1, 2), (6,))],
    ids=["all-classes", "class-absent-from-target", "class-absent-from-both", "mixed"],
)
def test_matches_sklearn(absent, never_predicted):
    logits, target = make_expr(
        500, seed=len(absent) + 10 * len(never_predicted), absent=absent, never_predicted=never_predicted
    )
    got = run_batches(ExprMetrics(num_classes=C), logits, target, [100, 3, 197, 200])
    keep = target >= 0
    ref = sk_reference(target[keep].numpy(), logits.argmax(1)[keep].numpy())
    for k in ("f1", "acc", "uar", "diag"):
        assert got[k].item() == pytest.approx(ref[k], abs=1e-6), k
    assert got["e_total"].item() == pytest.approx(0.67 * ref["f1"] + 0.33 * ref["acc"], abs=1e-6)
    np.testing.assert_array_equal(got["confmat"].numpy(), ref["cm"])
    assert got["confmat"].dtype == torch.long
    if absent and not never_predicted:
        assert got["diag"].item() > got["uar"].item()  # empty rows: excluded by Diag, 0 in UAR


def test_probs_and_class_ids_give_the_same_result():
    logits, target = make_expr(120, seed=7)
    a = expr_metrics(logits, target)
    b = expr_metrics(logits.softmax(-1), target)
    c = expr_metrics(logits.argmax(-1), target)
    for k in a:
        torch.testing.assert_close(a[k], b[k])
        torch.testing.assert_close(a[k], c[k])


def test_sequence_inputs():
    logits, target = make_expr(60, seed=8)
    metric = ExprMetrics()
    metric.update(logits.reshape(6, 10, C), target.reshape(6, 10))
    torch.testing.assert_close(metric.compute()["confmat"], expr_metrics(logits, target)["confmat"])


def test_hand_computed():
    # true:  0 0 1 1 2 ; pred: 0 1 1 1 0  ->  confmat [[1,1,0],[0,2,0],[1,0,0]]
    out = expr_metrics(torch.tensor([0, 1, 1, 1, 0, 2]), torch.tensor([0, 0, 1, 1, 2, -1]), num_classes=3)
    assert out["confmat"].tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    f1 = (2 * 1 / (2 + 2) + 2 * 2 / (2 + 3) + 0.0) / 3
    assert out["f1"].item() == pytest.approx(f1)
    assert out["acc"].item() == pytest.approx(3 / 5)
    assert out["uar"].item() == pytest.approx((0.5 + 1 + 0) / 3)
    assert out["diag"].item() == pytest.approx((0.5 + 1 + 0) / 3)


def test_no_labelled_sample_gives_nan():
    metric = ExprMetrics()
    metric.update(torch.randn(5, C), torch.full((5,), -1))
    metric.update(torch.randn(0, C), torch.zeros(0, dtype=torch.long))
    out = metric.compute()
    for k in ("f1", "acc", "uar", "diag", "e_total"):
        assert math.isnan(out[k].item()), k
    assert out["confmat"].sum().item() == 0


@pytest.mark.parametrize(
    ("preds", "target", "match"),
    [
        (torch.randn(4, 6), torch.zeros(4, dtype=torch.long), r"shape \[\.\.\., 7\] matching target \(4,\)"),
        (torch.randn(3, 7), torch.zeros(4, dtype=torch.long), r"found \(3, 7\)"),
        (torch.zeros(4, dtype=torch.long), torch.zeros(5, dtype=torch.long), r"target's shape \(5,\)"),
        (torch.randn(4, 7), torch.zeros(4), r"integer tensor of class ids, found torch.float32"),
        (torch.randn(4, 7), torch.tensor([0, 7, -1, -3]), r"in \[0, 7\) or -1 \(ignored\), found \[-3, 7\]"),
        (torch.tensor([0, 9, 1, 1]), torch.tensor([0, 1, 1, 1]), r"predicted class ids .* found \[9\]"),
    ],
)
def test_bad_input_raises(preds, target, match):
    with pytest.raises(ValueError, match=match):
        ExprMetrics().update(preds, target)


def test_bad_constructor_args():
    with pytest.raises(ValueError, match="ignore_index must not be a class id"):
        ExprMetrics(ignore_index=0)
    with pytest.raises(ValueError, match="num_classes >= 2"):
        ExprMetrics(num_classes=1)
