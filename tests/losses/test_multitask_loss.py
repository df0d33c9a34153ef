"""MultiTaskLoss: eq. 7 plus the coupling terms, partial batches, sequences, buffers."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from affect.labels import NUM_AU, au_index, expr_index
from affect.losses import (
    MultiTaskLoss,
    au_bce_loss,
    ccc_loss,
    co_annotate,
    distribution_matching_loss,
    expr_ce_loss,
    relatedness_tables,
    soft_co_annotation_loss,
    soft_co_annotation_targets,
)
from affect.relatedness import load_relatedness

ABAW8 = (1, 2, 4, 6, 12, 15, 20, 25)


def make(**kw) -> MultiTaskLoss:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # AU11 dropped from du2014
        return MultiTaskLoss(**kw)


def outputs(b: int, a: int = NUM_AU, seed: int = 0, t: int | None = None) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lead = (b,) if t is None else (b, t)
    return {
        "va": torch.tanh(torch.randn(*lead, 2, generator=g)).requires_grad_(True),
        "expr": torch.randn(*lead, 7, generator=g).requires_grad_(True),
        "au": torch.randn(*lead, a, generator=g).requires_grad_(True),
    }


def batch(b: int, a: int = NUM_AU, seed: int = 1, t: int | None = None) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lead = (b,) if t is None else (b, t)
    return {
        "va": torch.rand(*lead, 2, generator=g) * 2 - 1,
        "va_mask": torch.rand(*lead, 2, generator=g) > 0.3,
        "expr": torch.randint(-1, 7, lead, generator=g),
        "au": (torch.rand(*lead, a, generator=g) > 0.5).float(),
        "au_mask": torch.rand(*lead, a, generator=g) > 0.4,
    }


def all_grads_finite(out: dict[str, torch.Tensor]) -> bool:
    return all(v.grad is None or torch.isfinite(v.grad).all() for v in out.values())


def test_default_terms_and_total_match_functionals():
    loss = make(lambda_au=0.5, lambda_va=2.0)
    o, b = outputs(8), batch(8)
    res = loss(o, b)
    assert sorted(res) == ["au", "expr", "loss", "va"]
    torch.testing.assert_close(res["expr"], expr_ce_loss(o["expr"], b["expr"]))
    torch.testing.assert_close(res["au"], au_bce_loss(o["au"], b["au"], b["au_mask"]))
    torch.testing.assert_close(res["va"], ccc_loss(o["va"], b["va"], b["va_mask"]))
    torch.testing.assert_close(res["loss"], res["expr"] + 0.5 * res["au"] + 2.0 * res["va"])


def test_all_couplings_total_matches_functionals():
    loss = make(
        co_annotation=True,
        distribution_matching=True,
        soft_co_annotation=True,
        lambda_dm=0.3,
        lambda_soft=0.7,
        dm_form="printed",
        weighted_dm=True,
        neutral_score=None,
        soft_temperature=2.0,
    )
    o, b = outputs(10, seed=2), batch(10, seed=3)
    res = loss(o, b)
    assert sorted(res) == ["au", "dm", "expr", "loss", "soft", "va"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rel = load_relatedness("du2014")
        e, a, w = co_annotate(b["expr"], b["au"], b["au_mask"], rel)
        _, weights = relatedness_tables(rel)
        soft, valid = soft_co_annotation_targets(
            b["au"], b["au_mask"], rel, neutral_score=None, temperature=2.0
        )
    torch.testing.assert_close(res["expr"], expr_ce_loss(o["expr"], e))
    torch.testing.assert_close(res["au"], au_bce_loss(o["au"], a, w))
    torch.testing.assert_close(
        res["dm"], distribution_matching_loss(o["expr"], o["au"], weights)
    )
    torch.testing.assert_close(res["soft"], soft_co_annotation_loss(o["expr"], soft, valid))
    expected = res["expr"] + res["au"] + res["va"] + 0.3 * res["dm"] + 0.7 * res["soft"]
    torch.testing.assert_close(res["loss"], expected)
    res["loss"].backward()
    assert all_grads_finite(o)


def test_expr_only_batch_gives_zero_other_terms_and_backward_works():
    loss = make(distribution_matching=True, soft_co_annotation=True)
    o = outputs(4)
    res = loss(o, {"expr": torch.tensor([0, 4, -1, 6])})
    assert res["au"].item() == 0.0 and res["va"].item() == 0.0 and res["soft"].item() == 0.0
    assert res["dm"].item() > 0  # distribution matching uses every sample
    res["loss"].backward()
    assert all_grads_finite(o)
    assert torch.equal(o["va"].grad, torch.zeros(4, 2))


def test_all_masks_false_is_finite_zero():
    loss = make(co_annotation=True, soft_co_annotation=True)
    o = outputs(3)
    b = {
        "va": torch.full((3, 2), float("nan")),
        "va_mask": torch.zeros(3, 2, dtype=torch.bool),
        "expr": torch.full((3,), -1),
        "au": torch.zeros(3, NUM_AU),
        "au_mask": torch.zeros(3, NUM_AU, dtype=torch.bool),
    }
    res = loss(o, b)
    for k in ("expr", "au", "va", "soft", "loss"):
        assert res[k].item() == 0.0, k
    res["loss"].backward()
    assert all(torch.equal(v.grad, torch.zeros_like(v)) for v in o.values())


def test_masked_targets_do_not_change_the_loss():
    loss = make(co_annotation=True, distribution_matching=True, soft_co_annotation=True)
    o, b = outputs(6, seed=4), batch(6, seed=5)
    base = loss(o, b)["loss"]
    changed = dict(b)
    changed["va"] = torch.where(b["va_mask"], b["va"], torch.full_like(b["va"], 7.0))
    changed["au"] = torch.where(b["au_mask"], b["au"], 1 - b["au"])
    torch.testing.assert_close(loss(o, changed)["loss"], base)


def test_co_annotation_makes_expr_samples_train_the_au_head():
    loss = make(co_annotation=True)
    o = outputs(2, seed=6)
    res = loss(o, {"expr": torch.tensor([expr_index("Happiness"), -1])})
    assert res["au"].item() > 0
    res["loss"].backward()
    touched = (o["au"].grad[0] != 0).nonzero().flatten().tolist()
    assert sorted(touched) == sorted(au_index(a) for a in (6, 12, 25))
    assert torch.equal(o["au"].grad[1], torch.zeros(NUM_AU))


def test_sequence_outputs_flatten_valid_frames():
    loss = make(distribution_matching=True, soft_co_annotation=True, co_annotation=True)
    o, b = outputs(2, t=5, seed=7), batch(2, t=5, seed=8)
    b["frame_mask"] = torch.tensor([[True] * 5, [True, True, False, False, False]])
    res = loss(o, b)
    sel = b["frame_mask"]
    flat_o = {k: v[sel] for k, v in o.items()}
    flat_b = {k: v[sel] for k, v in b.items() if k != "frame_mask"}
    ref = loss(flat_o, flat_b)
    for k in res:
        torch.testing.assert_close(res[k], ref[k])
    # padded frames: changing them changes nothing
    o2 = {k: v.detach().clone() for k, v in o.items()}
    o2["va"][1, 3:] = 5.0
    o2["expr"][1, 4] = 100.0
    torch.testing.assert_close(loss(o2, b)["loss"], res["loss"].detach())
    res["loss"].backward()
    assert torch.equal(o["expr"].grad[1, 2:], torch.zeros(3, 7))


def test_sequence_without_frame_mask_uses_every_frame():
    loss = make()
    o, b = outputs(2, t=3, seed=9), batch(2, t=3, seed=10)
    ref = loss(
        {k: v.reshape(6, -1) for k, v in o.items()}, {k: v.reshape(6, *v.shape[2:]) for k, v in b.items()}
    )
    torch.testing.assert_close(loss(o, b)["loss"], ref["loss"])


def test_buffers_follow_to_and_stay_out_of_state_dict():
    loss = make(distribution_matching=True).to(torch.float64)
    assert loss.related.dtype == torch.float64 and loss.weights.dtype == torch.float64
    assert loss.state_dict() == {}
    o = {k: v.detach().double().requires_grad_(True) for k, v in outputs(3).items()}
    res = loss(o, batch(3))
    assert res["loss"].dtype == torch.float64


def test_affwild2_and_json_path_and_abaw8_au_set(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(load_relatedness("affwild2").to_json()))
    o, b = outputs(5, a=8, seed=11), batch(5, a=8, seed=12)
    results = []
    for rel in ("affwild2", str(path)):
        loss = make(
            relatedness=rel,
            au_set=ABAW8,
            distribution_matching=True,
            soft_co_annotation=True,
            co_annotation=True,
        )
        assert loss.related.shape == (7, 8)
        results.append(loss(o, b)["loss"])
    torch.testing.assert_close(results[0], results[1])
    assert torch.isfinite(results[0])


def test_relatedness_none_only_without_coupling():
    MultiTaskLoss(relatedness=None)  # fine: nothing needs the table
    with pytest.raises(ValueError, match="relatedness=None but a coupling loss is on"):
        MultiTaskLoss(relatedness=None, distribution_matching=True)
    with pytest.raises(ValueError, match="relatedness must be one of"):
        MultiTaskLoss(relatedness="nope", soft_co_annotation=True)


def test_constructor_and_forward_errors():
    with pytest.raises(ValueError, match="dm_grad must be"):
        MultiTaskLoss(dm_grad="p")
    with pytest.raises(ValueError, match="lambda_au must be >= 0"):
        MultiTaskLoss(lambda_au=-1.0)
    loss = make(distribution_matching=True)
    with pytest.raises(ValueError, match="AU head has 8 outputs but au_set has 17"):
        loss(outputs(2, a=8), {})
    with pytest.raises(ValueError, match="need both 'expr' and 'au'"):
        loss({"va": torch.zeros(2, 2)}, {})
    with pytest.raises(ValueError, match="outputs hold none of"):
        MultiTaskLoss(relatedness=None)({"logits": torch.zeros(2, 2)}, {})
    with pytest.raises(ValueError, match=r"batch\['au'\] has shape \(2, 8\), expected \(2, 17\)"):
        MultiTaskLoss(relatedness=None)(outputs(2), {"au": torch.zeros(2, 8)})


def test_missing_masks_default_to_finite_targets():
    loss = make()
    o = outputs(4, seed=13)
    va = torch.tensor([[0.1, float("nan")], [0.4, 0.2], [-0.3, float("nan")], [0.0, 0.5]])
    res = loss(o, {"va": va})
    torch.testing.assert_close(res["va"], ccc_loss(o["va"], va, torch.isfinite(va)))


def test_bfloat16_outputs_give_a_float32_finite_loss():
    loss = make(co_annotation=True, distribution_matching=True, soft_co_annotation=True)
    o = {k: v.detach().bfloat16().requires_grad_(True) for k, v in outputs(6, seed=14).items()}
    res = loss(o, batch(6, seed=15))
    assert res["loss"].dtype == torch.float32 and torch.isfinite(res["loss"])
    res["loss"].backward()
    assert all(torch.isfinite(v.grad.float()).all() for v in o.values())
