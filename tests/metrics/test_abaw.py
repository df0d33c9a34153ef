"""ABAW 2022+ scores (P_VA, P_EXPR, P_AU, P_MTL) and ABAW 2020 E_total from real metric results."""

from __future__ import annotations

import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score
from torchmetrics import MetricCollection

from affect.metrics import AUMetrics, ExprMetrics, VAMetrics, p_au, p_expr, p_mtl, p_va
from affect.metrics.abaw import e_total_au, e_total_expr


def results():
    g = torch.Generator().manual_seed(0)
    t = torch.rand(50, 2, generator=g) * 2 - 1
    va = VAMetrics()
    va.update(t + 0.3 * torch.randn(50, 2, generator=g), t)
    y = torch.randint(0, 7, (80,), generator=g)
    logits = torch.randn(80, 7, generator=g) + torch.nn.functional.one_hot(y, 7)
    expr = ExprMetrics()
    expr.update(logits, y)
    at = (torch.rand(40, 17, generator=g) < 0.4).float()
    au = AUMetrics()
    au.update((0.6 * at + 0.5 * torch.rand(40, 17, generator=g)).clamp(0, 1), at)
    return va, expr, au, y, logits


def test_scores_from_compute_dicts():
    va, expr, au, y, logits = results()
    rv, re, ra = va.compute(), expr.compute(), au.compute()
    assert p_va(rv).item() == pytest.approx((rv["ccc_v"].item() + rv["ccc_a"].item()) / 2)
    assert p_va(rv).item() == pytest.approx(rv["ccc"].item())
    f1 = f1_score(y.numpy(), logits.argmax(1).numpy(), average="macro")
    assert p_expr(re).item() == pytest.approx(f1, abs=1e-6)
    assert p_au(ra).item() == pytest.approx(ra["f1_per_au"].mean().item(), abs=1e-6)
    assert p_mtl(rv, re, ra).item() == pytest.approx(p_va(rv).item() + f1 + p_au(ra).item(), abs=1e-6)
    acc = accuracy_score(y.numpy(), logits.argmax(1).numpy())
    assert e_total_expr(re).item() == pytest.approx(0.67 * f1 + 0.33 * acc, abs=1e-6)
    assert e_total_expr(re).item() == pytest.approx(re["e_total"].item(), abs=1e-6)
    assert e_total_au(ra).item() == pytest.approx(ra["e_total"].item(), abs=1e-6)


def test_scores_from_a_flattened_collection():
    va, expr, au, *_ = results()
    coll = MetricCollection({"va": va, "expr": expr, "au": au}).clone(prefix="val/")
    out = coll.compute()  # shared keys ("f1") -> every key is "{member}_{key}"
    assert p_mtl(out, out, out, "val/va_", "val/expr_", "val/au_").item() == pytest.approx(
        p_mtl(va.compute(), expr.compute(), au.compute()).item()
    )


def test_missing_key_is_a_clear_error():
    with pytest.raises(KeyError, match=r"p_va needs the key 'val/ccc_v'.*found keys \['ccc_v'\]"):
        p_va({"ccc_v": torch.tensor(0.1)}, prefix="val/")
