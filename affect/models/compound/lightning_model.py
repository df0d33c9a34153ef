"""Compound expressions with FaceBehaviorNet (paper Sec. VI-B "Zero-Shot and Few-Shot Learning",
eq. 10, Table VI): two thin LightningModules.

- :class:`ZeroShotCompound` — no training. Loads a trained
  :class:`~affect.models.facebehaviornet.lightning_model.FaceBehaviorNetModule` checkpoint and turns
  its VA / EXPR / AU predictions into compound-class scores with eq. 10
  (:func:`affect.models.compound.zero_shot.compound_scores`); the prediction is the arg-max. Used
  with ``affect test`` / ``affect validate`` (Table VI rows "zero-shot FaceBehaviorNet ...": RAF-DB
  compound Diag., EmotioNet F1 and UAR). ``fit`` stops with an error.
- :class:`CompoundFineTune` — few-shot (Table VI rows "fine-tuned FaceBehaviorNet ..."): the
  FaceBehaviorNet of a checkpoint with its output layer (``2 + 7 + 17`` units) replaced by a
  ``K``-class compound layer on the same shared features (FC2), trained end to end with cross
  entropy on the batch's ``"compound"`` targets, Adam, learning rate 1e-4 (the paper's FaceBehaviorNet
  rate; the paper gives none for fine-tuning).

Both update :class:`~affect.metrics.ExprMetrics` (``num_classes = K``) with the batch's
``"compound"`` target (-1 = no compound label, ignored) and log, per stage, ``{stage}/compound/diag``
(mean diagonal of the row-normalised confusion matrix, RAF-DB's criterion), ``/f1`` (macro),
``/uar`` and ``/acc`` over the whole epoch (exact under DDP), plus the confusion matrix as a
figure at the end of validation / test (``log_media``).

Class lists (``classes``): names of compound classes of Du, Tao & Martinez 2014 (the
``compound_du2014`` table, or the JSON file ``compound_table``), in the order of the datamodule's
``compound`` index: RAF-DB's 11 (``labels.RAFDB_COMPOUND_CLASSES``, the default) or EmotioNet's
6 basic + 10 compound (``affect.data.corpora.emotionet.EMOTIONET_CLASSES``). A basic-emotion name
that the compound table does not hold (EmotioNet's "Happiness", ...) becomes a class whose AUs are
its prototypical AUs of Table V (``du2014``) and whose two "components" are the emotion itself
(eq. 10's ``p(emo1) + p(emo2)`` = ``2 p(emo)``, so a basic class and a compound class are scored on
the same 0..2 scale); only Happiness gets the valence term. This is our reading of "the zero-shot
methodology ... was similar" for EmotioNet's basic classes (:func:`resolve_compound_classes`).

>>> [c.components for c in resolve_compound_classes(["Happiness", "Sadly Angry"])]
[('Happiness', 'Happiness'), ('Sadness', 'Anger')]
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Literal

import lightning as L
from torch import Tensor, nn

from affect.data.batches import ID_KEYS, TASKS
from affect.labels import AU_SET, RAFDB_COMPOUND_CLASSES
from affect.losses import expr_ce_loss
from affect.metrics import ExprMetrics
from affect.models.batching import NORMALISATION, InputSpec, normalise_images
from affect.models.compound.torch_model import (
    CompoundHead,
    check_checkpoint_image_size,
    load_facebehaviornet,
)
from affect.models.compound.zero_shot import compound_au_table, compound_scores, resolve_compound_classes
from affect.models.facebehaviornet.torch_model import FaceBehaviorNet
from affect.models.optim import adam_with_decay
from affect.models.stages import EpochEndHooks
from affect.tracking import confusion_matrix_figure, log_figure

__all__ = ["COMPOUND_METRICS", "CompoundFineTune", "ZeroShotCompound"]

log = logging.getLogger(__name__)

#: The scalars logged as ``{stage}/compound/{name}`` (Table VI: Diag. for RAF-DB, F1 and UAR for EmotioNet).
COMPOUND_METRICS: tuple[str, ...] = ("diag", "f1", "uar", "acc")


def _check_image_size(images: Tensor, size: int, who: str) -> None:
    if images.shape[-2:] != (size, size):
        raise ValueError(
            f"{who}: the network was built for {size}x{size} images but the batch holds "
            f"{tuple(images.shape[-2:])}; set the datamodule's image_size to {size}"
        )


class _CompoundMetricsMixin:
    """Per-stage :class:`ExprMetrics` over the compound classes, logged at epoch end."""

    class_names: list[str]
    compound_metrics: nn.ModuleDict

    def _make_metrics(self, stages: Sequence[str]) -> None:
        self.compound_metrics = nn.ModuleDict(
            {f"{s}_compound": ExprMetrics(num_classes=len(self.class_names)) for s in stages}
        )

    def _target(self, batch: Mapping) -> Tensor:
        if "compound" not in batch:
            raise KeyError(
                f"{type(self).__name__}: the batch has no 'compound' target (keys {sorted(batch)}); "
                "use a compound corpus (RafDbDataModule subset=compound, EmotioNet compound sheets)"
            )
        return batch["compound"].long()

    def _update(self, stage: str, scores: Tensor, batch: Mapping) -> None:
        self.compound_metrics[f"{stage}_compound"].update(scores.detach().float(), self._target(batch))

    def log_epoch_metrics(self, stage: str) -> dict[str, Tensor]:
        """Compute, log (``{stage}/compound/{name}``, the confusion matrix) and reset the stage's
        compound metrics (called by :class:`~affect.models.stages.EpochEndHooks`)."""
        metric = self.compound_metrics[f"{stage}_compound"]
        result = metric.compute()
        metric.reset()
        self.log_dict(  # type: ignore[attr-defined]
            {f"{stage}/compound/{k}": result[k].float() for k in COMPOUND_METRICS},
            sync_dist=True,
            add_dataloader_idx=False,
        )
        if stage != "train" and self.hparams.log_media:  # type: ignore[attr-defined]
            trainer = self.trainer  # type: ignore[attr-defined]
            if not trainer.sanity_checking and trainer.is_global_zero and self.loggers:  # type: ignore[attr-defined]
                fig = confusion_matrix_figure(
                    result["confmat"], self.class_names, title="compound confusion matrix"
                )
                log_figure(self.loggers, f"{stage}/compound/confmat", fig, self.global_step)  # type: ignore[attr-defined]
        return result


class ZeroShotCompound(_CompoundMetricsMixin, EpochEndHooks, L.LightningModule):
    """Zero-shot compound expressions from a trained FaceBehaviorNet (eq. 10, Table VI); no training.

    Args:
        checkpoint: a :class:`FaceBehaviorNetModule` checkpoint trained on all three tasks
            (``va``, ``expr``, ``au``: eq. 10 uses valence, the 7 basic-expression probabilities and
            the AU probabilities). Loaded on the CPU; Lightning moves it to the device.
        classes: the class names in the order of the datamodule's ``compound`` index (default
            RAF-DB's 11; EmotioNet: its 16, see the module docstring).
        compound_table: a JSON file overriding the compound table (same shape as the
            ``compound_du2014`` entry of ``affect/relatedness/tables.json``).
        au_term: eq. 10's AU term: ``"mean"`` (our reading, see
            :mod:`affect.models.compound.zero_shot`) or ``"sum"``.
        log_media: log the confusion matrix at the end of validation / test.
        image_size: the data's image size (linked by the CLI); must be the checkpoint's.
        trusted_weights: allow a ``checkpoint`` that needs unpickling (it can run code; see
            :mod:`affect.models.weights`). Off by default.

    ``test_step`` / ``validation_step`` update the metrics; ``predict_step`` returns ``scores``
    ``[B, K]``, the predicted index ``compound`` ``[B]`` and name ``label`` (list of str), the
    FaceBehaviorNet outputs (``va``, ``expr`` softmax, ``au`` sigmoid) and the batch's ids.
    """

    #: Built trained (from ``checkpoint``): ``affect predict`` runs it without ``--ckpt_path``.
    predicts_without_checkpoint = True

    def __init__(
        self,
        checkpoint: str,
        classes: list[str] | None = None,
        compound_table: str | None = None,
        au_term: Literal["mean", "sum"] = "mean",
        log_media: bool = True,
        image_size: int | None = None,
        trusted_weights: bool = False,
    ) -> None:
        super().__init__()
        if au_term not in ("mean", "sum"):
            raise ValueError(f"au_term must be 'mean' or 'sum', found {au_term!r}")
        self.save_hyperparameters()
        fbn = load_facebehaviornet(checkpoint, trusted=trusted_weights)
        missing = [t for t in TASKS if t not in fbn.tasks]
        if missing:
            raise ValueError(
                f"ZeroShotCompound needs a FaceBehaviorNet trained on {list(TASKS)} (eq. 10 uses valence, "
                f"expressions and AUs); checkpoint {checkpoint} was trained on {list(fbn.tasks)} only"
            )
        self.compound_classes = resolve_compound_classes(classes, compound_table)
        self.class_names = [c.name for c in self.compound_classes]
        self.au_set = tuple(fbn.au_set)
        compound_au_table(self.compound_classes, self.au_set)  # every class needs an AU the net predicts
        self.image_size = int(fbn.arch["image_size"])
        check_checkpoint_image_size(image_size, self.image_size, checkpoint)
        self.net = fbn.net
        self.net.requires_grad_(False)
        self.net.eval()
        self._make_metrics(("val", "test"))

    @property
    def input_spec(self) -> InputSpec:
        """Frames of the FaceBehaviorNet's image side."""
        return InputSpec(self.image_size)

    # ------------------------------------------------------------------ eq. 10
    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """uint8 images ``[B, 3, H, W]`` -> ``scores`` ``[B, K]`` (eq. 10) and the net's probabilities."""
        _check_image_size(images, self.image_size, "ZeroShotCompound")
        out = self.net(normalise_images(images))
        va, expr, au = out["va"].float(), out["expr"].float().softmax(-1), out["au"].float().sigmoid()
        scores = compound_scores(au, expr, va[:, 0], self.compound_classes, self.au_set, self.hparams.au_term)
        return {"scores": scores, "va": va, "expr": expr, "au": au}

    def validation_step(self, batch: Mapping, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._update("val", self(batch["image"])["scores"], batch)

    def test_step(self, batch: Mapping, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._update("test", self(batch["image"])["scores"], batch)

    def predict_step(self, batch: Mapping, batch_idx: int, dataloader_idx: int = 0) -> dict:
        out = self(batch["image"])
        index = out["scores"].argmax(-1)
        pred = {**out, "compound": index, "label": [self.class_names[i] for i in index.tolist()]}
        pred.update({k: batch[k] for k in ID_KEYS if k in batch})
        return pred

    # ------------------------------------------------------------------ no training
    def _no_training(self) -> None:
        raise RuntimeError(
            "ZeroShotCompound is zero-shot (eq. 10 on a trained FaceBehaviorNet) and cannot be fitted: run "
            "`affect test` or `affect validate` with it; to train on compound labels use CompoundFineTune"
        )

    def setup(self, stage: str) -> None:
        if stage == "fit":
            self._no_training()

    def training_step(self, batch: Mapping, batch_idx: int) -> Tensor:
        self._no_training()
        raise AssertionError  # unreachable

    def configure_optimizers(self):
        self._no_training()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["affect"] = {
            "compound_classes": list(self.class_names), "au_set": list(self.au_set),
            "image_size": self.image_size, "normalisation": NORMALISATION,
        }  # fmt: skip


class CompoundFineTune(_CompoundMetricsMixin, EpochEndHooks, L.LightningModule):
    """Few-shot compound classification: FaceBehaviorNet fine-tuned on compound labels (Table VI).

    Args:
        init_checkpoint: a :class:`FaceBehaviorNetModule` checkpoint whose conv backbone and FC1/FC2
            initialise the network (its ``backbone``, ``hidden``, ``dropout`` and ``image_size``
            then override the arguments below). ``None`` = random init (smoke tests; not a Table VI
            row, a warning says so).
        classes: class names in the order of the datamodule's ``compound`` index (default RAF-DB's
            11); only their number and names are used.
        backbone, hidden, dropout, image_size: the architecture when ``init_checkpoint`` is None
            (as :class:`FaceBehaviorNetModule`).
        freeze_backbone: keep the conv backbone fixed (weights and batch-norm statistics); FC1, FC2
            and the new output layer are trained. False (default) fine-tunes end to end.
        lr: Adam learning rate (1e-4).
        log_media: log the confusion matrix at the end of validation / test.
        trusted_weights: allow an ``init_checkpoint`` that needs unpickling (it can run code; see
            :mod:`affect.models.weights`). Off by default.

    Saved checkpoints carry the resolved architecture in their hyper-parameters and
    ``init_checkpoint`` set to None (the weights are in the state dict; the source is kept in
    ``checkpoint["affect"]["init_checkpoint"]``), so they reload without the FaceBehaviorNet file.
    """

    def __init__(
        self,
        init_checkpoint: str | None = None,
        classes: list[str] | None = None,
        backbone: str = "vgg16",
        hidden: int = 4096,
        dropout: float = 0.5,
        image_size: int = 96,
        freeze_backbone: bool = False,
        lr: float = 1e-4,
        log_media: bool = True,
        trusted_weights: bool = False,
    ) -> None:
        super().__init__()
        self.class_names = list(RAFDB_COMPOUND_CLASSES if classes is None else classes)
        if len(self.class_names) < 2 or len(set(self.class_names)) != len(self.class_names):
            raise ValueError(f"classes must hold at least 2 distinct names, found {self.class_names}")
        self.save_hyperparameters()
        if init_checkpoint:
            fbn = load_facebehaviornet(init_checkpoint, trusted=trusted_weights)
            check_checkpoint_image_size(image_size, fbn.arch["image_size"], init_checkpoint)
            self.hparams.update(fbn.arch)
            net = fbn.net
        else:
            log.warning(
                "CompoundFineTune: no init_checkpoint, the network starts from random weights "
                "(a smoke run, not the Table VI fine-tuned FaceBehaviorNet)"
            )
            net = FaceBehaviorNet(
                backbone=backbone, hidden=hidden, dropout=dropout, num_aus=len(AU_SET), image_size=image_size
            )
        net.head = CompoundHead(net.hidden, len(self.class_names))
        self.net = net
        self._init_source = init_checkpoint
        if freeze_backbone:
            self.net.backbone.requires_grad_(False)
            self.net.backbone.eval()
        self._make_metrics(("train", "val", "test"))

    @property
    def input_spec(self) -> InputSpec:
        """Frames of the network's image side."""
        return InputSpec(int(self.hparams.image_size))

    def train(self, mode: bool = True) -> CompoundFineTune:
        super().train(mode)
        if self.hparams.freeze_backbone:
            self.net.backbone.eval()  # frozen = fixed batch-norm statistics too
        return self

    def forward(self, images: Tensor) -> Tensor:
        """uint8 images ``[B, 3, H, W]`` -> compound logits ``[B, K]``."""
        _check_image_size(images, self.hparams.image_size, "CompoundFineTune")
        return self.net(normalise_images(images))["compound"]

    def _step(self, stage: str, batch: Mapping) -> Tensor:
        logits = self(batch["image"])
        loss = expr_ce_loss(logits.float(), self._target(batch))
        n = int(batch["image"].shape[0])
        self.log(
            f"{stage}/loss",
            loss,
            on_step=stage == "train",
            on_epoch=True,
            prog_bar=stage == "train",
            batch_size=n,
            sync_dist=stage != "train",
        )
        self._update(stage, logits, batch)
        return loss

    def training_step(self, batch: Mapping, batch_idx: int) -> Tensor:
        return self._step("train", batch)

    def validation_step(self, batch: Mapping, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._step("val", batch)

    def test_step(self, batch: Mapping, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._step("test", batch)

    def predict_step(self, batch: Mapping, batch_idx: int, dataloader_idx: int = 0) -> dict:
        """``probs`` softmax ``[B, K]``, predicted index ``compound`` ``[B]`` and name ``label``, ids."""
        probs = self(batch["image"]).softmax(-1)
        index = probs.argmax(-1)
        pred = {"probs": probs, "compound": index, "label": [self.class_names[i] for i in index.tolist()]}
        pred.update({k: batch[k] for k in ID_KEYS if k in batch})
        return pred

    def configure_optimizers(self):
        return adam_with_decay(self.parameters(), self.hparams.lr)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        source = self._init_source
        # the architecture is in the other hyper-parameters, the weights in the state dict
        if "hyper_parameters" in checkpoint:
            checkpoint["hyper_parameters"] = {**checkpoint["hyper_parameters"], "init_checkpoint": None}
        checkpoint["affect"] = {
            "compound_classes": list(self.class_names), "image_size": int(self.hparams.image_size),
            "normalisation": NORMALISATION, "init_checkpoint": source,
        }  # fmt: skip

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._init_source = checkpoint.get("affect", {}).get("init_checkpoint", self._init_source)
