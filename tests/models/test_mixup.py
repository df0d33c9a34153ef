"""Mixup (``mixup_alpha``, MultiTaskModule.mixup_step): mixed faces, and the loss of both labels."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from helpers.toy_datamodule import FrameDictDataset, make_frames
from helpers.toy_datamodule import tiny_trainer as trainer
from sklearn.metrics import log_loss
from torch.utils.data import DataLoader

from affect.errors import ConfigError
from affect.losses import MultiTaskLoss
from affect.models.facebehaviornet import FaceBehaviorNetModule

TINY = {"backbone": "test_resnet", "hidden": 32, "image_size": 32}


def draws(seed: int, alpha: float, n: int) -> tuple[float, torch.Tensor]:
    """The mixing weight and permutation a step draws after ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    return lam, torch.randperm(n)


def training_loss(module, batch, seed: int) -> tuple[float, dict]:
    """``training_step``'s loss after ``torch.manual_seed(seed)``, and the batch the network saw."""
    seen = {}
    forward = module.forward_batch

    def spy(b):
        seen.update(b)
        return forward(b)

    module.forward_batch = spy
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # self.log without a trainer
        loss = module.training_step(batch, 0)
    return float(loss), seen


def test_expression_loss_is_the_mix_of_both_labels_cross_entropies():
    """Images ``round(lam x + (1 - lam) x[perm])``; loss ``lam CE(y) + (1 - lam) CE(y[perm])``
    (sklearn's log loss on the network's softmax as the reference)."""
    module = FaceBehaviorNetModule(**TINY, tasks=["expr"], mixup_alpha=0.4).eval()  # eval: no dropout
    data = make_frames(16, 32, 17, 3, ("expr",))
    loss, seen = training_loss(module, data, seed=5)
    lam, perm = draws(5, 0.4, 16)
    assert 0.0 < lam < 1.0 and not torch.equal(perm, torch.arange(16))
    x = data["image"].float()
    expected = (lam * x + (1 - lam) * x[perm]).round().to(torch.uint8)
    assert seen["image"].dtype == torch.uint8 and torch.equal(seen["image"], expected)
    with torch.no_grad():
        p = module.forward_batch({**data, "image": expected})["expr"].double().softmax(-1).numpy()
    y = data["expr"].numpy()
    labels = list(range(7))
    reference = lam * log_loss(y, p, labels=labels) + (1 - lam) * log_loss(y[perm.numpy()], p, labels=labels)
    assert loss == pytest.approx(reference, rel=1e-5)


def test_each_label_is_learned_with_its_own_mask():
    """A batch of VA-only and AU-only faces: the second term reads the shuffled faces' labels with their
    own masks (a VA face mixed with an AU face learns VA from one and AU from the other)."""
    module = FaceBehaviorNetModule(**TINY, mixup_alpha=1.0).eval()
    va = make_frames(8, 32, 17, 1, ("va",))
    au = make_frames(8, 32, 17, 2, ("au",))
    data = {k: torch.cat([va[k], au[k]]) if isinstance(va[k], torch.Tensor) else va[k] + au[k] for k in va}
    loss, seen = training_loss(module, data, seed=11)
    lam, perm = draws(11, 1.0, 16)
    loss_fn = MultiTaskLoss(au_set=module.au_set, relatedness=None)
    shuffled = {k: v[perm] if k in ("va", "va_mask", "expr", "au", "au_mask") else v for k, v in data.items()}
    with torch.no_grad():
        out = module.forward_batch({**data, "image": seen["image"]})
        first = loss_fn(out, data)["loss"]
        second = loss_fn(out, shuffled)["loss"]
    assert not torch.isclose(first, second)  # the labels the shuffled faces bring change the loss
    assert loss == pytest.approx(float(lam * first + (1 - lam) * second), rel=1e-5)


def test_off_by_default_and_alpha_zero_is_the_plain_step():
    data = make_frames(8, 32, 17, 4, ("expr",))
    torch.manual_seed(0)
    plain = FaceBehaviorNetModule(**TINY, tasks=["expr"]).eval()
    assert plain.hparams.mixup_alpha == 0.0
    loss, seen = training_loss(plain, data, seed=1)
    assert torch.equal(seen["image"], data["image"])
    with torch.no_grad():
        p = plain.forward_batch(data)["expr"].double().softmax(-1).numpy()
    assert loss == pytest.approx(log_loss(data["expr"].numpy(), p, labels=list(range(7))), rel=1e-5)


def test_fit_with_mixup_runs_and_changes_the_weights(tmp_path):
    torch.manual_seed(0)
    module = FaceBehaviorNetModule(**TINY, tasks=["expr"], mixup_alpha=0.2)
    before = [p.detach().clone() for p in module.parameters()]
    loader = DataLoader(FrameDictDataset(make_frames(16, 32, 17, 0, ("expr",))), batch_size=8)
    trainer(tmp_path, max_steps=2).fit(module, train_dataloaders=loader)
    after = list(module.parameters())
    assert all(np.isfinite(p.detach().numpy()).all() for p in after)
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_refusals():
    with pytest.raises(ValueError, match="mixup_alpha must be >= 0"):
        FaceBehaviorNetModule(**TINY, mixup_alpha=-0.1)
    from affect.models.affwildnet import AffWildNetModule

    with pytest.raises(ConfigError, match="mixup_alpha mixes face images only"):
        AffWildNetModule(backbone="test_resnet", image_size=32, mixup_alpha=0.2)
    module = FaceBehaviorNetModule(**TINY, mixup_alpha=0.2)
    sequences = {"image": torch.zeros(2, 3, 3, 32, 32, dtype=torch.uint8), "expr": torch.zeros(2, 3).long()}
    with pytest.raises(ConfigError, match="mixes frame batches"):
        module.mixup_step(sequences)
