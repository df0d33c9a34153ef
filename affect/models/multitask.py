"""Lightning logic shared by every VA / EXPR / AU model of the package, written once.

:class:`MultiTaskModule` is the base of the thin per-architecture ``LightningModule``s (MT-VGG,
FaceBehaviorNet, the temporal CNN-RNNs). A subclass sets ``self.net`` (a plain ``nn.Module``) after
``super().__init__(...)``; if its network needs more than the normalised images (landmarks,
audio, sequences) it overrides :meth:`MultiTaskModule.forward_batch`. The base owns:

- **input normalisation** on device: uint8 ``[..., 3, H, W]`` -> ``x / 127.5 - 1`` in [-1, 1]
  (paper Sec. IV), see :func:`normalise_images`;
- **the loss**, :class:`affect.losses.MultiTaskLoss` (eq. 4-7 and the coupling losses of Sec. VI-B);
  the heads of tasks not in ``tasks`` get no loss and no metric ("(3x) VGG-FACE single-task" of
  Table VI = FaceBehaviorNet with ``tasks=["va"]``, ``["expr"]`` or ``["au"]``);
- **batches**: one frame (or sequence) batch dict, or a dict of domain batches
  ``{"va": batch, "au": batch, "expr": batch}`` from a ``CombinedLoader`` in ``max_size_cycle``
  mode, concatenated into one forward pass as in Fig. 4 (:func:`concat_batches`). Sequence
  outputs ``[B, T, ...]`` are reduced to their valid frames (``frame_mask``) for loss and metrics;
- **metrics**, one set per stage (train / val / test) per task: :class:`~affect.metrics.VAMetrics`,
  :class:`~affect.metrics.ExprMetrics`, :class:`~affect.metrics.AUMetrics` (DDP-exact sums),
  computed over the whole epoch and logged as ``{stage}/{task}/{metric}`` (``val/va/ccc``,
  ``val/va/ccc_v``, ``val/expr/f1``, ``val/expr/diag``, ``val/au/f1``, ``val/au/afa``, per-AU
  ``val/au/f1_AU12``, ...), plus ``{stage}/p_mtl`` (ABAW P_MTL = P_VA + P_EXPR + P_AU, only when
  all three tasks are trained) and ``{stage}/loss`` (the total, per-step on train, averaged over
  the epoch's batches weighted by batch size on val/test; the unweighted terms as
  ``{stage}/{term}/loss``, on val/test averaged over the batches that annotate the task, weighted by
  their annotated frames). A metric with no annotated sample in the epoch is NaN;
- **evaluation domains**: when ``val_dataloader`` / ``test_dataloader`` returns a dict of
  loaders (Lightning iterates them as a ``CombinedLoader`` in ``sequential`` mode, one
  ``dataloader_idx`` each), a loader whose key is a task name (``"va"``, ``"expr"``, ``"au"``)
  updates only that task's metrics; any other key (e.g. a corpus name) or a list of loaders
  updates every task whose labels the batch carries (the masks decide);
- **media** at the end of validation / test (rank 0, not during the sanity check): EXPR confusion
  matrix, per-AU F1 bars, VA 2-D histograms (of up to ``media_samples`` frames of rank 0), sent by
  :func:`affect.tracking.log_figure` to W&B or as PNGs into the CSV logger's directory;
- **optimisation**: Adam, learning rate ``lr`` (paper 1e-4), optionally multiplied by
  ``lr_decay_gamma`` every epoch from epoch ``lr_decay_after`` on ("exponentially decaying after
  10 epochs", Sec. V-A);
- **prediction**: :meth:`MultiTaskModule.predict_step` returns ``va`` and the probabilities
  (softmax ``expr``, sigmoid ``au``) of the trained tasks, plus the batch's ids. A checkpoint holds
  what predicting needs: the constructor arguments (``tasks``, ``au_set``, ``image_size``, ...) in
  ``checkpoint["hyper_parameters"]`` and :meth:`MultiTaskModule.label_spaces` (``expr_classes``,
  ``au_set``, ``tasks``, ``image_size``, ``normalisation``) in ``checkpoint["affect"]``.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping, Sequence

import lightning as L
import torch
from torch import Tensor, nn
from torch.optim.lr_scheduler import LambdaLR
from torchmetrics import MeanMetric

from affect.labels import EXPR_CLASSES, NUM_AU, NUM_EXPR, au_index
from affect.losses import MultiTaskLoss
from affect.losses.multitask import flatten_frames
from affect.metrics import AUMetrics, ExprMetrics, VAMetrics, p_mtl, scalar_items
from affect.tracking import au_f1_figure, confusion_matrix_figure, log_figure, va_histogram_figure

__all__ = [
    "NORMALISATION",
    "STAGES",
    "TASKS",
    "MultiTaskModule",
    "concat_batches",
    "is_domain_batch",
    "normalise_images",
]

TASKS: tuple[str, ...] = ("va", "expr", "au")
STAGES: tuple[str, ...] = ("train", "val", "test")
#: How uint8 images become network input (saved in every checkpoint's hyper-parameters).
NORMALISATION = "x.float() / 127.5 - 1  (uint8 RGB [0, 255] -> [-1, 1], paper Sec. IV)"
#: Identifiers carried from a batch into ``predict_step``'s output.
ID_KEYS: tuple[str, ...] = ("path", "corpus", "video", "frame", "frame_mask")
#: Fill values for a label key that a domain batch lacks (= "not annotated").
_UNANNOTATED: dict[str, tuple[str, object]] = {
    "va": ("va_mask", 0.0),
    "expr": ("", -1),
    "au": ("au_mask", 0.0),
}


def normalise_images(images: Tensor) -> Tensor:
    """uint8 images -> float in [-1, 1] (``x / 127.5 - 1``, Sec. IV).

    >>> normalise_images(torch.tensor([0, 255], dtype=torch.uint8))
    tensor([-1.,  1.])
    """
    if images.dtype != torch.uint8:
        raise TypeError(
            f"images must be uint8 in [0, 255] (the batch convention; models normalise on device), found {images.dtype}"
        )
    return images.float() / 127.5 - 1.0


def is_domain_batch(batch: object) -> bool:
    """Whether ``batch`` is a dict of domain batches (``{"va": {...}, "au": {...}}``), not one batch.

    >>> is_domain_batch({"va": {"image": 0}, "au": {"image": 0}}), is_domain_batch({"image": 0})
    (True, False)
    """
    return (
        isinstance(batch, Mapping) and len(batch) > 0 and all(isinstance(v, Mapping) for v in batch.values())
    )


def concat_batches(batches: Mapping[str, Mapping]) -> dict:
    """Concatenate domain batches along the batch axis into one batch (Fig. 4: VA-, AU- and
    EXPR-Set batches of 401 / 247 / 103 images form one forward pass).

    Tensors are concatenated on dim 0, lists of ids (``corpus``, ``video``, ``path``) joined. A
    label a domain lacks (``va``/``va_mask``, ``expr``, ``au``/``au_mask``) is filled as not
    annotated; any other key must be in every domain. Sequence batches (with ``frame_mask``) of
    different lengths are right-padded on the time axis (padding is masked out by ``frame_mask``).

    >>> a = {"image": torch.zeros(2, 3, 4, 4, dtype=torch.uint8), "expr": torch.tensor([1, 2]), "corpus": ["x", "x"]}
    >>> b = {"image": torch.zeros(1, 3, 4, 4, dtype=torch.uint8), "expr": torch.tensor([-1]), "corpus": ["y"]}
    >>> out = concat_batches({"expr": a, "va": b})
    >>> out["image"].shape, out["expr"].tolist(), out["corpus"]
    (torch.Size([3, 3, 4, 4]), [1, 2, -1], ['x', 'x', 'y'])
    """
    names = list(batches)
    if not names:
        raise ValueError("concat_batches: no domain batches")
    parts = [dict(batches[n]) for n in names]
    sizes = [_batch_size(p, n) for p, n in zip(parts, names, strict=True)]
    for p, size in zip(parts, sizes, strict=True):
        for key, (mask_key, fill) in _UNANNOTATED.items():
            present = [q[key] for q in parts if key in q]
            if key in p or not present:
                continue
            like = present[0]
            seq = "frame_mask" in p  # sequence batch: [B, T, ...]
            shape = (size, p["frame_mask"].shape[1], *like.shape[2:]) if seq else (size, *like.shape[1:])
            p[key] = torch.full(shape, fill, dtype=like.dtype, device=like.device)
            if mask_key:
                p[mask_key] = torch.zeros(shape, dtype=torch.bool, device=like.device)
    keys = list(dict.fromkeys(k for p in parts for k in p))
    out: dict = {}
    for key in keys:
        missing = [n for p, n in zip(parts, names, strict=True) if key not in p]
        if missing:
            have = [n for n in names if n not in missing]
            raise ValueError(
                f"concat_batches: key {key!r} is in the {have} batches but missing from {missing}"
            )
        values = [p[key] for p in parts]
        if all(isinstance(v, Tensor) for v in values):
            out[key] = _cat(values, key)
        elif all(isinstance(v, (list, tuple)) for v in values):
            out[key] = [x for v in values for x in v]
        else:
            raise ValueError(f"concat_batches: key {key!r} mixes types {[type(v).__name__ for v in values]}")
    return out


def _batch_size(batch: Mapping, name: str) -> int:
    image = batch.get("image")
    if not isinstance(image, Tensor):
        raise ValueError(f"batch {name!r} has no 'image' tensor; keys {sorted(batch)}")
    return int(image.shape[0])


def _cat(values: list[Tensor], key: str) -> Tensor:
    if all(v.shape[1:] == values[0].shape[1:] for v in values):
        return torch.cat(values, 0)
    if all(v.ndim >= 2 and v.shape[2:] == values[0].shape[2:] for v in values):  # sequences of different T
        t = max(v.shape[1] for v in values)
        fill = -1 if key == "expr" else 0
        padded = [
            torch.cat([v, v.new_full((v.shape[0], t - v.shape[1], *v.shape[2:]), fill)], 1) for v in values
        ]
        return torch.cat(padded, 0)
    raise ValueError(
        f"concat_batches: {key!r} shapes {[tuple(v.shape) for v in values]} cannot be concatenated"
    )


def _term_weights(flat: Mapping, rows: int) -> dict[str, int]:
    """How many (valid) frames each task's loss term is averaged over: the annotated ones."""
    weights = {"dm": rows, "soft": rows}
    if "va_mask" in flat:
        weights["va"] = int(flat["va_mask"].bool().any(-1).sum())
    if "expr" in flat:
        weights["expr"] = int((flat["expr"] >= 0).sum())
    if "au_mask" in flat:
        weights["au"] = int(flat["au_mask"].bool().any(-1).sum())
    return weights


