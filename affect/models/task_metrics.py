"""What :class:`~affect.models.multitask.MultiTaskModule` measures, per stage: the VA / EXPR / AU
metrics of each task, the evaluation losses and the training loss terms' epoch means.

:class:`TaskMetrics` is updated once per step from the step's loss terms and its
:class:`~affect.data.batches.FrameRows` (the valid frames, flattened once by the step), and turned
into the logged values at an epoch's end: ``{stage}/{task}/{metric}`` (``{stage}/au/f1_AU{n}`` per
AU), ``{stage}/p_mtl`` when all three tasks are trained, ``{stage}/loss`` and ``{stage}/{term}/loss``
(the evaluation losses, averaged with :class:`~torchmetrics.MeanMetric`, weighted by the frames each
term is averaged over, exact under DDP: ``self.log`` cannot merge one name over several evaluation
dataloaders) and ``train/{term}/loss`` (one device-side update per step instead of one ``self.log``
per term). Every state is a metric state: nothing of it is saved in a checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn
from torchmetrics import MeanMetric

from affect.data.batches import TASKS, FrameRows
from affect.labels import NUM_EXPR
from affect.metrics import AUMetrics, ExprMetrics, VAMetrics, WeightedMeans, p_mtl, scalar_items
from affect.models.stages import STAGES

__all__ = ["TaskMetrics"]


def _term_weights(rows: FrameRows) -> dict[str, Tensor | int]:
    """How many (valid) frames each task's loss term is averaged over: the annotated ones (tensors,
    so that no evaluation step waits for the device)."""
    flat = rows.batch
    weights: dict[str, Tensor | int] = {"dm": rows.rows, "soft": rows.rows}
    if "va_mask" in flat:
        weights["va"] = flat["va_mask"].bool().any(-1).sum()
    if "expr" in flat:
        weights["expr"] = (flat["expr"] >= 0).sum()
    if "au_mask" in flat:
        weights["au"] = flat["au_mask"].bool().any(-1).sum()
    return weights


class TaskMetrics(nn.Module):
    """Per-stage metrics of ``tasks`` and means of the loss ``terms`` (module docstring).

    Args:
        tasks: the trained tasks (a metric set per stage for each).
        au_set: the AU head's AUs, in output order (names of ``f1_AU{n}``; size of the AU metrics).
        au_threshold: AU decision threshold of the AU metrics.
        terms: the loss's unweighted terms besides ``"loss"`` (the tasks, ``"dm"``, ``"soft"``).

    Training-time metrics skip input validation (its checks are host syncs on every step);
    validation / test metrics keep them.
    """

    def __init__(
        self, tasks: Sequence[str], au_set: Sequence[int], *, au_threshold: float = 0.5, terms: Sequence[str] = ()
    ) -> None:
        super().__init__()
        self.tasks = tuple(tasks)
        self.au_set = tuple(int(a) for a in au_set)

        def make(stage: str, task: str):
            check = stage != "train"
            if task == "va":
                return VAMetrics(validate_args=check)
            if task == "expr":
                return ExprMetrics(num_classes=NUM_EXPR, validate_args=check)
            return AUMetrics(num_aus=len(self.au_set), threshold=au_threshold, validate_args=check)

        self.per_task = nn.ModuleDict({f"{s}_{t}": make(s, t) for s in STAGES for t in self.tasks})
        self.eval_losses = nn.ModuleDict({f"{s}_{t}": MeanMetric() for s in STAGES[1:] for t in ("loss", *terms)})
        self.train_losses = WeightedMeans(list(terms))

    def update(
        self, stage: str, terms: Mapping[str, Tensor], rows: FrameRows, samples: int, metric_tasks: Sequence[str]
    ) -> None:
        """One step of ``stage``: its loss ``terms`` (of a batch of ``samples`` frames or sequences) and
        the metrics of ``metric_tasks`` on ``rows``."""
        if stage == "train":
            self.train_losses.update(torch.stack([terms[name] for name in self.train_losses.names]), samples)
        else:
            weights = _term_weights(rows)
            for name, value in terms.items():
                weight = samples if name == "loss" else weights.get(name, samples)
                self.eval_losses[f"{stage}_{name}"].update(value.detach(), weight)
        rows = rows.detach()
        for task in metric_tasks:
            self._update_task(stage, task, rows)

    def _update_task(self, stage: str, task: str, rows: FrameRows) -> None:
        batch, out = rows.batch, rows.outputs
        if task not in batch:
            return
        metric = self.per_task[f"{stage}_{task}"]
        if task == "expr":
            metric.update(out["expr"].float(), batch["expr"].long())
            return
        mask = batch.get(f"{task}_mask")
        mask = torch.isfinite(batch[task]) if mask is None else mask.bool()
        pred = out[task].float() if task == "va" else out[task].float().sigmoid()
        metric.update(pred, batch[task].float(), mask)

    def compute(self, stage: str) -> tuple[dict[str, dict[str, Tensor]], dict[str, Tensor]]:
        """Compute (synced over processes) and reset ``stage``'s metrics and losses; returns the results
        per task and the values to log, by logged name."""
        results = {t: self.per_task[f"{stage}_{t}"].compute() for t in self.tasks}
        for t in self.tasks:
            self.per_task[f"{stage}_{t}"].reset()
        logged: dict[str, Tensor] = {}
        for task, res in results.items():
            logged.update({f"{stage}/{task}/{k}": v for k, v in scalar_items(res).items()})
            if task == "au":
                logged.update({f"{stage}/au/f1_AU{a}": v for a, v in zip(self.au_set, res["f1_per_au"], strict=True)})
        if stage == "train" and self.train_losses.update_count:
            logged.update({f"train/{name}/loss": v for name, v in self.train_losses.compute().items()})
            self.train_losses.reset()
        if stage != "train":
            for key, mean in self.eval_losses.items():
                if key.startswith(f"{stage}_"):
                    name = key.split("_", 1)[1]
                    logged[f"{stage}/loss" if name == "loss" else f"{stage}/{name}/loss"] = mean.compute()
                    mean.reset()
        if set(TASKS) <= set(self.tasks):
            logged[f"{stage}/p_mtl"] = p_mtl(results["va"], results["expr"], results["au"])
        return results, logged
