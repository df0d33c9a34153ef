"""The losses rewritten without host syncs (issue 13) equal the versions they replace, value and gradient.

``OLD_*`` below are the selecting implementations as they were before (bool-mask indexing and Python
branches on tensor values); the current ones weight by masks instead. Inputs cover empty subsets, NaN
in unannotated entries, real co-annotation weights, both DM forms, bf16 logits and a sync-free step of
the whole ``MultiTaskLoss`` under ``torch.compile(fullgraph=True)`` (a branch on a tensor value or a
data-dependent shape would break the graph).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from affect.labels import AU_SET, NUM_EXPR
from affect.losses import (
    DM_FORMS,
    MultiTaskLoss,
    au_bce_loss,
    ccc_loss,
    co_annotate_tables,
    distribution_matching_loss,
    relatedness_tables,
    soft_co_annotation_targets_tables,
    soft_cross_entropy,
    zero_like_graph,
)
from affect.losses.coupling import NEUTRAL, PRESENT_THRESHOLD
from affect.losses.task import ccc_per_dim, upcast
from affect.profiling import HostSyncCounter


# ------------------------------------------------------------------ the implementations before issue 13
def old_ccc_loss(pred, target, mask=None, eps=1e-8):
    ccc, n = ccc_per_dim(pred, target, mask, eps=eps)
    usable = n >= 2
    if not bool(usable.any()):
        return zero_like_graph(pred)
    return 1.0 - ccc[usable].mean()


def old_soft_cross_entropy(logits, soft_target, valid=None):
    if valid is None:
        valid = torch.ones(logits.shape[0], dtype=torch.bool, device=logits.device)
    if not bool(valid.any()):
        return zero_like_graph(logits)
    logp = F.log_softmax(upcast(logits[valid]), dim=-1)
    return -(soft_target[valid].detach().to(logp.dtype) * logp).sum(-1).mean()


def old_au_bce_loss(logits, target, weight):
    logits = upcast(logits)
    weight = weight.to(logits.dtype)
    annotated = weight > 0
    count = annotated.sum(-1)
    has = count > 0
    if not bool(has.any()):
        return zero_like_graph(logits)
    y = torch.where(annotated, target.to(logits.dtype), torch.zeros_like(logits))
    bce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    per_sample = (weight * bce).sum(-1)[has] / count[has].to(logits.dtype)
    return per_sample.mean()


def old_dm_tail(term, expr_logits, au_logits, table, aus, reduction):
    if aus == "related":
        matched = (table > 0).any(0)
        if not bool(matched.any()):
            return zero_like_graph(expr_logits, au_logits)
        term = term[:, matched]
    per_sample = term.mean(-1) if reduction == "mean" else term.sum(-1)
    return per_sample.mean()


def old_co_annotate_tables(expr, au, au_weight, related, weights, reweight=True):
    expr = expr.long()
    au_weight = au_weight.to(au.dtype if au.is_floating_point() else torch.float32)
    au = au.to(au_weight.dtype)
    related = related.to(au.device, au.dtype)
    weights = weights.to(au.device, au.dtype)
    annotated = au_weight > 0
    has_au = annotated.any(-1)
    has_expr = expr >= 0
    fill = (has_expr & ~has_au)[:, None]
    rows = expr.clamp_min(0)
    rel_rows = related[rows] > 0
    w_rows = (weights if reweight else related)[rows]
    au_new = torch.where(fill & rel_rows, torch.ones_like(au), au)
    weight_new = torch.where(fill, torch.where(rel_rows, w_rows, torch.zeros_like(w_rows)), au_weight)
    present = annotated & (au >= PRESENT_THRESHOLD)
    need = (related > 0).sum(-1)
    missing = (~present).to(au.dtype) @ (related > 0).to(au.dtype).T
    qualifies = (missing == 0) & (need > 0)[None, :]
    order = torch.arange(NUM_EXPR, device=au.device)
    key = need * (NUM_EXPR + 1) + (NUM_EXPR - order)
    best = torch.where(qualifies, key[None, :], torch.full_like(qualifies, -1, dtype=key.dtype)).argmax(-1)
    assign = (~has_expr) & has_au & qualifies.any(-1)
    expr_new = torch.where(assign, best, expr)
    return expr_new, au_new, weight_new


def old_soft_co_annotation_targets_tables(au, au_weight, related, weights, reweight=True, neutral_score=0.0,
                                          temperature=1.0):  # fmt: skip
    dtype = au.dtype if au.is_floating_point() else torch.float32
    annotated = au_weight > 0
    a = annotated.to(dtype)
    y = torch.where(annotated, au.to(dtype), torch.zeros_like(a))
    w = (weights if reweight else related).to(au.device, dtype)
    w = torch.where(related.to(au.device) > 0, w, torch.zeros_like(w))
    num = y @ w.T
    den = a @ w.T
    scorable = den > 0
    score = torch.where(scorable, num / den.clamp_min(torch.finfo(dtype).tiny), torch.zeros_like(num))
    valid = scorable.any(-1)
    if not bool((related[NEUTRAL] > 0).any()):
        fill = float("-inf") if neutral_score is None else float(neutral_score)
        score[:, NEUTRAL] = fill
    soft = F.softmax(score / temperature, dim=-1)
    return soft, valid


# ------------------------------------------------------------------ helpers
def same(new_fn, old_fn, *leaves_and_rest, n_leaves=1):
    """Values and gradients (w.r.t. the first ``n_leaves`` arguments) of both implementations agree."""
    results = []
    for fn in (new_fn, old_fn):
        leaves = [x.detach().clone().requires_grad_() for x in leaves_and_rest[:n_leaves]]
        value = fn(*leaves, *leaves_and_rest[n_leaves:])
        value.backward()
        results.append((value.detach(), [x.grad for x in leaves]))
    (v_new, g_new), (v_old, g_old) = results
    # (the old empty-subset 0 kept bf16 inputs' dtype; the new one is float32 like every other value)
    torch.testing.assert_close(v_new, v_old.to(v_new.dtype), rtol=1e-6, atol=1e-7)
    for a, b in zip(g_new, g_old, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    return v_new


def rows(n, seed, p_keep):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, generator=g) < p_keep


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("p_annotated", [0.0, 0.1, 0.6, 1.0])
def test_ccc_loss(seed, p_annotated):
    g = torch.Generator().manual_seed(seed)
    pred, target = torch.randn(9, 2, generator=g), torch.randn(9, 2, generator=g)
    mask = torch.rand(9, 2, generator=g) < p_annotated
    target[~mask] = float("nan")  # unannotated entries may hold anything
    same(ccc_loss, old_ccc_loss, pred, target, mask)
    same(ccc_loss, old_ccc_loss, pred, target.nan_to_num(), None)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("p_valid", [0.0, 0.3, 1.0])
def test_soft_cross_entropy(seed, p_valid):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(11, 7, generator=g) * 3
    soft = torch.softmax(torch.randn(11, 7, generator=g), -1)
    same(soft_cross_entropy, old_soft_cross_entropy, logits, soft, rows(11, seed, p_valid))
    same(soft_cross_entropy, old_soft_cross_entropy, logits, soft, None)
    bf16 = same(soft_cross_entropy, old_soft_cross_entropy, logits.bfloat16(), soft, rows(11, seed, p_valid))
    assert bf16.dtype == torch.float32


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("p_annotated", [0.0, 0.05, 0.5, 1.0])
def test_au_bce_loss(seed, p_annotated):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(10, 17, generator=g) * 2
    target = (torch.rand(10, 17, generator=g) > 0.6).float()
    mask = torch.rand(10, 17, generator=g) < p_annotated
    target[~mask] = float("nan")
    same(au_bce_loss, old_au_bce_loss, logits, target, mask)
    weights = mask * torch.rand(10, 17, generator=g)  # co-annotation's re-weighted observational AUs
    same(au_bce_loss, old_au_bce_loss, logits, target, weights)


@pytest.mark.parametrize("form", sorted(DM_FORMS))
@pytest.mark.parametrize("name", ["du2014", "affwild2", "none"])
def test_distribution_matching(form, name):
    g = torch.Generator().manual_seed(0)
    expr, au = torch.randn(8, 7, generator=g) * 2, torch.randn(8, 17, generator=g) * 2
    if name == "none":  # a table relating no AU: the "related" form has nothing to match
        table = torch.zeros(NUM_EXPR, 17)
    else:
        table = relatedness_tables(name, AU_SET)[0]
    kw = dict(DM_FORMS[form])

    def old(e, a):
        p_emo, p_au = torch.softmax(e, -1), torch.sigmoid(a)
        q = (p_emo @ table).clamp(1e-6, 1 - 1e-6) if kw["binary"] else (p_emo @ table).clamp(1e-6, 1.0)
        term = -(p_au * q.log() + (1 - p_au) * torch.log1p(-q)) if kw["binary"] else -p_au * q.log()
        if kw["kl"]:
            pc = p_au.clamp(1e-6, 1 - 1e-6)
            term = term + p_au * pc.log() + ((1 - p_au) * torch.log1p(-pc) if kw["binary"] else 0)
        return old_dm_tail(term, e, a, table, kw["aus"], kw["reduction"])

    value = same(lambda e, a: distribution_matching_loss(e, a, table, **kw), old, expr, au, n_leaves=2)
    assert (value == 0) == (name == "none" and form == "matched")


def label_batch(seed, n=40):
    """Every case of both directions: EXPR only, AU only (some qualifying), both, neither, partial masks."""
    g = torch.Generator().manual_seed(seed)
    expr = torch.randint(-1, 7, (n,), generator=g)
    au = (torch.rand(n, 17, generator=g) > 0.5).float()
    kind = torch.randint(0, 3, (n,), generator=g)  # 0: no AU annotated, 1: all, 2: some
    mask = torch.where(kind[:, None] == 1, True, torch.rand(n, 17, generator=g) > 0.5) & (kind[:, None] != 0)
    au[:4] = 1.0  # all present: several emotions qualify, the priority decides
    mask[:4], expr[:4] = True, -1
    au[~mask] = float("nan")
    return expr, au, mask


def tables_like(name):
    related, weights = relatedness_tables("du2014" if name == "neutral_related" else name, AU_SET)
    if name == "neutral_related":  # a table that relates an AU to Neutral: its soft score is computed
        related, weights = related.clone(), weights.clone()
        related[NEUTRAL, 3] = weights[NEUTRAL, 3] = 1.0
    return related, weights


@pytest.mark.parametrize("reweight", [True, False])
@pytest.mark.parametrize("name", ["du2014", "affwild2", "neutral_related"])
@pytest.mark.parametrize("seed", range(3))
def test_co_annotation(seed, name, reweight):
    related, weights = tables_like(name)
    expr, au, mask = label_batch(seed)
    for weight in (mask, mask * torch.rand(mask.shape)):
        new = co_annotate_tables(expr, au, weight, related, weights, reweight=reweight)
        old = old_co_annotate_tables(expr, au, weight, related, weights, reweight=reweight)
        for a, b in zip(new, old, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)
    assert (new[0] != expr).any()  # the batch exercises AU -> EXPR


@pytest.mark.parametrize("temperature", [1.0, 0.5])
@pytest.mark.parametrize("reweight", [True, False])
@pytest.mark.parametrize("neutral_score", [0.0, 0.7, None])
@pytest.mark.parametrize("name", ["du2014", "affwild2", "neutral_related"])
def test_soft_targets(name, neutral_score, reweight, temperature):
    related, weights = tables_like(name)
    _, au, mask = label_batch(1)
    kw = {"reweight": reweight, "neutral_score": neutral_score, "temperature": temperature}
    soft, valid = soft_co_annotation_targets_tables(au, mask, related, weights, **kw)
    old_soft, old_valid = old_soft_co_annotation_targets_tables(au, mask, related, weights, **kw)
    torch.testing.assert_close(soft, old_soft, rtol=0, atol=0)
    assert valid.tolist() == old_valid.tolist() and not valid.all() and valid.any()


def domain_outputs(seed, expr_labels=True):
    g = torch.Generator().manual_seed(seed)
    n = {"va": 5, "au": 4, "expr": 3}
    outputs = {"va": torch.randn(12, 2, generator=g), "expr": torch.randn(12, 7, generator=g),
               "au": torch.randn(12, 17, generator=g)}  # fmt: skip
    batch = {
        "va": torch.rand(12, 2, generator=g) * 2 - 1,
        "va_mask": torch.arange(12)[:, None].expand(12, 2) < n["va"],
        "expr": torch.where(torch.arange(12) >= 9, torch.randint(0, 7, (12,), generator=g), -1),
        "au": (torch.rand(12, 17, generator=g) > 0.6).float(),
        "au_mask": ((torch.arange(12) >= 5) & (torch.arange(12) < 9))[:, None].expand(12, 17),
    }
    if not expr_labels:
        batch["expr"] = torch.full((12,), -1)
    return outputs, batch


COUPLED = {"co_annotation": True, "distribution_matching": True, "soft_co_annotation": True}


@pytest.mark.parametrize("expr_labels", [True, False])
def test_multitask_loss_compiles_to_one_graph(expr_labels):
    """The coupled loss has no host sync and no graph break (a branch on a tensor value would be one)."""
    outputs, batch = domain_outputs(0, expr_labels)
    loss = MultiTaskLoss(**COUPLED, expr_label_smoothing=0.1)
    eager = loss(outputs, batch)
    with HostSyncCounter() as counter:
        loss(outputs, batch)
    assert counter.where() == []
    torch._dynamo.reset()
    try:
        out = torch.compile(loss, fullgraph=True, backend="aot_eager", dynamic=False)(outputs, batch)
    finally:
        torch._dynamo.reset()
    for key, value in eager.items():
        torch.testing.assert_close(out[key], value, rtol=1e-5, atol=1e-6)
