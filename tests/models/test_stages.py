"""Every module of the package ends its epochs through the same hooks (:class:`EpochEndHooks`), each
implementing only ``log_epoch_metrics(stage)``; the compound modules log through them."""

from __future__ import annotations

import pytest
import torch

from affect.models.compound import CompoundFineTune, ZeroShotCompound
from affect.models.multitask import MultiTaskModule
from affect.models.stages import EpochEndHooks

HOOKS = ("on_train_epoch_end", "on_validation_epoch_end", "on_test_epoch_end")


@pytest.mark.parametrize("cls", [MultiTaskModule, ZeroShotCompound, CompoundFineTune])
def test_modules_share_the_epoch_end_hooks(cls):
    for hook in HOOKS:
        assert getattr(cls, hook) is getattr(EpochEndHooks, hook), (cls.__name__, hook)
    assert cls.log_epoch_metrics is not EpochEndHooks.log_epoch_metrics


def test_compound_validation_epoch_end_logs_and_resets(monkeypatch):
    """The shared hook reaches the compound metrics: logged as ``val/compound/*``, then reset."""
    module = CompoundFineTune(classes=["a", "b", "c"], backbone="test_resnet", hidden=8, image_size=32, log_media=False)
    logged = {}
    monkeypatch.setattr(module, "log_dict", lambda values, **kw: logged.update(values))
    target = torch.tensor([0, 1, 2, 2])
    scores = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 1]), 3).float()  # 3 of 4 right
    module._update("val", scores, {"compound": target})
    module.on_validation_epoch_end()
    assert logged["val/compound/acc"].item() == pytest.approx(0.75)
    assert set(logged) == {f"val/compound/{k}" for k in ("diag", "f1", "uar", "acc")}
    assert module.compound_metrics["val_compound"].update_count == 0
