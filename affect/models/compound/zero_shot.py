"""Zero-shot compound expressions from FaceBehaviorNet's outputs (paper eq. 10, Table VI).

For every compound class c with prototypical AUs ``AU(c)`` and basic components emo1, emo2
(Du, Tao & Martinez 2014; ``affect.relatedness.load_compound_classes``), the candidate score is

    C_s(c) = mean_{k in AU(c)} p(AU_k | x)  +  p(emo1 | x) + p(emo2 | x)  +  [c has positive valence] * 0.5 (sign(v) + 1)

and the prediction is the class with the largest score.

About the first term: as typeset, eq. 10 divides ``sum_k p(AU_k | c)`` by
``sum_k p(AU_k | x) p(AU_k | c)``, which would *reward* classes whose AUs are predicted
absent. The text says the term is "FaceBehaviorNet's predictions of only the prototypical
(and observational) AUs that are associated with this compound class", so we implement the
reading the text describes: the predictions of the class's AUs, normalised by their number
(``sum_k p(AU_k|x) p(AU_k|c) / sum_k p(AU_k|c)``), which keeps it in [0, 1] like the other
terms. ``au_term="sum"`` gives the unnormalised sum instead.

The valence term is added only to classes marked ``positive_valence`` (Happily Surprised,
Happily Disgusted): 1 when the predicted valence is positive, 0 when negative (0.5 at
exactly 0, where eq. 10 is undefined).

>>> import torch
>>> from affect.relatedness import load_compound_classes
>>> classes = load_compound_classes(["Happily Surprised", "Sadly Angry"])
>>> au = torch.zeros(1, 17); expr = torch.zeros(1, 7)
>>> compound_scores(au, expr, torch.tensor([0.3]), classes).tolist()   # only the valence term fires
[[1.0, 0.0]]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

from affect.labels import AU_SET, EXPR_CLASSES, RAFDB_COMPOUND_CLASSES
from affect.relatedness import CompoundClass, load_compound_classes, load_relatedness


def compound_au_table(classes: Sequence[CompoundClass], au_set: Sequence[int] = AU_SET) -> torch.Tensor:
    """``[K, A]`` 0/1 matrix ``p(AU_k | c)`` over ``au_set``; classes need >= 1 AU in the set."""
    position = {a: i for i, a in enumerate(au_set)}
    table = torch.zeros(len(classes), len(au_set))
    for c_idx, c in enumerate(classes):
        inside = [position[a] for a in c.aus if a in position]
        if not inside:
            raise ValueError(f"compound class {c.name!r}: none of its AUs {list(c.aus)} is in the AU set {list(au_set)}")
        table[c_idx, inside] = 1.0
    return table


def compound_scores(
    au_probs: torch.Tensor,
    expr_probs: torch.Tensor,
    valence: torch.Tensor,
    classes: Sequence[CompoundClass],
    au_set: Sequence[int] = AU_SET,
    au_term: Literal["mean", "sum"] = "mean",
) -> torch.Tensor:
    """Eq. 10 candidate scores ``[N, K]`` from AU probabilities ``[N, A]``, EXPR probabilities
    ``[N, 7]`` (canonical order) and predicted valence ``[N]``."""
    if au_probs.shape[-1] != len(au_set):
        raise ValueError(f"au_probs has {au_probs.shape[-1]} AUs but the AU set has {len(au_set)}")
    if expr_probs.shape[-1] != len(EXPR_CLASSES):
        raise ValueError(f"expr_probs must have {len(EXPR_CLASSES)} columns, got {expr_probs.shape[-1]}")
    table = compound_au_table(classes, au_set).to(au_probs)
    au_score = au_probs @ table.T
    if au_term == "mean":
        au_score = au_score / table.sum(dim=1)
    components = torch.tensor([[EXPR_CLASSES.index(e) for e in c.components] for c in classes], device=au_probs.device)
    emo_score = expr_probs[:, components].sum(dim=-1)
    positive = torch.tensor([c.positive_valence for c in classes], dtype=au_probs.dtype, device=au_probs.device)
    valence_score = 0.5 * (torch.sign(valence.reshape(-1, 1)) + 1.0) * positive
    return au_score + emo_score + valence_score


def predict_compound(
    au_probs: torch.Tensor, expr_probs: torch.Tensor, valence: torch.Tensor,
    classes: Sequence[CompoundClass], au_set: Sequence[int] = AU_SET, au_term: Literal["mean", "sum"] = "mean",
) -> torch.Tensor:
    """Index into ``classes`` of the highest eq. 10 score, per sample."""
    return compound_scores(au_probs, expr_probs, valence, classes, au_set, au_term).argmax(dim=-1)


def resolve_compound_classes(
    names: Sequence[str] | None = None, path: str | None = None
) -> list[CompoundClass]:
    """Eq. 10 class definitions for ``names`` (default RAF-DB's 11), in that order.

    Names in the compound table (``compound_du2014``, or the JSON file ``path``) come from it; a
    basic emotion name outside it (EmotioNet's basic classes) is built from the prototypical AUs of
    Table V (``du2014``) with components ``(emotion, emotion)``; Happiness has positive valence.
    Anything else is an error naming the known classes.
    """
    names = list(RAFDB_COMPOUND_CLASSES if names is None else names)
    if not names:
        raise ValueError("classes must name at least one compound class")
    if len(set(names)) != len(names):
        raise ValueError(f"classes must not repeat a name, found {names}")
    table = {c.name: c for c in load_compound_classes(None, path)}
    relatedness = load_relatedness("du2014")
    out: list[CompoundClass] = []
    for name in names:
        if name in table:
            out.append(table[name])
        elif name in EXPR_CLASSES and relatedness.prototypical.get(name):
            aus = tuple(relatedness.prototypical[name])
            out.append(CompoundClass(name, aus, (name, name), name == "Happiness"))
        else:
            basic = [e for e in EXPR_CLASSES if relatedness.prototypical.get(e)]
            raise ValueError(
                f"unknown compound class {name!r}: expected one of the compound table's classes "
                f"{sorted(table)} or a basic emotion {basic}"
            )
    return out
