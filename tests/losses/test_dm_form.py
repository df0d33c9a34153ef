"""Distribution matching must not fight the AU labels (issue 10, item 3).

Free logits (no network): one sample whose AU12 (related to Happiness) and AU14 (related to no
emotion under du2014) are annotated positive, no emotion label, soft co-annotation +
distribution matching at lambda 1, Adam. As printed (eq. 9: ``-sum_i p_i log q_i`` over the 17
AUs, both sides trained) the DM term drives AU14 to ~0.04 against its label; the default
"matched" form (Bernoulli KL(p || q) per AU, over the AUs some emotion relates to, averaged)
leaves both labelled AUs near 1 and infers Happiness.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from affect.labels import NUM_AU, NUM_EXPR, au_index, expr_index
from affect.losses import MultiTaskLoss, distribution_matching_loss, relatedness_tables


def fit_free_logits(dm_form: str, steps: int = 300, lr: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    """``(p_au [17], p_emo [7])`` after training free logits on one AU12 + AU14 positive sample."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # AU11 of sadness is outside the AU set
        loss = MultiTaskLoss(distribution_matching=True, soft_co_annotation=True, dm_form=dm_form)
    expr = torch.zeros(1, NUM_EXPR, requires_grad=True)
    au = torch.zeros(1, NUM_AU, requires_grad=True)
    target = torch.zeros(1, NUM_AU)
    mask = torch.zeros(1, NUM_AU, dtype=torch.bool)
    for a in (12, 14):
        target[0, au_index(a)] = 1.0
        mask[0, au_index(a)] = True
    batch = {"au": target, "au_mask": mask, "expr": torch.tensor([-1])}
    opt = torch.optim.Adam([expr, au], lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        loss({"expr": expr, "au": au}, batch)["loss"].backward()
        opt.step()
    return au.detach().sigmoid()[0], expr.detach().softmax(-1)[0]


def test_printed_form_suppresses_a_labelled_au_that_no_emotion_relates_to():
    p_au, _ = fit_free_logits("printed")
    assert p_au[au_index(14)] < 0.1  # labelled positive, yet pushed down (issue 10: 0.018)


def test_default_form_keeps_labelled_aus_and_infers_the_related_emotion():
    p_au, p_emo = fit_free_logits("matched")
    assert p_au[au_index(12)] > 0.95
    assert p_au[au_index(14)] > 0.95
    assert int(p_emo.argmax()) == expr_index("Happiness")
    # unlabelled AU25 (Happiness, Fear, Surprise) is matched to the emotions' mixture q (eq. 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        related = relatedness_tables("du2014")[0]
    q25 = float(p_emo @ related[:, au_index(25)])
    assert p_au[au_index(25)].item() == pytest.approx(q25, abs=0.03)
    assert p_au[au_index(25)] > 0.5


@pytest.fixture(scope="module")
def related() -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return relatedness_tables("du2014")[0]


def test_matched_form_is_the_mean_bernoulli_kl_over_related_aus(related):
    g = torch.Generator().manual_seed(0)
    e, a = torch.randn(4, NUM_EXPR, generator=g), torch.randn(4, NUM_AU, generator=g)
    got = distribution_matching_loss(e, a, related, binary=True, kl=True, aus="related", reduction="mean")
    # independent reference in float64 numpy
    pe = np.exp(e.double().numpy())
    pe /= pe.sum(1, keepdims=True)
    p = 1 / (1 + np.exp(-a.double().numpy()))
    q = pe @ related.double().numpy()
    cols = related.numpy().sum(0) > 0
    assert not cols[au_index(14)] and cols.sum() == NUM_AU - 1
    kl = p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))
    assert got.item() == pytest.approx(kl[:, cols].mean(1).mean(), rel=1e-5)


def test_matched_form_leaves_unrelated_aus_without_gradient(related):
    e = torch.randn(3, NUM_EXPR, requires_grad=True)
    a = torch.randn(3, NUM_AU, requires_grad=True)
    distribution_matching_loss(e, a, related, binary=True, kl=True, aus="related", reduction="mean").backward()
    assert torch.all(a.grad[:, au_index(14)] == 0)
    assert torch.all(a.grad[:, au_index(12)] != 0) and torch.all(e.grad.abs().sum(-1) > 0)


def test_matched_form_is_zero_when_au_predictions_equal_the_mixture(related):
    e = torch.randn(5, NUM_EXPR)
    q = (e.softmax(-1) @ related).clamp(1e-4, 1 - 1e-4)
    a = torch.logit(q)
    got = distribution_matching_loss(e, a, related, binary=True, kl=True, aus="related", reduction="mean")
    assert got.item() == pytest.approx(0.0, abs=1e-5)


def test_unknown_dm_form_is_a_clear_error():
    with pytest.raises(ValueError, match="dm_form must be one of"):
        MultiTaskLoss(dm_form="kl")
