"""NaN / inf predictions on annotated entries raise the same error in every metric (class and functional).

With ``validate_args=False`` (the training metrics: no host sync per step) the classes count them in
``update`` and raise in ``compute``, summed over processes.
"""

from __future__ import annotations

import pytest
import torch

from affect.metrics import (
    AUMetrics,
    ExprMetrics,
    NonFinitePredictionError,
    VAMetrics,
    au_metrics,
    expr_metrics,
    va_metrics,
)

MATCH = r"{task} predictions are NaN/inf on {n} annotated entries: the model has diverged"
BAD = (float("nan"), float("inf"), -float("inf"))


def update_then_compute(metric, *args):
    metric.update(*args)  # counts, does not raise (no host sync)
    metric.compute()


@pytest.mark.parametrize("metric", [VAMetrics(validate_args=False), ExprMetrics(validate_args=False),
                                    AUMetrics(num_aus=2, validate_args=False)])  # fmt: skip
def test_unvalidated_update_defers_the_error_to_compute_and_reset_clears_it(metric):
    if isinstance(metric, ExprMetrics):
        args = (torch.tensor([[float("nan")] + [0.0] * 6, [1.0] + [0.0] * 6]), torch.tensor([2, 0]))
    else:
        args = (torch.tensor([[float("nan"), 0.5], [0.5, 0.5]]), torch.tensor([[1.0, 0.0], [0.0, 1.0]]),
                torch.ones(2, 2, dtype=torch.bool))  # fmt: skip
    metric.update(*args)
    assert int(metric.nonfinite) == 1
    with pytest.raises(NonFinitePredictionError, match="on 1 annotated entries"):
        metric.compute()
    metric.reset()
    metric.update(*(a.nan_to_num(0.25) if a.is_floating_point() else a for a in args))
    assert all(torch.isfinite(v).all() for k, v in metric.compute().items() if k != "confmat")


@pytest.mark.parametrize("bad", BAD)
def test_va(bad):
    preds, target = torch.rand(6, 2) * 2 - 1, torch.rand(6, 2) * 2 - 1
    mask = torch.ones(6, 2, dtype=torch.bool)
    preds[1, 0] = preds[4, 1] = bad
    for fn in (lambda: va_metrics(preds, target, mask), lambda: VAMetrics().update(preds, target, mask),
               lambda: update_then_compute(VAMetrics(validate_args=False), preds, target, mask)):
        with pytest.raises(NonFinitePredictionError, match=MATCH.format(task="VA", n=2)):
            fn()
    mask[1, 0] = mask[4, 1] = False  # not annotated there: never scored, so allowed
    out = va_metrics(preds, target, mask)
    assert torch.isfinite(out["ccc"]) and torch.isfinite(out["mse"])


@pytest.mark.parametrize("bad", BAD)
def test_expr(bad):
    scores = torch.randn(5, 7)
    target = torch.tensor([3, 1, -1, 6, 0])
    scores[0, 2] = bad  # a labelled sample: argmax would silently pick a class
    for fn in (lambda: expr_metrics(scores, target), lambda: ExprMetrics().update(scores, target),
               lambda: update_then_compute(ExprMetrics(validate_args=False), scores, target)):
        with pytest.raises(NonFinitePredictionError, match=MATCH.format(task="EXPR", n=1)):
            fn()
    scores[0, 2] = 0.0
    scores[2] = bad  # the unlabelled sample (-1) is not scored
    assert expr_metrics(scores, target)["acc"].isfinite()


def test_expr_all_nan_scores_no_longer_score_class_zero():
    """The issue's case: a diverged model (all NaN) used to score accuracy = share of class 0."""
    target = torch.tensor([0, 0, 0, 1, 2, 3])
    with pytest.raises(NonFinitePredictionError):
        expr_metrics(torch.full((6, 7), float("nan")), target)


@pytest.mark.parametrize("bad", BAD)
def test_au(bad):
    probs = torch.rand(4, 3)
    target = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    mask = torch.ones(4, 3, dtype=torch.bool)
    probs[2, 1] = bad
    for fn in (lambda: au_metrics(probs, target, mask), lambda: AUMetrics(num_aus=3).update(probs, target, mask),
               lambda: update_then_compute(AUMetrics(num_aus=3, validate_args=False), probs, target, mask)):
        with pytest.raises(NonFinitePredictionError, match=MATCH.format(task="AU", n=1)):
            fn()
    mask[2, 1] = False  # an unannotated AU may hold anything
    assert au_metrics(probs, target, mask)["f1"].isfinite()


def test_error_is_a_value_error_and_one_line():
    with pytest.raises(ValueError) as err:
        va_metrics(torch.full((3, 2), float("nan")), torch.zeros(3, 2))
    assert "\n" not in str(err.value)
