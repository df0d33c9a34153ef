"""A step's frame rows (``affect.data.batches.FrameRows``): the valid frames of a sequence batch, made
once per step and read by the loss, the metrics and the evaluation callbacks."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from affect.data.batches import FrameRows
from affect.losses import MultiTaskLoss
from affect.models.callbacks import EvaluationFigures, SequenceMedianEvaluation
from affect.models.mt_vgg_gru import MTVGGGRUModule

TINY = dict(backbone="test_resnet", hidden=16, rnn_hidden=8, image_size=32)
AU_SET = (1, 2, 4, 6, 12, 15, 20, 25)


def seq_batch(b: int = 3, t: int = 5, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    frame_mask = torch.ones(b, t, dtype=torch.bool)
    frame_mask[-1, 2:] = False
    frame_mask[0, -1] = False
    return {
        "image": torch.randint(0, 256, (b, t, 3, 32, 32), generator=g, dtype=torch.uint8),
        "va": torch.rand(b, t, 2, generator=g) * 2 - 1,
        "va_mask": torch.rand(b, t, 2, generator=g) > 0.2,
        "expr": torch.randint(-1, 7, (b, t), generator=g),
        "au": (torch.rand(b, t, len(AU_SET), generator=g) > 0.5).float(),
        "au_mask": torch.rand(b, t, len(AU_SET), generator=g) > 0.3,
        "frame_mask": frame_mask,
        "video": [f"v{i}" for i in range(b)],
    }


def seq_outputs(b: int = 3, t: int = 5, seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "va": torch.randn(b, t, 2, generator=g).requires_grad_(),
        "expr": torch.randn(b, t, 7, generator=g).requires_grad_(),
        "au": torch.randn(b, t, len(AU_SET), generator=g).requires_grad_(),
    }


def test_rows_are_the_boolean_selection_of_the_valid_frames_and_carry_the_gradient():
    batch, outputs = seq_batch(), seq_outputs()
    mask = batch["frame_mask"]
    rows = FrameRows.of(outputs, batch)
    assert rows.rows == int(mask.sum()) == 11
    for key, value in outputs.items():
        assert torch.equal(rows.outputs[key], value[mask]), key
    for key in ("va", "va_mask", "expr", "au", "au_mask"):
        assert torch.equal(rows.batch[key], batch[key][mask]), key
    assert rows.batch["image"] is batch["image"] and rows.batch["video"] == batch["video"]
    assert rows.batch["frame_mask"] is mask
    weights = torch.arange(11.0)[:, None]
    (weights * rows.outputs["expr"]).sum().backward()
    reference = torch.zeros(3, 5, 7)
    reference[mask] = weights.expand(11, 7)
    assert torch.equal(outputs["expr"].grad, reference)
    assert not rows.detach().outputs["va"].requires_grad and rows.outputs["va"].requires_grad


def test_frame_batches_pass_through_and_unmasked_sequences_keep_every_frame():
    frame = {"va": torch.zeros(4, 2), "expr": torch.tensor([0, 1, 2, -1])}
    outputs = {"va": torch.ones(4, 2), "expr": torch.zeros(4, 7)}
    rows = FrameRows.of(outputs, frame)
    assert rows.outputs["va"] is outputs["va"] and rows.batch["expr"] is frame["expr"] and rows.rows == 4
    seq = {"expr": torch.arange(6).view(2, 3)}
    rows = FrameRows.of({"expr": torch.arange(42.0).view(2, 3, 7)}, seq)
    assert rows.batch["expr"].tolist() == [0, 1, 2, 3, 4, 5] and rows.outputs["expr"].shape == (6, 7)


def test_shapes_that_do_not_match_the_frame_mask_are_named():
    batch = seq_batch()
    with pytest.raises(ValueError, match=r"output 'va' has shape \(3, 2\)"):
        FrameRows.of({"va": torch.zeros(3, 2)}, batch)
    with pytest.raises(ValueError, match=r"target 'expr' has shape \(3, 4\)"):
        FrameRows.of(seq_outputs(), {**batch, "expr": torch.zeros(3, 4, dtype=torch.long)})


def test_the_loss_on_rows_is_the_loss_on_the_batch():
    loss = MultiTaskLoss(au_set=AU_SET, relatedness="du2014", co_annotation=True, distribution_matching=True,
                         soft_co_annotation=True)  # fmt: skip
    batch, outputs = seq_batch(seed=3), seq_outputs(seed=4)
    on_batch = loss(outputs, batch)
    on_rows = loss(FrameRows.of(outputs, batch))
    assert sorted(on_rows) == sorted(on_batch) == ["au", "dm", "expr", "loss", "soft", "va"]
    for key in on_batch:
        torch.testing.assert_close(on_rows[key], on_batch[key])
    with pytest.raises(TypeError, match="either"):
        loss(FrameRows.of(outputs, batch), batch)
    with pytest.raises(TypeError, match="batch is missing"):
        loss(outputs)


def test_each_step_of_a_sequence_model_flattens_once(monkeypatch, tmp_path):
    """Loss, metric updates and the figures' VA rows share one FrameRows per step, training and validation."""
    made: list[int] = []
    of = FrameRows.of.__func__

    def counting(cls, outputs, batch):
        rows = of(cls, outputs, batch)
        made.append(rows.rows)
        return rows

    monkeypatch.setattr(FrameRows, "of", classmethod(counting))
    torch.manual_seed(0)
    module = MTVGGGRUModule(**TINY)
    batches = [seq_batch(seed=s) for s in range(3)]
    figures = EvaluationFigures()
    kept: list[int] = []
    keep = figures._keep_va
    monkeypatch.setattr(figures, "_keep_va", lambda step: (keep(step), kept.append(sum(len(p) for p, _ in figures._va))))
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False, default_root_dir=tmp_path,
                        callbacks=[SequenceMedianEvaluation(), figures])  # fmt: skip
    trainer.validate(module, DataLoader(batches, batch_size=None), verbose=False)
    assert made == [11, 11, 11]
    both = [int((b["va_mask"].all(-1) & b["frame_mask"]).sum()) for b in batches]
    assert kept == [both[0], both[0] + both[1], sum(both)]  # the figures kept the rows' fully annotated VA frames
    assert {"val/loss", "val/va/ccc", "val/expr/f1", "val/au/f1", "val/va_median/ccc"} <= set(trainer.callback_metrics)
    made.clear()
    fit = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                    enable_checkpointing=False, default_root_dir=tmp_path, max_steps=2, limit_val_batches=0)  # fmt: skip
    fit.fit(module, DataLoader(batches[:2], batch_size=None))
    assert made == [11, 11]
