"""Eq. 10 on hand-built cases."""

from __future__ import annotations

import pytest
import torch

from affect.labels import AU_SET, EXPR_CLASSES, RAFDB_COMPOUND_CLASSES
from affect.models.compound import compound_au_table, compound_scores, predict_compound
from affect.relatedness import CompoundClass, load_compound_classes

RAF = load_compound_classes(RAFDB_COMPOUND_CLASSES)


def probs(aus=(), expr=None):
    au = torch.zeros(1, len(AU_SET))
    for a, p in dict(aus).items():
        au[0, AU_SET.index(a)] = p
    e = torch.zeros(1, len(EXPR_CLASSES))
    for name, p in (expr or {}).items():
        e[0, EXPR_CLASSES.index(name)] = p
    return au, e


def test_hand_computed_scores():
    # AU1, AU2 on (p = 0.8, 0.6), AU12 0.4; expression: Happiness 0.5, Surprise 0.3, Fear 0.2; valence +0.2
    au, expr = probs({1: 0.8, 2: 0.6, 12: 0.4}, {"Happiness": 0.5, "Surprise": 0.3, "Fear": 0.2})
    s = compound_scores(au, expr, torch.tensor([0.2]), RAF)[0]
    names = list(RAFDB_COMPOUND_CLASSES)
    # Happily Surprised: AUs 1, 2, 12, 25 -> (0.8 + 0.6 + 0.4 + 0) / 4 = 0.45; emo 0.5 + 0.3; valence +1
    assert s[names.index("Happily Surprised")].item() == pytest.approx(0.45 + 0.8 + 1.0)
    # Fearfully Surprised: AUs 1, 2, 5, 20, 25 -> 1.4 / 5; Fear + Surprise = 0.5; no valence term
    assert s[names.index("Fearfully Surprised")].item() == pytest.approx(0.28 + 0.5)
    # Sadly Angry: AUs 4, 15 -> 0; Sadness + Anger = 0
    assert s[names.index("Sadly Angry")].item() == pytest.approx(0.0)
    assert predict_compound(au, expr, torch.tensor([0.2]), RAF).item() == names.index("Happily Surprised")


def test_valence_sign_switches_happy_classes_off():
    au, expr = probs({4: 0.9, 15: 0.9}, {"Sadness": 0.6, "Anger": 0.3, "Happiness": 0.1})
    neg = compound_scores(au, expr, torch.tensor([-0.5]), RAF)[0]
    pos = compound_scores(au, expr, torch.tensor([0.5]), RAF)[0]
    diff = (pos - neg).tolist()
    assert diff[0] == 1.0 and diff[1] == 1.0 and all(d == 0 for d in diff[2:])
    assert RAFDB_COMPOUND_CLASSES[int(neg.argmax())] == "Sadly Angry"


def test_sum_variant_and_bad_inputs():
    au, expr = probs({10: 1.0, 12: 1.0, 25: 1.0})
    mean = compound_scores(au, expr, torch.tensor([-1.0]), RAF)[0, 1]
    total = compound_scores(au, expr, torch.tensor([-1.0]), RAF, au_term="sum")[0, 1]
    assert mean.item() == 1.0 and total.item() == 3.0
    with pytest.raises(ValueError, match="au_probs has 8 AUs"):
        compound_scores(torch.zeros(1, 8), expr, torch.zeros(1), RAF)
    with pytest.raises(ValueError, match="none of its AUs"):
        compound_au_table([CompoundClass("odd", (11,), ("Anger", "Fear"), False)])
