"""Evaluation extras as Lightning callbacks, added in the trainer's config (``trainer.callbacks``):

- :class:`SequenceMedianEvaluation` — the per-sequence median estimates of CNN-1RNN / CNN-3RNN /
  model-level fusion (Sec. V-B: "their median values are the final estimates"), evaluated as
  ``{val,test}/va_median/{ccc,ccc_v,ccc_a,mse,...}`` against the median of each sequence's annotated
  frames, and added to predictions as ``va_median`` ``[B, 2]``;
- :class:`EvaluationFigures` — at the end of validation / test (rank 0, not in the sanity check):
  the EXPR confusion matrix, per-AU F1 bars and a VA 2-D histogram, to W&B or as PNGs
  (:func:`affect.tracking.log_figure`).

Both read what :meth:`affect.models.multitask.MultiTaskModule.evaluation_step` returns
(``{"outputs", "batch", "rows", "tasks"}``: the medians the sequences, the figures the step's
:class:`~affect.data.batches.FrameRows`, flattened once by the step) and, for the figures, the epoch's
results that the module keeps in ``epoch_results``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import lightning as L
import torch
from torch import Tensor, nn

from affect.data.batches import FrameRows
from affect.labels import EXPR_CLASSES
from affect.metrics import VAMetrics, scalar_items
from affect.models.postprocess import sequence_medians, sequence_targets
from affect.tracking import au_f1_figure, confusion_matrix_figure, log_figure, va_histogram_figure

__all__ = ["EvaluationFigures", "SequenceMedianEvaluation"]

EVAL_STAGES: tuple[str, ...] = ("val", "test")


def _with_faces(frame_mask: Tensor | None, face_mask: Tensor | None) -> Tensor | None:
    """The frames a sequence median is taken over: valid (not padding) and with a usable face. A
    sequence without any face keeps its valid frames (its median is then of no-face predictions, and
    its labels are masked anyway)."""
    if face_mask is None:
        return frame_mask
    valid = face_mask.bool() if frame_mask is None else frame_mask.bool() & face_mask.bool()
    none = ~valid.any(-1, keepdim=True)
    return valid | (none & (frame_mask.bool() if frame_mask is not None else torch.ones_like(valid)))


def _is_step_output(outputs: object) -> bool:
    return isinstance(outputs, Mapping) and "outputs" in outputs and "batch" in outputs


class SequenceMedianEvaluation(L.Callback):
    """Per-sequence median VA estimates (Sec. V-B), evaluated on validation and test sequences.

    The metric is a :class:`~affect.metrics.VAMetrics` per stage (exact under DDP), updated with the
    median of each sequence's valid frames against the median of its annotated frames
    (:func:`~affect.models.postprocess.sequence_targets`), logged as ``{stage}/va_median/*``.
    Frame batches (no time axis) are ignored.
    """

    def __init__(self) -> None:
        super().__init__()
        self.metrics = nn.ModuleDict({s: VAMetrics() for s in EVAL_STAGES})

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.metrics.to(pl_module.device)

    def _update(self, stage: str, step: object) -> None:
        if not _is_step_output(step) or "va" not in step["tasks"]:
            return
        va, batch = step["outputs"].get("va"), step["batch"]
        if va is None or va.dim() != 3 or "va" not in batch:
            return
        self.metrics[stage].to(va.device)
        frame_mask = _with_faces(batch.get("frame_mask"), batch.get("face_mask"))
        target, mask = sequence_targets(batch["va"], batch.get("va_mask"), frame_mask)
        self.metrics[stage].update(sequence_medians(va.float(), frame_mask), target, mask)

    def _log(self, stage: str, pl_module: L.LightningModule) -> None:
        metric = self.metrics[stage]
        if not metric.update_called:
            return
        result = metric.compute()
        metric.reset()
        pl_module.log_dict({f"{stage}/va_median/{k}": v.float() for k, v in scalar_items(result).items()},
                           sync_dist=True, add_dataloader_idx=False)  # fmt: skip

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._update("val", outputs)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._update("test", outputs)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        self._log("val", pl_module)

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        self._log("test", pl_module)

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        """Add ``va_median`` ``[B, 2]`` to the predictions of a sequence batch."""
        if isinstance(outputs, dict) and isinstance(outputs.get("va"), Tensor) and outputs["va"].dim() == 3:
            outputs["va_median"] = sequence_medians(outputs["va"], _with_faces(outputs.get("frame_mask"), outputs.get("face_mask")))


class EvaluationFigures(L.Callback):
    """EXPR confusion matrix, per-AU F1 bars and a VA 2-D histogram after validation and test.

    Args:
        va_samples: VA frames (of rank 0) kept for the histogram.
    """

    def __init__(self, va_samples: int = 5000) -> None:
        super().__init__()
        self.va_samples = va_samples
        self._va: list[tuple[Tensor, Tensor]] = []

    def _keep_va(self, step: object) -> None:
        rows = step.get("rows") if _is_step_output(step) else None
        if not isinstance(rows, FrameRows) or "va" not in step["tasks"] or "va" not in rows.outputs:
            return
        room = self.va_samples - sum(len(p) for p, _ in self._va)
        out, flat = rows.outputs, rows.batch
        if room <= 0 or "va" not in flat:
            return
        mask = flat.get("va_mask")
        both = torch.isfinite(flat["va"]).all(-1) if mask is None else mask.bool().all(-1)
        self._va.append((out["va"][both][:room].float().cpu(), flat["va"][both][:room].float().cpu()))

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if trainer.is_global_zero and not trainer.sanity_checking:
            self._keep_va(outputs)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if trainer.is_global_zero:
            self._keep_va(outputs)

    def on_validation_end(self, trainer, pl_module) -> None:
        self._figures("val", trainer, pl_module)

    def on_test_end(self, trainer, pl_module) -> None:
        self._figures("test", trainer, pl_module)

    def _figures(self, stage: str, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        va, self._va = self._va, []
        results: Mapping[str, Mapping[str, Tensor]] = getattr(pl_module, "epoch_results", {}).get(stage, {})
        if trainer.sanity_checking or not trainer.is_global_zero or not trainer.loggers or not results:
            return
        step = pl_module.global_step
        if "expr" in results:
            fig = confusion_matrix_figure(results["expr"]["confmat"], EXPR_CLASSES)
            log_figure(trainer.loggers, f"{stage}/expr/confmat", fig, step)
        if "au" in results:
            au_set: Sequence[int] = pl_module.au_set
            log_figure(trainer.loggers, f"{stage}/au/f1_per_au", au_f1_figure(results["au"]["f1_per_au"], au_set), step)
        if "va" in results and va:
            pred, target = torch.cat([p for p, _ in va]), torch.cat([t for _, t in va])
            if len(pred):
                log_figure(trainer.loggers, f"{stage}/va/hist", va_histogram_figure(pred, target), step)
