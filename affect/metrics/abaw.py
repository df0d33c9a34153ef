"""Challenge scores built from the metric results (ABAW 2020 and ABAW 2022+).

The functions take the dicts returned by ``VAMetrics.compute()``, ``ExprMetrics.compute()`` and
``AUMetrics.compute()`` (or a flattened ``MetricCollection`` result, with ``prefix=`` naming the part
in front of the plain key, e.g. ``prefix="val/expr_"``).

ABAW 2022 and later (the design notes, "Metrics"):

- ``p_va``   = P_VA   = (CCC_V + CCC_A) / 2                      (CCC of eq. 1, whole evaluation set)
- ``p_expr`` = P_EXPR = macro F1 over the expression classes      (7 here; ABAW 3+ used 8 with "Other")
- ``p_au``   = P_AU   = mean of the per-AU F1 scores
- ``p_mtl``  = P_MTL  = P_VA + P_EXPR + P_AU

ABAW 2020 (paper Table IV caption; these are also the ``"e_total"`` keys of the metric results):

- ``e_total_expr`` = E_total^Expr = 0.67 * F1 + 0.33 * Acc     (``ExprMetrics()["e_total"]``)
- ``e_total_au``   = E_total^AU   = 0.5 * F1 + 0.5 * TAcc      (``AUMetrics()["e_total"]``), where
  F1 is the mean per-AU F1 and TAcc the "total accuracy" over all annotated frame x AU decisions
  (key ``"total_acc"``).
- the 2020 VA criterion was the mean CCC, i.e. ``p_va``.

>>> import torch
>>> va = {"ccc_v": torch.tensor(0.5), "ccc_a": torch.tensor(0.3)}
>>> expr = {"f1": torch.tensor(0.4), "acc": torch.tensor(0.6)}
>>> au = {"f1": torch.tensor(0.5), "total_acc": torch.tensor(0.9)}
>>> round(p_mtl(va, expr, au).item(), 4)
1.3
>>> round(e_total_expr(expr).item(), 4), round(e_total_au(au).item(), 4)
(0.466, 0.7)
"""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

#: (weight of macro F1, weight of accuracy) in E_total^Expr (ABAW 2020, paper Table IV caption).
E_TOTAL_EXPR_WEIGHTS: tuple[float, float] = (0.67, 0.33)
#: (weight of mean per-AU F1, weight of total accuracy) in E_total^AU (ABAW 2020, Table IV caption).
E_TOTAL_AU_WEIGHTS: tuple[float, float] = (0.5, 0.5)


def _get(result: Mapping[str, Tensor], key: str, prefix: str, what: str) -> Tensor:
    name = f"{prefix}{key}"
    if name not in result:
        raise KeyError(
            f"{what} needs the key {name!r} (a {key!r} entry, prefix {prefix!r}); found keys {sorted(result)}"
        )
    return result[name]


def p_va(va_result: Mapping[str, Tensor], prefix: str = "") -> Tensor:
    """ABAW P_VA = (CCC_V + CCC_A) / 2 from a ``VAMetrics`` result (keys ``ccc_v``, ``ccc_a``)."""
    return 0.5 * (_get(va_result, "ccc_v", prefix, "p_va") + _get(va_result, "ccc_a", prefix, "p_va"))


def p_expr(expr_result: Mapping[str, Tensor], prefix: str = "") -> Tensor:
    """ABAW P_EXPR = macro F1 over the expression classes, from an ``ExprMetrics`` result (key ``f1``)."""
    return _get(expr_result, "f1", prefix, "p_expr")


def p_au(au_result: Mapping[str, Tensor], prefix: str = "") -> Tensor:
    """ABAW P_AU = mean per-AU F1, from an ``AUMetrics`` result (key ``f1``)."""
    return _get(au_result, "f1", prefix, "p_au")


def p_mtl(
    va_result: Mapping[str, Tensor],
    expr_result: Mapping[str, Tensor],
    au_result: Mapping[str, Tensor],
    va_prefix: str = "",
    expr_prefix: str = "",
    au_prefix: str = "",
) -> Tensor:
    """ABAW multi-task score P_MTL = P_VA + P_EXPR + P_AU (range [-1, 3])."""
    return p_va(va_result, va_prefix) + p_expr(expr_result, expr_prefix) + p_au(au_result, au_prefix)


def e_total_expr(expr_result: Mapping[str, Tensor], prefix: str = "") -> Tensor:
    """ABAW 2020 E_total^Expr = 0.67 * macro F1 + 0.33 * accuracy (keys ``f1``, ``acc``)."""
    w_f1, w_acc = E_TOTAL_EXPR_WEIGHTS
    return w_f1 * _get(expr_result, "f1", prefix, "e_total_expr") + w_acc * _get(
        expr_result, "acc", prefix, "e_total_expr"
    )


def e_total_au(au_result: Mapping[str, Tensor], prefix: str = "") -> Tensor:
    """ABAW 2020 E_total^AU = 0.5 * mean per-AU F1 + 0.5 * total accuracy (keys ``f1``, ``total_acc``)."""
    w_f1, w_acc = E_TOTAL_AU_WEIGHTS
    return w_f1 * _get(au_result, "f1", prefix, "e_total_au") + w_acc * _get(
        au_result, "total_acc", prefix, "e_total_au"
    )
