"""A Lightning training step of FaceBehaviorNet never waits for the device (issue 13, item 1).

Real ``Trainer.fit`` steps of a tiny FaceBehaviorNet on generated VA / AU / EXPR domain batches (CPU).
Every aten op of the steps after the first (forward, loss, metric updates, logging, backward,
optimiser) goes through :class:`affect.profiling.HostSyncCounter`, which records the ops that make the
host wait for a CUDA device (``.item()`` / ``bool(t)``, ``nonzero``, bool-mask indexing, ``unique``,
``bincount``, tensors built from Python data); backward ops are attributed to the forward line that
built them (anomaly mode keeps the tracebacks).
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from helpers.toy_datamodule import make_frames
from torch.utils.data import DataLoader, Dataset

from affect.losses import MultiTaskLoss
from affect.models.facebehaviornet import FaceBehaviorNetModule
from affect.profiling import HostSyncCounter

TINY = {"backbone": "test_resnet", "hidden": 16, "image_size": 16}
DOMAINS = {"va": (6, ("va",)), "au": (4, ("au",)), "expr": (3, ("expr",))}
STEPS = 3
PENDING: tuple[str, ...] = ()  # none left (expr_ce_loss's class-id check is off in MultiTaskLoss)


class DomainBatches(Dataset):
    """``STEPS`` generated domain batches ``{"va": ..., "au": ..., "expr": ...}`` (fixed sizes, as Fig. 4)."""

    def __init__(self, with_expr_labels: bool = True) -> None:
        self.batches = []
        for step in range(STEPS):
            batch = {d: make_frames(n, 16, 17, 10 * step + i, annotate) for i, (d, (n, annotate)) in enumerate(DOMAINS.items())}
            if not with_expr_labels:
                batch["expr"]["expr"] = torch.full_like(batch["expr"]["expr"], -1)
            self.batches.append(batch)

    def __len__(self) -> int:
        return STEPS

    def __getitem__(self, i: int) -> dict:
        return self.batches[i]


class CountAfterFirstStep(L.Callback):
    """Counts the ops of every training step but the first (which builds states and optimiser slots)."""

    def __init__(self, counter: HostSyncCounter) -> None:
        self.counter, self.steps = counter, 0

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if batch_idx >= 1:
            # anomaly mode keeps each autograd node's forward traceback (backward syncs get their line);
            # inside the hooks because the Trainer sets its own anomaly mode around fit
            torch.autograd.set_detect_anomaly(True, check_nan=False)
            self.counter.start()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if self.counter.active:
            self.steps += 1
            torch.autograd.set_detect_anomaly(False)
        self.counter.stop()


def run_steps(module: L.LightningModule, data: Dataset, tmp_path) -> tuple[HostSyncCounter, int]:
    counter = HostSyncCounter()
    counter.stop()
    callback = CountAfterFirstStep(counter)
    trainer = L.Trainer(
        accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
        default_root_dir=tmp_path, callbacks=[callback],
    )  # fmt: skip
    with counter:
        trainer.fit(module, DataLoader(data, batch_size=None))
    return counter, callback.steps


def not_pending(counter: HostSyncCounter) -> list[str]:
    return [w for w in counter.where() if not w.endswith(PENDING)]


LOSSES = {  # eq. 7's terms run in both; the default loss (no coupling) is the control's below
    "coupled": {"co_annotation": True, "distribution_matching": True, "soft_co_annotation": True},
    "printed_dm_weighted": {"distribution_matching": True, "dm_form": "printed", "weighted_dm": True,
                            "soft_co_annotation": True, "neutral_score": None},  # fmt: skip
}


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_training_step_has_no_host_sync(loss, tmp_path):
    torch.manual_seed(0)
    module = FaceBehaviorNetModule(**TINY, loss=MultiTaskLoss(**LOSSES[loss]))
    counter, steps = run_steps(module, DomainBatches(), tmp_path)
    assert steps == STEPS - 1
    ops = counter.ops
    # the counter saw the whole step: forward, backward, the metrics' counts and Adam
    assert ops["aten.convolution.default"] and ops["aten.convolution_backward.default"], sorted(ops)
    assert any("adam" in op for op in ops), sorted(ops)
    assert not_pending(counter) == [], "\n".join(counter.where())


def test_mt_vgg_step_narrowing_the_au_set_has_no_host_sync(tmp_path):
    """MT-VGG's 8 ABAW 2020 AUs are narrowed from the batches' 17 on every step (no index from a Python list)."""
    from affect.models.mt_vgg import MTVGGModule

    torch.manual_seed(0)
    module = MTVGGModule(**TINY)
    assert len(module.au_set) == 8
    counter, steps = run_steps(module, DomainBatches(), tmp_path)
    assert steps == STEPS - 1
    assert not_pending(counter) == [], "\n".join(counter.where())


def test_no_sync_when_a_domain_has_no_labels(tmp_path):
    """Empty subsets (here: no EXPR label at all) are handled without a branch on tensor values."""
    torch.manual_seed(0)
    module = FaceBehaviorNetModule(**TINY, loss=MultiTaskLoss(**LOSSES["coupled"]))
    counter, _ = run_steps(module, DomainBatches(with_expr_labels=False), tmp_path)
    assert not_pending(counter) == [], "\n".join(counter.where())


def test_the_harness_finds_a_sync_and_its_line(tmp_path):
    """Control: a ``.item()`` in the step and a bool-mask selection that is backpropagated are both found."""
    torch.manual_seed(0)
    module = FaceBehaviorNetModule(**TINY)
    shared_step = module.shared_step

    def syncing_step(stage, rows, tasks):
        loss = shared_step(stage, rows, tasks)
        outputs = rows.outputs
        picked = outputs["va"][outputs["va"][:, 0] > -10].sum()  # bool mask: forward and backward
        module.log("loss_value", loss.item())
        return loss + 0 * picked

    module.shared_step = syncing_step
    counter, steps = run_steps(module, DomainBatches(), tmp_path)
    where = "\n".join(not_pending(counter))
    lines = Path(__file__).read_text().splitlines()
    line = {tag: next(i + 1 for i, text in enumerate(lines) if text.strip().startswith(start))
            for tag, start in (("picked =", "picked = outputs"), ("loss.item()", 'module.log("loss_value"'))}  # fmt: skip
    assert f"{steps}x aten._local_scalar_dense.default at test_step_syncs.py:{line['loss.item()']} syncing_step" in where
    assert f"{steps}x aten.index.Tensor[bool] at test_step_syncs.py:{line['picked =']} syncing_step" in where
    assert f"{steps}x aten.index_put.default[bool] at backward of test_step_syncs.py:{line['picked =']} syncing_step" in where


def test_epoch_means_of_the_loss_terms(tmp_path):
    """``train/{term}/loss`` (one device-side update per step, logged at the epoch's end) is the batch-size
    weighted mean of the step values, as ``self.log(on_epoch=True)`` per term gave before."""
    torch.manual_seed(0)
    module = FaceBehaviorNetModule(**TINY, loss=MultiTaskLoss(**LOSSES["coupled"]))
    seen: list[tuple[int, dict]] = []
    loss_fn = module.loss_fn.forward

    def recording(rows):  # the step hands the loss its FrameRows
        terms = loss_fn(rows)
        if module.training:
            seen.append((len(rows.batch["image"]), {k: float(v) for k, v in terms.items()}))
        return terms

    module.loss_fn.forward = recording
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(module, DataLoader(DomainBatches(), batch_size=None))
    assert len(seen) == STEPS
    total = sum(n for n, _ in seen)
    for name in ("loss", "va", "expr", "au", "dm", "soft"):
        expected = sum(n * terms[name] for n, terms in seen) / total
        key = "train/loss" if name == "loss" else f"train/{name}/loss"
        assert trainer.callback_metrics[key].item() == pytest.approx(expected, rel=1e-6), key
