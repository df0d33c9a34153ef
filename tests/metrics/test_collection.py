"""The metrics inside torchmetrics.MetricCollection, with .clone(prefix=...), forward and reset."""

from __future__ import annotations

import math

import pytest
import torch
from torchmetrics import MetricCollection
from torchmetrics.wrappers import MultitaskWrapper

from affect.metrics import AUMetrics, ExprMetrics, VAMetrics, scalar_items


def batches(seed: int, n: int = 3):
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        va_t = torch.rand(16, 2, generator=g) * 2 - 1
        y = torch.randint(-1, 7, (16,), generator=g)
        au_t = (torch.rand(16, 17, generator=g) < 0.3).float()
        yield {
            "va": (va_t + 0.2 * torch.randn(16, 2, generator=g), va_t, torch.rand(16, 2, generator=g) > 0.2),
            "expr": (torch.randn(16, 7, generator=g), y),
            "au": (torch.rand(16, 17, generator=g), au_t, torch.rand(16, 17, generator=g) > 0.2),
        }


def test_flat_collection_keys_and_values():
    base = MetricCollection({"va": VAMetrics(), "expr": ExprMetrics(), "au": AUMetrics()})
    train, val = base.clone(prefix="train/"), base.clone(prefix="val/")
    singles = {"va": VAMetrics(), "expr": ExprMetrics(), "au": AUMetrics()}
    for b in batches(0):
        for task in ("va", "expr", "au"):
            val[task].update(*b[task])  # collection items are addressable by their base name
            singles[task].update(*b[task])
    out = val.compute()
    for task, m in singles.items():
        for k, v in m.compute().items():
            torch.testing.assert_close(out[f"val/{task}_{k}"], v, equal_nan=True)
    assert "val/va_ccc" in out and "val/expr_f1" in out and "val/au_f1" in out
    assert train["va"].n.sum() == 0  # the clones do not share state
    with pytest.warns(UserWarning, match="called before the ``update``"):
        assert math.isnan(train.compute()["train/va_ccc"].item())


def test_per_task_collections_give_stage_task_metric_names():
    metrics = {"va": VAMetrics, "expr": ExprMetrics, "au": AUMetrics}
    stages = {
        stage: {
            task: MetricCollection([cls()]).clone(prefix=f"{stage}/{task}/") for task, cls in metrics.items()
        }
        for stage in ("train", "val")
    }
    single = VAMetrics()
    for b in batches(1):
        for task in metrics:
            stages["val"][task].update(*b[task])
        single.update(*b["va"])
    out = {k: v for coll in stages["val"].values() for k, v in coll.compute().items()}
    assert {
        "val/va/ccc",
        "val/va/ccc_v",
        "val/expr/f1",
        "val/expr/confmat",
        "val/au/f1",
        "val/au/afa",
    } <= set(out)
    torch.testing.assert_close(out["val/va/ccc"], single.compute()["ccc"])
    assert stages["train"]["va"]["VAMetrics"].n.sum() == 0
    logged = scalar_items(out)
    assert (
        "val/expr/confmat" not in logged and "val/au/f1_per_au" not in logged and "val/au/e_total" in logged
    )


def test_nested_collection_names_as_documented():
    val = MetricCollection({"va": MetricCollection({"m": VAMetrics()}, prefix="va/")}).clone(prefix="val/")
    b = next(batches(3))
    val["va_va/m"].update(*b["va"])
    assert sorted(val.compute())[:2] == ["val/va/ccc", "val/va/ccc_a"]


def test_multitask_wrapper_with_nan_coded_targets():
    wrapper = MultitaskWrapper({"va": VAMetrics(), "expr": ExprMetrics(), "au": AUMetrics()}).clone(
        prefix="val/"
    )
    refs = {"va": VAMetrics(), "expr": ExprMetrics(), "au": AUMetrics()}
    for b in batches(4):
        preds, targets = {}, {}
        for task in ("va", "au"):
            p, t, m = b[task]
            preds[task], targets[task] = p, torch.where(m, t, torch.tensor(float("nan")))
            refs[task].update(p, t, m)
        preds["expr"], targets["expr"] = b["expr"]
        refs["expr"].update(*b["expr"])
        wrapper.update(preds, targets)
    out = wrapper.compute()
    for task, ref in refs.items():
        for k, v in ref.compute().items():
            torch.testing.assert_close(out[f"val/{task}"][k], v, equal_nan=True)


@pytest.mark.parametrize("metric_cls", [VAMetrics, ExprMetrics, AUMetrics])
def test_forward_returns_batch_value_and_accumulates(metric_cls):
    key = {VAMetrics: "va", ExprMetrics: "expr", AUMetrics: "au"}[metric_cls]
    coll = MetricCollection([metric_cls()]).clone(prefix="val/")
    ref_batch, ref_all = metric_cls(), metric_cls()
    for b in batches(2):
        out = coll(*b[key])
        ref_batch.reset()
        ref_batch.update(*b[key])
        ref_all.update(*b[key])
        for k, v in ref_batch.compute().items():
            torch.testing.assert_close(out[f"val/{k}"], v, equal_nan=True)
    for k, v in ref_all.compute().items():
        torch.testing.assert_close(coll.compute()[f"val/{k}"], v, equal_nan=True)
    coll.reset()
    assert all(s.sum() == 0 for s in coll[metric_cls.__name__].metric_state.values())
