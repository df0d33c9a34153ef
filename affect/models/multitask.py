"""The one task module behind every VA / EXPR / AU architecture of the package.

:class:`MultiTaskModule` is composed of parts (anomalib ``AnomalibModule`` / torchgeo
``trainers/base.py`` style): a network ``net`` (an ``nn.Module`` returning ``va`` / ``expr`` / ``au``
and declaring the batch keys it reads in ``input_keys``) and a loss ``loss``
(:class:`affect.losses.MultiTaskLoss`, eq. 4-7 and the couplings of Sec. VI-B), each passed in (in
YAML by ``class_path``) or built by :meth:`~MultiTaskModule.configure_net` /
:meth:`~MultiTaskModule.configure_loss`. An architecture's LightningModule is a subclass that declares
only its network's arguments; the others reach this class through ``**kwargs``.

It owns: the steps (one frame / sequence batch, or domain batches ``{"va", "au", "expr"}``
concatenated into one forward pass as in Fig. 4; AU targets narrowed to the model's AU set; sequence
outputs reduced to their valid frames once per step, :class:`~affect.data.batches.FrameRows`, read by
the loss, the metrics and the callbacks), the metrics per stage and task logged as
``{stage}/{task}/{metric}`` plus ``{stage}/p_mtl`` and the losses (:mod:`affect.models.task_metrics`;
an evaluation loader keyed by a task name updates only that task), the initial weights (once, when ``fit`` starts:
:mod:`affect.models.weights`), Adam with optional exponential decay (Sec. V-A), and prediction
(``va``, softmax ``expr``, sigmoid ``au`` plus the batch's ids). Per-sequence medians and figures are
callbacks (:mod:`affect.models.callbacks`) fed by what the evaluation steps return.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import lightning as L
import torch
from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters
from torch import Tensor, nn

from affect.data.batches import ID_KEYS, TARGET_KEYS, TASKS, Batch, DomainBatch, FrameRows
from affect.errors import ConfigError
from affect.labels import AU_SET, EXPR_CLASSES
from affect.losses import MultiTaskLoss
from affect.models.batching import (
    NORMALISATION,
    InputSpec,
    concat_batches,
    is_domain_batch,
    narrow_au,
    network_inputs,
)
from affect.models.optim import adam_with_decay
from affect.models.stages import STAGES, EpochEndHooks
from affect.models.task_metrics import TaskMetrics
from affect.models.weights import InitialWeights, load_weights

__all__ = ["STAGES", "EpochEndHooks", "MultiTaskModule"]


class MultiTaskModule(EpochEndHooks, L.LightningModule):
    """VA / EXPR / AU training, evaluation and prediction around a network (module docstring).

    Args (keyword-only):
        net: the network; ``None`` = :meth:`configure_net` (the subclass's architecture).
        loss: the objective; ``None`` = :meth:`configure_loss` (eq. 7 without coupling, on ``au_set``).
            Any :class:`~affect.losses.MultiTaskLoss` option is set here, e.g. in YAML
            ``loss: {class_path: affect.losses.MultiTaskLoss, init_args: {soft_co_annotation: true}}``;
            its ``au_set`` must be the model's.
        tasks: trained tasks, a non-empty subset of ``("va", "expr", "au")``.
        au_set: the AU head's AUs, in output order (17 by default).
        image_size: side of the square input images (paper: 96); linked from the datamodule by the CLI.
        lr: Adam learning rate (paper: 1e-4 or 1e-5).
        lr_decay_after: epoch from which the learning rate decays exponentially (``None`` = constant).
        lr_decay_gamma: the per-epoch decay factor.
        lr_schedule: ``"step"`` (the paper's: constant, or the decay above) or ``"cosine"`` (not in the
            paper: annealed to 0 over the run's optimiser steps, ``trainer.max_epochs`` / ``max_steps``;
            needs ``lr_decay_after: null``).
        au_threshold: AU decision threshold of the AU metrics.
        init_checkpoint: a checkpoint of an earlier run whose tensors are copied where name and shape
            match, when ``fit`` starts (e.g. MT-VGG pre-trained on Aff-Wild, Sec. VI-A; CNN-RNNs
            pre-trained on Aff-Wild2, Sec. V-B). ``$VAR`` is expanded.
        reset_head: with ``init_checkpoint``, keep a new output layer ("the output layer was discarded
            and substituted by a new one", Sec. VI-A): ``net.head.`` / ``net.out.`` are not copied.
        trusted_weights: allow weights files that need unpickling (they can run code); see
            :mod:`affect.models.weights`. Off by default.
        compile_net: ``torch.compile`` the network when fitting on a GPU.
        test_time_flip: in validation, test and predict, average the network's outputs (VA values,
            EXPR and AU logits) over each face and its mirror image (not in the paper; an option of
            the FER2013 recipe: +1 forward pass per evaluated batch). Networks that also take
            landmarks are refused (their points would need mirroring too).
        mixup_alpha: train on mixed faces (:meth:`mixup_step`; Zhang et al. 2018, not in the paper) with
            ``lam ~ Beta(mixup_alpha, mixup_alpha)``; 0 = off. Frame networks that take only images.
    """

    net: nn.Module

    def __init__(
        self,
        *,
        net: nn.Module | None = None,
        loss: MultiTaskLoss | None = None,
        tasks: Sequence[str] = TASKS,
        au_set: Sequence[int] = AU_SET,
        image_size: int = 96,
        lr: float = 1e-4,
        lr_decay_after: int | None = None,
        lr_decay_gamma: float = 0.95,
        lr_schedule: Literal["step", "cosine"] = "step",
        au_threshold: float = 0.5,
        init_checkpoint: str | None = None,
        reset_head: bool = False,
        trusted_weights: bool = False,
        compile_net: bool = False,
        test_time_flip: bool = False,
        mixup_alpha: float = 0.0,
    ) -> None:
        super().__init__()
        tasks = tuple(tasks)
        unknown = [t for t in tasks if t not in TASKS]
        if not tasks or unknown or len(set(tasks)) != len(tasks):
            raise ValueError(
                f"tasks must be a non-empty subset of {TASKS} without repeats, found {list(tasks)}"
            )
        if lr_decay_after is not None and lr_decay_after < 0:
            raise ValueError(f"lr_decay_after must be >= 0 or None, found {lr_decay_after}")
        if image_size < 8:
            raise ValueError(f"image_size must be >= 8 pixels, found {image_size}")
        if not mixup_alpha >= 0:
            raise ValueError(f"mixup_alpha must be >= 0 (0 = off), found {mixup_alpha}")
        # Parts given as objects in Python are saved with the weights, not as hyper-parameters; the
        # CLI's hyper-parameters hold their class_path / init_args (plain types) and are kept.
        cli = _given_hyperparameters.get() is not None
        self.save_hyperparameters(ignore=[] if cli else ["net", "loss"])
        self.tasks = tasks
        self.au_set = tuple(int(a) for a in au_set)
        self.test_time_flip = test_time_flip
        self.net = net if net is not None else self.configure_net()
        self.loss_fn = loss if loss is not None else self.configure_loss()
        self._check_parts()
        self.metrics = self.configure_metrics()
        #: ``{stage: {task: results}}`` of the last finished epoch (for callbacks: figures, summaries).
        self.epoch_results: dict[str, dict[str, dict[str, Tensor]]] = {}
        self._initial_weights_done = False
        self._channels_last = False

    # ------------------------------------------------------------------ parts
    def configure_net(self) -> nn.Module:
        """The default network of this architecture (subclasses); the base needs ``net=``."""
        raise TypeError(
            f"{type(self).__name__} has no default network: pass net= (in YAML: model.init_args.net.class_path) "
            "or use an architecture's module (FaceBehaviorNetModule, MTVGGModule, AffWildNetModule, ...)"
        )

    def configure_loss(self) -> MultiTaskLoss:
        """The default loss: eq. 7 (eq. 4-6 / eq. 2 for the trained heads), no coupling."""
        return MultiTaskLoss(au_set=self.au_set, relatedness=None)

    def configure_metrics(self) -> TaskMetrics:
        """The metrics per stage and task and the means of the loss's terms (:class:`TaskMetrics`)."""
        loss = self.loss_fn
        terms = [*self.tasks] + ["dm"] * loss.distribution_matching + ["soft"] * loss.soft_co_annotation
        return TaskMetrics(self.tasks, self.au_set, au_threshold=self.hparams.au_threshold, terms=terms)

    def _check_parts(self) -> None:
        produced = getattr(self.net, "output_tasks", TASKS)
        missing = [t for t in self.tasks if t not in produced]
        if missing:
            raise ConfigError(
                f"{type(self).__name__}: tasks {list(self.tasks)} but the network {type(self.net).__name__} "
                f"predicts only {list(produced)}; set model.init_args.tasks to a subset of {list(produced)}"
            )
        inputs = getattr(self.net, "input_keys", ("image",))
        if self.hparams.get("mixup_alpha", 0.0) > 0 and tuple(inputs) != ("image",):
            raise ConfigError(
                f"mixup_alpha mixes face images only, but {type(self.net).__name__} takes {list(inputs)}; "
                "set model.init_args.mixup_alpha to 0 for this network"
            )
        if self.test_time_flip and ("image" not in inputs or "landmarks" in inputs):
            raise ConfigError(
                f"test_time_flip mirrors face images only, but {type(self.net).__name__} takes {list(inputs)}; "
                "turn model.init_args.test_time_flip off for this network"
            )
        loss = self.loss_fn
        if tuple(loss.au_set) != self.au_set and "au" in self.tasks:
            raise ConfigError(
                f"loss.au_set {list(loss.au_set)} differs from the model's au_set {list(self.au_set)}: "
                "set model.init_args.loss.init_args.au_set to the model's"
            )
        if loss.coupled and not {"expr", "au"} <= set(self.tasks):
            raise ConfigError(
                "the coupling losses (co_annotation / distribution_matching / soft_co_annotation) couple EXPR "
                f"and AU: tasks must contain 'expr' and 'au', found {list(self.tasks)}"
            )

    @property
    def input_spec(self) -> InputSpec:
        """What the network takes: frames or sequences, the image side, the spectrogram side."""
        return InputSpec.of(self.net, int(self.hparams.image_size))

    # ------------------------------------------------------------------ forward
    def forward(self, *inputs: Tensor | None) -> dict[str, Tensor]:
        """The network on batch tensors given in the order of its ``input_keys`` (uint8 images as they
        come from a loader: ``module(images)``, ``module(images, landmarks, landmarks_mask)``)."""
        keys = getattr(self.net, "input_keys", ("image",))
        if len(inputs) > len(keys):
            raise TypeError(f"{type(self.net).__name__} takes {list(keys)}, got {len(inputs)} inputs")
        return self.forward_batch(dict(zip(keys, inputs, strict=False)))

    def forward_batch(self, batch: Batch) -> dict[str, Tensor]:
        """The network's outputs for a batch: the keys the network declares in ``input_keys``
        (:func:`~affect.models.batching.network_inputs` normalises images on the device)."""
        inputs = network_inputs(self.net, batch)
        if not self._channels_last and inputs and isinstance(inputs[0], Tensor) and inputs[0].ndim == 4:
            # frame images come channels-last (network_inputs); the weights follow once, else every
            # convolution converts between layouts (NHWC is 1.4-2x faster here, CPU and GPU)
            self.net.to(memory_format=torch.channels_last)
            self._channels_last = True
        return self.net(*inputs)

    def evaluation_outputs(self, batch: Batch) -> dict[str, Tensor]:
        """:meth:`forward_batch`, averaged with the mirrored faces' outputs when ``test_time_flip``."""
        outputs = self.forward_batch(batch)
        if not self.test_time_flip:
            return outputs
        mirrored = self.forward_batch({**batch, "image": batch["image"].flip(-1)})
        return {k: (v + mirrored[k]) / 2 if k in mirrored else v for k, v in outputs.items()}

    def prepare_batch(self, batch: Batch | DomainBatch) -> Batch:
        """One batch (domain batches concatenated, Fig. 4) with AU targets on the model's AU set."""
        batch = concat_batches(batch) if is_domain_batch(batch) else dict(batch)
        return narrow_au(batch, self.au_set)

    def frame_rows(self, outputs: Mapping[str, Tensor], batch: Batch) -> FrameRows:
        """The trained tasks' outputs and the batch's targets on the valid frames: the one flattening
        of a step, read by the loss, the metrics and (evaluation) the callbacks."""
        return FrameRows.of({t: outputs[t] for t in self.tasks}, batch)

    # ------------------------------------------------------------------ steps
    def training_step(self, batch: Batch | DomainBatch, batch_idx: int) -> Tensor:
        batch = self.prepare_batch(batch)
        if self.hparams.get("mixup_alpha", 0.0) > 0:
            return self.mixup_step(batch)
        return self.shared_step("train", self.frame_rows(self.forward_batch(batch), batch), self.tasks)

    def mixup_step(self, batch: Batch) -> Tensor:
        """A training step on mixed faces (mixup, Zhang et al. 2018; not in the paper).

        The batch's images become ``lam * x + (1 - lam) * x[perm]`` (rounded to uint8, the batch
        convention), ``lam ~ Beta(mixup_alpha, mixup_alpha)`` and ``perm`` a random permutation
        (both from torch's seeded generator); the loss is ``lam * L(targets) + (1 - lam) *
        L(targets[perm])``, every target with its own mask, so a mixed VA face with an AU face learns
        each label where it exists. The training metrics read the mixed faces against their first
        targets. Frame batches only: a sequence batch is refused (its frames' masks differ).
        """
        image = batch["image"]
        if image.ndim != 4:
            raise ConfigError(
                f"mixup_alpha mixes frame batches [B, 3, H, W]; this batch's images are {tuple(image.shape)} "
                "(sequences): set model.init_args.mixup_alpha to 0"
            )
        alpha = float(self.hparams.mixup_alpha)
        lam = float(torch.distributions.Beta(alpha, alpha).sample())
        perm = torch.randperm(image.shape[0]).to(image.device)
        mixed = (lam * image.float() + (1.0 - lam) * image[perm].float()).round_().to(torch.uint8)
        batch = {**batch, "image": mixed}
        shuffled = {**batch, **{k: batch[k][perm] for k in TARGET_KEYS if isinstance(batch.get(k), Tensor)}}
        outputs = self.forward_batch(batch)
        rows = self.frame_rows(outputs, batch)
        first, second = self.loss_fn(rows), self.loss_fn(self.frame_rows(outputs, shuffled))
        terms = {k: lam * v + (1.0 - lam) * second[k] for k, v in first.items()}
        return self.shared_step("train", rows, self.tasks, terms=terms)

    def validation_step(self, batch: Batch | DomainBatch, batch_idx: int, dataloader_idx: int = 0) -> dict:
        return self.evaluation_step("val", batch, dataloader_idx)

    def test_step(self, batch: Batch | DomainBatch, batch_idx: int, dataloader_idx: int = 0) -> dict:
        return self.evaluation_step("test", batch, dataloader_idx)

    def evaluation_step(self, stage: str, batch: Batch | DomainBatch, dataloader_idx: int = 0) -> dict:
        """Update ``stage``'s metrics; returns ``{"outputs", "batch", "rows", "tasks"}`` for callbacks:
        the trained tasks' outputs (``[B, T, C]`` for sequences), the batch, their
        :class:`~affect.data.batches.FrameRows` and the tasks this loader evaluates."""
        batch = self.prepare_batch(batch)
        outputs = self.evaluation_outputs(batch)
        tasks = self.domain_tasks(stage, dataloader_idx)
        rows = self.frame_rows(outputs, batch)
        self.shared_step(stage, rows, tasks)
        return {"outputs": {k: outputs[k].detach() for k in self.tasks}, "batch": batch, "rows": rows.detach(),
                "tasks": tasks}  # fmt: skip

    def predict_step(self, batch: Batch, batch_idx: int, dataloader_idx: int = 0) -> dict:
        """``va`` ``[B, 2]``, ``expr`` softmax ``[B, 7]``, ``au`` sigmoid ``[B, A]`` of the trained
        tasks (``[B, T, ...]`` for sequences), plus the batch's ids (``ID_KEYS``) when present."""
        batch = self.prepare_batch(batch)
        outputs = self.evaluation_outputs(batch)
        pred: dict = {}
        if "va" in self.tasks:
            pred["va"] = outputs["va"].float()
        if "expr" in self.tasks:
            pred["expr"] = outputs["expr"].float().softmax(-1)
        if "au" in self.tasks:
            pred["au"] = outputs["au"].float().sigmoid()
        pred.update({k: batch[k] for k in ID_KEYS if k in batch})
        return pred

    def domain_tasks(self, stage: str, dataloader_idx: int) -> tuple[str, ...]:
        """Tasks whose metrics a dataloader updates: its key, if that is a task name; else all."""
        loaders = self.trainer.val_dataloaders if stage == "val" else self.trainer.test_dataloaders
        if isinstance(loaders, Mapping):
            names = list(loaders)
            if dataloader_idx < len(names) and names[dataloader_idx] in TASKS:
                return tuple(t for t in self.tasks if t == names[dataloader_idx])
        return self.tasks

    def shared_step(
        self, stage: str, rows: FrameRows, metric_tasks: Sequence[str], terms: dict[str, Tensor] | None = None
    ) -> Tensor:
        """Loss terms of a step's ``rows`` (or the given ``terms``), their logging, and the metric
        updates of ``metric_tasks``; returns the loss."""
        terms = self.loss_fn(rows) if terms is None else terms
        n = int(rows.batch["image"].shape[0])
        if stage == "train":
            self.log("train/loss", terms["loss"], on_step=True, on_epoch=True, prog_bar=True, batch_size=n)
        self.metrics.update(stage, terms, rows, n, metric_tasks)
        return terms["loss"]

    # ------------------------------------------------------------------ epoch ends (EpochEndHooks)
    def log_epoch_metrics(self, stage: str) -> dict[str, dict[str, Tensor]]:
        """Compute (synced over processes), log and reset the stage's metrics; returns the results."""
        results, logged = self.metrics.compute(stage)
        # Values are already global (torchmetrics syncs in compute); sync_dist only averages identical
        # copies, and keeps Lightning from warning about unsynced epoch-level logs under DDP.
        self.log_dict({k: v.float() for k, v in logged.items()}, sync_dist=True, add_dataloader_idx=False)
        self.epoch_results[stage] = results
        return results

    # ------------------------------------------------------------------ initial weights
    def initial_weights(self) -> list[InitialWeights]:
        """The weights files this module starts from (subclasses add theirs before calling super)."""
        if not self.hparams.get("init_checkpoint"):
            return []
        exclude = ("net.head.", "net.out.") if self.hparams.get("reset_head") else ()
        return [InitialWeights("init_checkpoint", self, self.hparams.init_checkpoint, exclude=exclude)]

    def setup(self, stage: str) -> None:
        """Load :meth:`initial_weights` once, when fitting starts.

        Only for ``fit``, and never for a module restored from a checkpoint: ``validate`` / ``test`` /
        ``predict --ckpt_path`` never read the (possibly absent) files named in the saved settings.
        When ``fit`` resumes from ``--ckpt_path``, Lightning restores the checkpoint after this hook,
        so its weights win.
        """
        if stage == "fit" and not self._initial_weights_done:
            self.load_initial_weights()
            self._initial_weights_done = True

    def load_initial_weights(self) -> None:
        """Load every :meth:`initial_weights` source, in order (later sources overwrite earlier ones)."""
        from affect.models.backbones import load_vggface

        trusted = bool(self.hparams.get("trusted_weights", False))
        for source in self.initial_weights():
            if source.layout == "vggface":
                load_vggface(source.target, source.path, trusted=trusted, key=source.key)
            elif source.layout == "by_order":
                from affect.models.pretrained import load_by_order

                load_by_order(source.target, source.path, key=source.key)
            else:
                load_weights(source.target, source.path, exclude=source.exclude, strict=source.strict,
                             trusted=trusted, key=source.key)  # fmt: skip

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._initial_weights_done = True

    def configure_model(self) -> None:
        """``torch.compile`` the network for fitting on a GPU when ``compile_net`` is set."""
        if self.hparams.get("compile_net") and self.device.type == "cuda" and not hasattr(self.net, "_orig_mod"):
            self.net = torch.compile(self.net)

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Store the label spaces and input convention beside the hyper-parameters (``"affect"`` key)."""
        checkpoint["affect"] = self.label_spaces()

    def label_spaces(self) -> dict:
        """What a predictor needs besides the weights: class names, AU set, tasks, input convention."""
        return {
            "expr_classes": list(EXPR_CLASSES),
            "au_set": list(self.au_set),
            "tasks": list(self.tasks),
            "image_size": int(self.hparams.image_size),
            "normalisation": NORMALISATION,
            "format": 2,
        }

    # ------------------------------------------------------------------ optimisation (affect.models.optim)
    def configure_optimizers(self):
        h = self.hparams
        cosine = int(self.trainer.estimated_stepping_batches) if h.get("lr_schedule") == "cosine" else None
        return adam_with_decay(self.parameters(), h.lr, h.lr_decay_after, h.lr_decay_gamma, cosine_steps=cosine)
