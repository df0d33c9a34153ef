"""Coupling losses of FaceBehaviorNet (paper VI-B): co-annotation, distribution matching (eq. 8-9),
soft co-annotation; checked against the paper's own examples and hand computations."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from affect.labels import AU_SET, EXPR_CLASSES, NUM_AU, au_index, expr_index
from affect.losses import (
    au_mixture,
    co_annotate,
    distribution_matching_loss,
    relatedness_tables,
    soft_co_annotation_loss,
    soft_co_annotation_targets,
)
from affect.relatedness import load_relatedness, relatedness_from_dict

H, S, F_, A, SU, D, N = (
    expr_index(e) for e in ("Happiness", "Sadness", "Fear", "Anger", "Surprise", "Disgust", "Neutral")
)


@pytest.fixture(scope="module")
def du() -> tuple[torch.Tensor, torch.Tensor]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # AU11 (sadness) is outside the 17-AU set
        return relatedness_tables("du2014")


def onehot_aus(aus, value=1.0):
    v = torch.zeros(NUM_AU)
    for a in aus:
        v[au_index(a)] = value
    return v


# ------------------------------------------------------------------------------------ tables


def test_both_relatedness_tables_load_over_the_17_aus():
    with pytest.warns(UserWarning, match=r"AU11 \(Sadness\)"):
        related, weights = relatedness_tables("du2014")
    assert related.shape == weights.shape == (7, NUM_AU)
    assert related[N].sum() == 0  # Neutral has no related AUs
    assert weights[H, au_index(6)].item() == pytest.approx(0.51)
    assert weights[H, au_index(12)].item() == 1.0
    related_aw, weights_aw = relatedness_tables("affwild2")
    assert related_aw.shape == (7, NUM_AU)
    assert sorted(a for a in AU_SET if related_aw[H, au_index(a)] > 0) == [6, 7, 10, 12, 25]
    assert weights_aw[D, au_index(10)].item() == pytest.approx(0.85)
    assert related_aw[S, au_index(4)].item() == 1.0  # the reconstructed first AU of the sadness row


# ------------------------------------------------------------------------- distribution matching


def test_paper_example_happiness_gives_q_au12_au25_au6(du):
    related, _ = du
    p = torch.zeros(1, 7)
    p[0, H] = 1.0
    q = au_mixture(p, related)[0]
    for a in AU_SET:
        assert q[au_index(a)].item() == (1.0 if a in (6, 12, 25) else 0.0), f"AU{a}"
    assert int((q == 0).sum()) == 14  # q(au_i) = 0 for the 14 other AUs


def test_q_au2_is_p_surprise_plus_p_fear(du):
    related, _ = du
    p = torch.softmax(torch.randn(5, 7, generator=torch.Generator().manual_seed(0)), -1)
    q = au_mixture(p, related)
    torch.testing.assert_close(q[:, au_index(2)], p[:, SU] + p[:, F_])
    # AU4: prototypical for sadness, fear, anger, observational for disgust
    torch.testing.assert_close(q[:, au_index(4)], p[:, S] + p[:, F_] + p[:, A] + p[:, D])


@pytest.mark.parametrize("name", ["du2014", "affwild2"])
@pytest.mark.parametrize("weighted", [False, True])
def test_q_is_a_probability(name, weighted):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        related, weights = relatedness_tables(name)
    table = weights if weighted else related
    p = torch.softmax(10 * torch.randn(200, 7, generator=torch.Generator().manual_seed(1)), -1)
    q = au_mixture(p, table)
    assert (q >= 0).all() and (q <= 1 + 1e-6).all()


def test_dm_loss_matches_eq9_by_hand():
    table = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # 3 "emotions", 2 AUs
    expr_logits = torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, -1.0]])
    au_logits = torch.tensor([[0.5, -1.0], [2.0, 0.0]])
    pe = np.exp(expr_logits.numpy()) / np.exp(expr_logits.numpy()).sum(-1, keepdims=True)
    pa = 1 / (1 + np.exp(-au_logits.numpy()))
    q = pe @ table.numpy()
    expected = np.mean((-pa * np.log(q)).sum(-1))
    got = distribution_matching_loss(expr_logits, au_logits, table)
    assert got.item() == pytest.approx(expected, abs=1e-6)
    expected_bin = np.mean((-pa * np.log(q) - (1 - pa) * np.log(1 - q)).sum(-1))
    got_bin = distribution_matching_loss(expr_logits, au_logits, table, binary=True)
    assert got_bin.item() == pytest.approx(expected_bin, abs=1e-5)


def test_dm_kl_is_zero_when_au_predictions_equal_q(du):
    related, _ = du
    expr_logits = torch.randn(4, 7, generator=torch.Generator().manual_seed(2))
    q = au_mixture(torch.softmax(expr_logits, -1), related).clamp(1e-4, 1 - 1e-4)
    au_logits = torch.logit(q)
    kl = distribution_matching_loss(expr_logits, au_logits, related, binary=True, kl=True, eps=1e-6)
    assert kl.item() == pytest.approx(0.0, abs=1e-3)
    ce = distribution_matching_loss(expr_logits, au_logits, related, binary=True, eps=1e-6)
    assert ce.item() > 0.1  # the cross entropy keeps p's entropy


def test_dm_loss_is_finite_when_q_is_zero_or_one(du):
    related, _ = du
    expr_logits = torch.full((2, 7), -50.0)
    expr_logits[:, H] = 50.0  # p(happiness) = 1: q = 1 on AU6/12/25, 0 elsewhere
    expr_logits.requires_grad_(True)
    au_logits = torch.zeros(2, NUM_AU, requires_grad=True)
    for binary in (False, True):
        loss = distribution_matching_loss(expr_logits, au_logits, related, binary=binary)
        loss.backward()
        assert (
            torch.isfinite(loss)
            and torch.isfinite(expr_logits.grad).all()
            and torch.isfinite(au_logits.grad).all()
        )


@pytest.mark.parametrize(
    ("dm_grad", "expr_grad", "au_grad"), [("both", True, True), ("au", False, True), ("expr", True, False)]
)
def test_dm_grad_side(du, dm_grad, expr_grad, au_grad):
    related, _ = du
    g = torch.Generator().manual_seed(5)
    expr_logits = torch.randn(3, 7, generator=g, requires_grad=True)
    au_logits = torch.randn(3, NUM_AU, generator=g, requires_grad=True)
    distribution_matching_loss(expr_logits, au_logits, related, dm_grad=dm_grad).backward()
    for grad, wanted in ((expr_logits.grad, expr_grad), (au_logits.grad, au_grad)):
        if wanted:
            assert grad is not None and grad.abs().sum() > 0
        else:
            assert grad is None or grad.abs().sum() == 0


def test_dm_errors(du):
    related, _ = du
    with pytest.raises(ValueError, match="dm_grad must be"):
        distribution_matching_loss(torch.zeros(1, 7), torch.zeros(1, NUM_AU), related, dm_grad="q")
    with pytest.raises(ValueError, match=r"table is \(7, 17\), outputs need \[7, 8\]"):
        distribution_matching_loss(torch.zeros(1, 7), torch.zeros(1, 8), related)


# ------------------------------------------------------------------------------ co-annotation


def co(expr, au, weight, reweight=True, relatedness="du2014"):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return co_annotate(
            torch.tensor(expr), torch.stack(au), torch.stack(weight), relatedness, reweight=reweight
        )


def test_expr_to_au_prototypical_and_weighted_observational():
    empty = torch.zeros(NUM_AU)
    e, a, w = co([H], [empty], [empty])
    assert e.tolist() == [H]
    expected_w = onehot_aus([12, 25])
    expected_w[au_index(6)] = 0.51
    torch.testing.assert_close(w[0], expected_w)
    torch.testing.assert_close(a[0], onehot_aus([6, 12, 25]))
    _, a1, w1 = co([H], [empty], [empty], reweight=False)
    torch.testing.assert_close(w1[0], onehot_aus([6, 12, 25]))
    # fear: prototypical 1, 4, 20, 25; observational 2 (0.57), 5 (0.63), 26 (0.33)
    _, a2, w2 = co([F_], [empty], [empty])
    assert w2[0, au_index(26)].item() == pytest.approx(0.33)
    assert w2[0, au_index(20)].item() == 1.0
    assert int((w2[0] > 0).sum()) == 7 and a2[0].sum().item() == 7


def test_expr_to_au_leaves_real_annotations_and_neutral_alone():
    real_au = onehot_aus([1, 2])  # AU1 present, AU2 present, AU4 annotated absent
    real_mask = onehot_aus([1, 2, 4])
    empty = torch.zeros(NUM_AU)
    e, a, w = co([H, N, -1], [real_au, empty, empty], [real_mask, empty, empty])
    torch.testing.assert_close(a[0], real_au)  # happiness sample with real AU labels: untouched
    torch.testing.assert_close(w[0], real_mask)
    assert w[1].sum() == 0  # Neutral has no related AU: stays unannotated
    assert w[2].sum() == 0 and e[2].item() == -1  # nothing to co-annotate


def test_au_to_expr_happiness_and_requirements():
    full = torch.ones(NUM_AU)
    happy = onehot_aus([6, 12, 25])
    no_au6 = onehot_aus([12, 25])
    happy_but_au6_unannotated = onehot_aus([6, 12, 25])
    mask_missing6 = full.clone()
    mask_missing6[au_index(6)] = 0
    e, a, w = co([-1, -1, -1], [happy, no_au6, happy_but_au6_unannotated], [full, full, mask_missing6])
    assert e.tolist() == [H, -1, -1]
    torch.testing.assert_close(
        a, torch.stack([happy, no_au6, happy_but_au6_unannotated])
    )  # AU labels unchanged
    torch.testing.assert_close(w, torch.stack([full, full, mask_missing6]))


def test_au_to_expr_largest_requirement_wins():
    full = torch.ones(NUM_AU)
    surprise = onehot_aus([1, 2, 5, 25, 26])  # surprise (5 AUs) only
    fear = onehot_aus([1, 2, 4, 5, 20, 25, 26])  # fear's 7 AUs include surprise's 5
    e, _, _ = co([-1, -1], [surprise, fear], [full, full])
    assert e.tolist() == [SU, F_]


def test_au_to_expr_tie_goes_to_lower_index():
    rel = relatedness_from_dict(
        "tie",
        {
            "emotions": {
                "Surprise": {"prototypical": [1, 2]},
                "Anger": {"prototypical": [4, 5]},
                "Happiness": {"prototypical": [12]},
            }
        },
    )
    full = torch.ones(NUM_AU)
    e, _, _ = co(
        [-1, -1], [onehot_aus([1, 2, 4, 5, 12]), onehot_aus([1, 2, 12])], [full, full], relatedness=rel
    )
    assert e.tolist() == [A, SU]  # Anger (index 1) beats Surprise (6) at equal size; 2 AUs beat 1


def test_au_to_expr_keeps_existing_label_and_ignores_neutral_face():
    full = torch.ones(NUM_AU)
    e, _, _ = co([S, -1], [onehot_aus([6, 12, 25]), torch.zeros(NUM_AU)], [full, full])
    assert e.tolist() == [S, -1]  # real label not overwritten; no AU active -> Neutral never assigned


def test_co_annotate_shape_errors():
    with pytest.raises(ValueError, match="expected expr"):
        co_annotate(
            torch.zeros(2, dtype=torch.long),
            torch.zeros(3, 17),
            torch.zeros(3, 17),
            load_relatedness("affwild2"),
        )
    with pytest.raises(ValueError, match="relatedness table is"):
        co_annotate(
            torch.zeros(2, dtype=torch.long),
            torch.zeros(2, 5),
            torch.zeros(2, 5),
            load_relatedness("affwild2"),
            au_set=AU_SET,
        )


# ------------------------------------------------------------------------- soft co-annotation


def soft_targets(au, mask, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return soft_co_annotation_targets(torch.stack(au), torch.stack(mask), "du2014", **kw)


def reference_scores(y: dict[int, float], annotated: set[int], reweight: bool) -> list[float | None]:
    """Scores of the 6 non-neutral emotions from Table V, written with plain Python dicts."""
    rel = load_relatedness("du2014")
    out: list[float | None] = []
    for e in EXPR_CLASSES:
        related = {a: w for a, w in rel.related(e).items() if a in AU_SET and a in annotated}
        if e == "Neutral":
            out.append(None)
            continue
        ws = {a: (w if reweight else 1.0) for a, w in related.items()}
        out.append(sum(ws[a] * y.get(a, 0.0) for a in ws) / sum(ws.values()) if ws else 0.0)
    return out


def test_soft_score_for_happiness_is_the_paper_formula():
    y = {12: 1.0, 25: 0.0, 6: 1.0}
    au = onehot_aus([6, 12])
    soft, valid = soft_targets([au], [torch.ones(NUM_AU)], neutral_score=0.0)
    assert valid.tolist() == [True]
    # Neutral's score is 0, so log(soft_H / soft_N) is happiness's score itself
    score_h = math.log(soft[0, H] / soft[0, N])
    assert score_h == pytest.approx((y[12] + y[25] + 0.51 * y[6]) / (1 + 1 + 0.51), abs=1e-6)
    soft1, _ = soft_targets([au], [torch.ones(NUM_AU)], neutral_score=0.0, reweight=False)
    assert math.log(soft1[0, H] / soft1[0, N]) == pytest.approx(2 / 3, abs=1e-6)


@pytest.mark.parametrize("reweight", [True, False])
def test_soft_targets_match_reference(reweight):
    g = torch.Generator().manual_seed(6)
    au = (torch.rand(4, NUM_AU, generator=g) > 0.5).float()
    mask = torch.rand(4, NUM_AU, generator=g) > 0.3
    soft, valid = soft_targets(list(au), list(mask), reweight=reweight, neutral_score=0.0, temperature=0.5)
    for i in range(4):
        annotated = {a for a in AU_SET if mask[i, au_index(a)]}
        y = {a: float(au[i, au_index(a)]) for a in annotated}
        scores = [0.0 if s is None else s for s in reference_scores(y, annotated, reweight)]
        z = np.exp(np.array(scores) / 0.5)
        np.testing.assert_allclose(soft[i].numpy(), z / z.sum(), atol=1e-6)
    assert valid.all()


def test_soft_missing_aus_are_renormalised_and_neutral_excluded():
    au = onehot_aus([12, 6])
    mask = torch.ones(NUM_AU)
    mask[au_index(25)] = 0  # AU25 not annotated: happiness = (1 + 0.51) / 1.51 = 1
    soft, _ = soft_targets([au], [mask], neutral_score=None)
    assert soft[0, N].item() == 0.0
    assert soft[0].sum().item() == pytest.approx(1.0)
    # happiness score 1; an emotion with no present AU (anger) scores 0
    assert math.log(soft[0, H] / soft[0, A]) == pytest.approx(1.0, abs=1e-6)


def test_soft_invalid_without_related_annotation():
    only_au14 = onehot_aus([14])  # AU14 relates to no basic emotion in du2014
    soft, valid = soft_targets([torch.zeros(NUM_AU), only_au14], [torch.zeros(NUM_AU), only_au14])
    assert valid.tolist() == [False, False]
    logits = torch.randn(2, 7, requires_grad=True)
    loss = soft_co_annotation_loss(logits, soft, valid)
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(logits.grad, torch.zeros(2, 7))


def test_soft_loss_hand_value():
    soft = torch.tensor([[0.25, 0.75]])
    logits = torch.tensor([[1.0, 0.0]])
    lp = np.log(np.exp([1.0, 0.0]) / np.exp([1.0, 0.0]).sum())
    expected = -(0.25 * lp[0] + 0.75 * lp[1])
    assert soft_co_annotation_loss(logits, soft, torch.tensor([True])).item() == pytest.approx(
        expected, abs=1e-6
    )


def test_soft_masked_values_do_not_matter():
    g = torch.Generator().manual_seed(7)
    au = (torch.rand(3, NUM_AU, generator=g) > 0.5).float()
    mask = torch.rand(3, NUM_AU, generator=g) > 0.5
    flipped = torch.where(mask, au, 1 - au)
    s1, _ = soft_targets(list(au), list(mask))
    s2, _ = soft_targets(list(flipped), list(mask))
    torch.testing.assert_close(s1, s2)
