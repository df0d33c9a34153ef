"""The stages of a run and the epoch-end hooks every module of the package shares.

:class:`EpochEndHooks` is Lightning's ``on_{train,validation,test}_epoch_end`` written once: each calls
the module's ``log_epoch_metrics(stage)`` (compute, log and reset the stage's metrics), which
:class:`~affect.models.multitask.MultiTaskModule` and the compound modules
(:mod:`affect.models.compound`) implement.
"""

from __future__ import annotations

__all__ = ["STAGES", "EpochEndHooks"]

#: The stages whose metrics a module keeps, as they prefix the logged names (``val/va/ccc``).
STAGES: tuple[str, ...] = ("train", "val", "test")


class EpochEndHooks:
    """Lightning's epoch-end hooks of every module of the package, in one place: the end of a stage's
    epoch calls ``log_epoch_metrics(stage)`` (compute, log and reset that stage's metrics), which each
    module implements (:class:`MultiTaskModule`, the compound modules)."""

    def log_epoch_metrics(self, stage: str) -> dict:
        raise NotImplementedError(f"{type(self).__name__} must implement log_epoch_metrics(stage)")

    def on_train_epoch_end(self) -> None:
        self.log_epoch_metrics("train")

    def on_validation_epoch_end(self) -> None:
        self.log_epoch_metrics("val")

    def on_test_epoch_end(self) -> None:
        self.log_epoch_metrics("test")