def _decay_factor(epoch: int, after: int, gamma: float) -> float:
    return gamma ** max(0, epoch - after + 1)


class MultiTaskModule(L.LightningModule):
    """Shared training / evaluation / prediction logic (see the module docstring).

    Args (keyword-only; the thin subclasses expose them with the same names):
        tasks: trained tasks, a non-empty subset of ``("va", "expr", "au")``.
        au_set: the AU head's AUs, in output order.
        image_size: side of the square input images (paper: 96).
        lr: Adam learning rate (paper: 1e-4 or 1e-5).
        lr_decay_after: epoch from which the learning rate decays exponentially (``None`` = constant).
        lr_decay_gamma: the per-epoch decay factor.
        lambda_au, lambda_va, relatedness, co_annotation, distribution_matching, soft_co_annotation,
        lambda_dm, lambda_soft, reweight: :class:`affect.losses.MultiTaskLoss` (eq. 7, Sec. VI-B);
            the coupling losses need both ``"expr"`` and ``"au"`` in ``tasks``.
        au_threshold: AU decision threshold of the AU metrics.
        log_media: send validation / test figures to the loggers.
        media_samples: VA frames kept (rank 0) for the VA histogram.
    """

    net: nn.Module

    def __init__(
        self,
        *,
        tasks: Sequence[str] = TASKS,
        au_set: Sequence[int],
        image_size: int = 96,
        lr: float = 1e-4,
        lr_decay_after: int | None = None,
        lr_decay_gamma: float = 0.95,
        lambda_au: float = 1.0,
        lambda_va: float = 1.0,
        relatedness: str = "du2014",
        co_annotation: bool = False,
        distribution_matching: bool = False,
        soft_co_annotation: bool = False,
        lambda_dm: float = 1.0,
        lambda_soft: float = 1.0,
        reweight: bool = True,
        au_threshold: float = 0.5,
        log_media: bool = True,
        media_samples: int = 5000,
    ) -> None:
        super().__init__()
        tasks = tuple(tasks)
        unknown = [t for t in tasks if t not in TASKS]
        if not tasks or unknown or len(set(tasks)) != len(tasks):
            raise ValueError(
                f"tasks must be a non-empty subset of {TASKS} without repeats, found {list(tasks)}"
            )
        coupled = co_annotation or distribution_matching or soft_co_annotation
        if coupled and not {"expr", "au"} <= set(tasks):
            raise ValueError(
                f"the coupling losses (co_annotation / distribution_matching / soft_co_annotation) couple EXPR "
                f"and AU: tasks must contain 'expr' and 'au', found {list(tasks)}"
            )
        if lr_decay_after is not None and lr_decay_after < 0:
            raise ValueError(f"lr_decay_after must be >= 0 or None, found {lr_decay_after}")
        self.save_hyperparameters()
        self.tasks = tasks
        self.au_set = tuple(int(a) for a in au_set)
        self.loss_fn = MultiTaskLoss(
            lambda_au=lambda_au, lambda_va=lambda_va, relatedness=relatedness, co_annotation=co_annotation,
            distribution_matching=distribution_matching, soft_co_annotation=soft_co_annotation,
            lambda_dm=lambda_dm, lambda_soft=lambda_soft, reweight=reweight, au_set=self.au_set,
        )  # fmt: skip
        def make(stage: str, task: str):
            # training-time metrics skip input validation: its checks are host syncs on every step
            # (validation/test metrics keep them, on the same kind of inputs)
            check = stage != "train"
            if task == "va":
                return VAMetrics()
            if task == "expr":
                return ExprMetrics(num_classes=NUM_EXPR, validate_args=check)
            return AUMetrics(num_aus=len(self.au_set), threshold=au_threshold, validate_args=check)

        self.metrics = nn.ModuleDict({f"{s}_{t}": make(s, t) for s in STAGES for t in tasks})
        # Evaluation losses are averaged with MeanMetric (weighted by batch size, exact under DDP):
        # self.log cannot merge one name over several evaluation dataloaders.
        terms = ["loss", *tasks] + ["dm"] * distribution_matching + ["soft"] * soft_co_annotation
        self.eval_losses = nn.ModuleDict({f"{s}_{t}": MeanMetric() for s in STAGES[1:] for t in terms})
        self._va_media: list[tuple[Tensor, Tensor]] = []
        self._initial_weights_done = False

    # ------------------------------------------------------------------ forward
    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """uint8 images ``[B, 3, H, W]`` -> the network's outputs (``va``, ``expr`` / ``au`` logits).

        Images (and, once, the network) go channels-last: NHWC convolutions are 1.4-2x faster for
        these backbones at 96x96, with cuDNN in bf16 (H100, benchmarks/profile_step_gpu.py) and with
        oneDNN on CPU (resnet10t 90 -> 120, regnetx_002 210 -> 335 training images/s on 2 cores).
        """
        x = normalise_images(images)
        if x.ndim == 4:
            if not getattr(self, "_channels_last", False):
                self.net.to(memory_format=torch.channels_last)
                self._channels_last = True
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)

    def forward_batch(self, batch: Mapping) -> dict[str, Tensor]:
        """The network's outputs for a batch; override for inputs beyond ``batch["image"]``."""
        return self(batch["image"])

    # ------------------------------------------------------------------ steps
    def prepare_batch(self, batch: Mapping) -> dict:
        """One batch (domain batches concatenated, Fig. 4) with AU targets on the model's AU set.

        Corpora deliver AU targets over the 17 AUs of ``labels.AU_SET``; a model with another AU
        set (MT-VGG's 8 ABAW 2020 AUs) gets the matching columns of ``au`` / ``au_mask``.
        """
        batch = concat_batches(batch) if is_domain_batch(batch) else dict(batch)
        au = batch.get("au")
        if au is not None and au.shape[-1] != len(self.au_set):
            if au.shape[-1] != NUM_AU:
                raise ValueError(
                    f"batch['au'] has {au.shape[-1]} AUs; expected the model's {len(self.au_set)} "
                    f"({list(self.au_set)}) or the {NUM_AU} of labels.AU_SET"
                )
            columns = [au_index(a) for a in self.au_set]
            batch["au"] = au[..., columns]
            if batch.get("au_mask") is not None:
                batch["au_mask"] = batch["au_mask"][..., columns]
        return batch

    def training_step(self, batch: Mapping, batch_idx: int) -> Tensor:
        batch = self.prepare_batch(batch)
        outputs = self.forward_batch(batch)
        return self._shared_step("train", outputs, batch, self.tasks)

    def validation_step(self, batch: Mapping, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step("val", batch, dataloader_idx)

    def test_step(self, batch: Mapping, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._eval_step("test", batch, dataloader_idx)

    def predict_step(self, batch: Mapping, batch_idx: int, dataloader_idx: int = 0) -> dict:
        """``va`` ``[B, 2]``, ``expr`` softmax ``[B, 7]``, ``au`` sigmoid ``[B, A]`` of the trained
        tasks (``[B, T, ...]`` for sequences), plus the batch's ``path`` / ``corpus`` / ``video`` /
        ``frame`` / ``frame_mask`` when present."""
        batch = self.prepare_batch(batch)
        outputs = self.forward_batch(batch)
        pred: dict = {}
        if "va" in self.tasks:
            pred["va"] = outputs["va"]
        if "expr" in self.tasks:
            pred["expr"] = outputs["expr"].softmax(-1)
        if "au" in self.tasks:
            pred["au"] = outputs["au"].sigmoid()
        pred.update({k: batch[k] for k in ID_KEYS if k in batch})
        return pred

    def _eval_step(self, stage: str, batch: Mapping, dataloader_idx: int) -> None:
        batch = self.prepare_batch(batch)
        outputs = self.forward_batch(batch)
        self._shared_step(stage, outputs, batch, self._domain_tasks(stage, dataloader_idx))

    def _domain_tasks(self, stage: str, dataloader_idx: int) -> tuple[str, ...]:
        """Tasks whose metrics a dataloader updates: its key, if that is a task name; else all."""
        loaders = self.trainer.val_dataloaders if stage == "val" else self.trainer.test_dataloaders
        if isinstance(loaders, Mapping):
            names = list(loaders)
            if dataloader_idx < len(names) and names[dataloader_idx] in TASKS:
                return tuple(t for t in self.tasks if t == names[dataloader_idx])
        return self.tasks

    def _shared_step(
        self, stage: str, outputs: Mapping[str, Tensor], batch: Mapping, metric_tasks: Sequence[str]
    ) -> Tensor:
        active = {t: outputs[t] for t in self.tasks}
        terms = self.loss_fn(active, batch)
        n = int(batch["image"].shape[0])
        if stage == "train":
            self.log("train/loss", terms["loss"], on_step=True, on_epoch=True, prog_bar=True, batch_size=n)
            for name, value in terms.items():
                if name != "loss":
                    self.log(f"train/{name}/loss", value, on_step=False, on_epoch=True, batch_size=n)
        flat_out, flat = flatten_frames({k: v.detach() for k, v in active.items()}, batch)
        if stage != "train":
            weights = _term_weights(flat, len(next(iter(flat_out.values()))))
            for name, value in terms.items():
                weight = n if name == "loss" else weights.get(name, n)
                if weight > 0:
                    self.eval_losses[f"{stage}_{name}"].update(value.detach(), weight)
        for task in metric_tasks:
            self._update_metric(stage, task, flat_out, flat)
        return terms["loss"]

    def _update_metric(self, stage: str, task: str, out: Mapping[str, Tensor], batch: Mapping) -> None:
        metric = self.metrics[f"{stage}_{task}"]
        if task == "va" and "va" in batch:
            mask = batch.get("va_mask")
            mask = torch.isfinite(batch["va"]) if mask is None else mask.bool()
            metric.update(out["va"].float(), batch["va"].float(), mask)
            if stage != "train" and self.hparams.log_media:
                self._keep_va_media(out["va"], batch["va"], mask)
        elif task == "expr" and "expr" in batch:
            metric.update(out["expr"].float(), batch["expr"].long())
        elif task == "au" and "au" in batch:
            mask = batch.get("au_mask")
            mask = torch.isfinite(batch["au"]) if mask is None else mask.bool()
            metric.update(out["au"].float().sigmoid(), batch["au"].float(), mask)

    def _keep_va_media(self, pred: Tensor, target: Tensor, mask: Tensor) -> None:
        kept = sum(len(p) for p, _ in self._va_media)
        room = self.hparams.media_samples - kept
        if room > 0:
            both = mask.all(-1)
            self._va_media.append((pred[both][:room].detach().cpu(), target[both][:room].detach().cpu()))

    # ------------------------------------------------------------------ epoch ends
    def on_train_epoch_end(self) -> None:
        self._log_epoch_metrics("train")

    def on_validation_epoch_start(self) -> None:
        self._va_media = []

    def on_validation_epoch_end(self) -> None:
        self._log_epoch_metrics("val")

    def on_test_epoch_start(self) -> None:
        self._va_media = []

    def on_test_epoch_end(self) -> None:
        self._log_epoch_metrics("test")

    def _log_epoch_metrics(self, stage: str) -> dict[str, dict[str, Tensor]]:
        """Compute (synced over processes), log and reset the stage's metrics; returns the results."""
        results = {t: self.metrics[f"{stage}_{t}"].compute() for t in self.tasks}
        for t in self.tasks:
            self.metrics[f"{stage}_{t}"].reset()
        logged: dict[str, Tensor] = {}
        for task, res in results.items():
            logged.update({f"{stage}/{task}/{k}": v for k, v in scalar_items(res).items()})
            if task == "au":
                logged.update(
                    {f"{stage}/au/f1_AU{a}": v for a, v in zip(self.au_set, res["f1_per_au"], strict=True)}
                )
        if stage != "train":
            for key, mean in self.eval_losses.items():
                if key.startswith(f"{stage}_"):
                    name = key.split("_", 1)[1]
                    logged[f"{stage}/loss" if name == "loss" else f"{stage}/{name}/loss"] = mean.compute()
                    mean.reset()
        if set(TASKS) <= set(self.tasks):
            logged[f"{stage}/p_mtl"] = p_mtl(results["va"], results["expr"], results["au"])
        # Values are already global (torchmetrics syncs in compute); sync_dist only averages identical
        # copies, and keeps Lightning from warning about unsynced epoch-level logs under DDP.
        self.log_dict({k: v.float() for k, v in logged.items()}, sync_dist=True, add_dataloader_idx=False)
        if stage != "train" and self.hparams.log_media and not self.trainer.sanity_checking:
            self._log_media(stage, results)
        self._va_media = []
        return results

    def _log_media(self, stage: str, results: Mapping[str, Mapping[str, Tensor]]) -> None:
        if not self.trainer.is_global_zero or not self.loggers:
            return
        step = self.global_step
        if "expr" in results:
            log_figure(
                self.loggers,
                f"{stage}/expr/confmat",
                confusion_matrix_figure(results["expr"]["confmat"], EXPR_CLASSES),
                step,
            )
        if "au" in results:
            log_figure(
                self.loggers,
                f"{stage}/au/f1_per_au",
                au_f1_figure(results["au"]["f1_per_au"], self.au_set),
                step,
            )
        if "va" in results and self._va_media:
            pred = torch.cat([p for p, _ in self._va_media])
            target = torch.cat([t for _, t in self._va_media])
            if len(pred):
                log_figure(self.loggers, f"{stage}/va/hist", va_histogram_figure(pred, target), step)

    # ------------------------------------------------------------------ initial weights
    def setup(self, stage: str) -> None:
        """Load the initial weights (:meth:`load_initial_weights`) once, when fitting starts.

        Only for ``fit``, and never for a module restored from a checkpoint: ``validate`` /
        ``test`` / ``predict --ckpt_path`` never read the (possibly absent) VGG-FACE or init
        files named in the saved hyper-parameters. When ``fit`` resumes from ``--ckpt_path``,
        Lightning restores the checkpoint after this hook, so its weights win.
        """
        if stage == "fit" and not self._initial_weights_done:
            self.load_initial_weights()
            self._initial_weights_done = True

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._initial_weights_done = True

    def load_initial_weights(self) -> None:
        """Subclass hook: load pre-trained weights (VGG-FACE, an earlier run); default: nothing."""

    def load_matching_weights(self, path: str, exclude: Sequence[str] = ()) -> tuple[list[str], list[str]]:
        """Copy every tensor of a checkpoint's ``state_dict`` whose name and shape match this module.

        For starting a run from another run (the paper pre-trains MT-VGG on Aff-Wild, then trains on
        Aff-Wild2 with a new output layer, and fine-tunes on each corpus). Names starting with one of
        ``exclude`` (e.g. ``"net.head."``) are not copied; tensors whose shapes differ (an output
        layer for another AU set) are skipped with a warning. Returns ``(loaded, skipped)`` names;
        raises if nothing matches.
        """
        ckpt = torch.load(
            path, map_location="cpu", weights_only=False
        )  # a Lightning checkpoint (user's file)
        source = ckpt.get("state_dict", ckpt) if isinstance(ckpt, Mapping) else None
        if not isinstance(source, Mapping):
            raise ValueError(
                f"{path}: expected a Lightning checkpoint or a state dict, found {type(ckpt).__name__}"
            )
        own = self.state_dict()
        loaded, skipped = [], []
        for name, value in source.items():
            if any(name.startswith(e) for e in exclude):
                continue
            if name in own and isinstance(value, Tensor) and value.shape == own[name].shape:
                loaded.append(name)
            else:
                skipped.append(name)
        if not loaded:
            raise ValueError(
                f"{path}: no tensor matches this model by name and shape (first checkpoint keys: {list(source)[:5]}, "
                f"first model keys: {list(own)[:5]})"
            )
        self.load_state_dict({k: source[k] for k in loaded}, strict=False)
        if skipped:
            warnings.warn(
                f"{path}: {len(skipped)} tensors not loaded (absent or other shape): {skipped[:10]}",
                stacklevel=2,
            )
        return loaded, skipped

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Store the label spaces and input convention beside the hyper-parameters (``"affect"`` key).

        The constructor's arguments (``tasks``, ``au_set``, ``image_size``, ...) are in
        ``checkpoint["hyper_parameters"]``; they are not repeated here because LightningCLI feeds
        the hyper-parameters back into the constructor when given ``--ckpt_path``.
        """
        checkpoint["affect"] = self.label_spaces()

    def label_spaces(self) -> dict:
        """What a predictor needs besides the weights: class names, AU set, tasks, input convention."""
        return {
            "expr_classes": list(EXPR_CLASSES),
            "au_set": list(self.au_set),
            "tasks": list(self.tasks),
            "image_size": int(self.hparams.image_size),
            "normalisation": NORMALISATION,
        }

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
        if self.hparams.lr_decay_after is None:
            return optimizer
        factor = functools.partial(
            _decay_factor, after=self.hparams.lr_decay_after, gamma=self.hparams.lr_decay_gamma
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": LambdaLR(optimizer, factor), "interval": "epoch"},
        }
