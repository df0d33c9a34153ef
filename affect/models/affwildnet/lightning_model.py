"""``AffWildNetModule``: AffWildNet (paper Sec. V-A, Table II) as a thin LightningModule, and
``SequenceVAModule``, the small VA-only sequence base shared with CNN-1RNN / CNN-3RNN / fusion.

Everything generic (CCC loss of eq. 2 over the valid frames via
:class:`affect.losses.MultiTaskLoss` with ``tasks=("va",)``, metrics ``{stage}/va/ccc`` ...,
Adam with exponential decay, uint8 -> [-1, 1]) is :class:`affect.models.multitask.MultiTaskModule`'s.
This file adds: the landmark inputs, and (``median_eval=True``) the per-sequence-median estimates
of Sec. V-B, evaluated as ``{val,test}/va_median/{ccc,ccc_v,ccc_a,mse,...}`` against the median of
each sequence's annotated frames, and returned by ``predict_step`` as ``"va_median"`` ``[B, 2]``.

>>> module = AffWildNetModule(backbone="test_resnet", fc_units=16, rnn_hidden=8, image_size=32, log_media=False)
>>> module.hparams.rnn, module.hparams.lr_decay_after
('gru', 10)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from torch import Tensor, nn

from affect.labels import AU_SET
from affect.metrics import VAMetrics, scalar_items
from affect.models.affwildnet.torch_model import AffWildNet
from affect.models.multitask import MultiTaskModule, normalise_images
from affect.models.postprocess import sequence_medians, sequence_targets

__all__ = ["AffWildNetModule", "SequenceVAModule"]

MEDIAN_STAGES: tuple[str, ...] = ("val", "test")


class SequenceVAModule(MultiTaskModule):
    """VA-only sequence models whose ``self.net(images, landmarks, landmarks_mask)`` returns ``{"va"}``.

    Args (keyword-only): ``image_size``, ``lr``, ``lr_decay_after``, ``lr_decay_gamma``,
    ``log_media``, ``media_samples`` as :class:`MultiTaskModule`; ``median_eval``: also evaluate
    the per-sequence medians (Sec. V-B) on val / test.
    """

    def __init__(
        self,
        *,
        image_size: int = 96,
        lr: float = 1e-4,
        lr_decay_after: int | None = None,
        lr_decay_gamma: float = 0.95,
        median_eval: bool = False,
        log_media: bool = True,
        media_samples: int = 5000,
    ) -> None:
        super().__init__(
            tasks=("va",), au_set=AU_SET, image_size=image_size, lr=lr, lr_decay_after=lr_decay_after,
            lr_decay_gamma=lr_decay_gamma, log_media=log_media, media_samples=media_samples,
        )  # fmt: skip
        self.median_eval = median_eval
        self.median_metrics = nn.ModuleDict({s: VAMetrics() for s in MEDIAN_STAGES}) if median_eval else None

    def forward(
        self, images: Tensor, landmarks: Tensor | None = None, landmarks_mask: Tensor | None = None
    ) -> dict[str, Tensor]:
        """uint8 ``[B, T, 3, H, W]`` (+ landmarks ``[B, T, L, 2]`` in [0, 1]) -> ``{"va": [B, T, 2]}``."""
        return self.net(normalise_images(images), landmarks, landmarks_mask)

    def forward_batch(self, batch: Mapping) -> dict[str, Tensor]:
        uses_landmarks = any(getattr(m, "use_landmarks", False) for m in self.net.modules())
        landmarks = batch.get("landmarks") if uses_landmarks else None
        return self(batch["image"], landmarks, batch.get("landmarks_mask") if uses_landmarks else None)

    # per-sequence medians (Sec. V-B) --------------------------------------------------------------
    def _shared_step(
        self, stage: str, outputs: Mapping[str, Tensor], batch: Mapping, metric_tasks: Sequence[str]
    ) -> Tensor:
        loss = super()._shared_step(stage, outputs, batch, metric_tasks)
        va = outputs.get("va")
        if self.median_metrics is not None and stage in MEDIAN_STAGES and "va" in metric_tasks and "va" in batch \
                and va is not None and va.dim() == 3:  # fmt: skip
            frame_mask = batch.get("frame_mask")
            target, mask = sequence_targets(batch["va"], batch.get("va_mask"), frame_mask)
            self.median_metrics[stage].update(sequence_medians(va.detach().float(), frame_mask), target, mask)
        return loss

    def _log_median(self, stage: str) -> None:
        if self.median_metrics is None:
            return
        metric = self.median_metrics[stage]
        result = metric.compute()
        metric.reset()
        self.log_dict({f"{stage}/va_median/{k}": v.float() for k, v in scalar_items(result).items()},
                      sync_dist=False, add_dataloader_idx=False)  # fmt: skip

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        self._log_median("val")

    def on_test_epoch_end(self) -> None:
        super().on_test_epoch_end()
        self._log_median("test")

    def predict_step(self, batch: Mapping, batch_idx: int, dataloader_idx: int = 0) -> dict:
        """``MultiTaskModule.predict_step`` plus ``"va_median"`` ``[B, 2]`` for sequence batches."""
        pred = super().predict_step(batch, batch_idx, dataloader_idx)
        if pred["va"].dim() == 3:
            pred["va_median"] = sequence_medians(pred["va"], batch.get("frame_mask"))
        return pred


class AffWildNetModule(SequenceVAModule):
    """AffWildNet and the Table II rows (see :mod:`affect.models.affwildnet.torch_model`).

    Paper training (Sec. V-A): Adam, lr 1e-4, "exponentially decaying after 10 epochs"
    (``lr_decay_after=10``; the decay factor is not given: ``lr_decay_gamma=0.95`` per epoch),
    batch 4 x 80 frames, dropout 0.5, loss eq. 2. The network arguments are
    :class:`~affect.models.affwildnet.torch_model.AffWildNet`'s.
    """

    def __init__(
        self,
        backbone: str = "vgg16",
        fc_units: int = 4096,
        fc_layers: int = 1,
        use_landmarks: bool = True,
        num_landmarks: int = 68,
        rnn: Literal["gru", "lstm", "none"] = "gru",
        rnn_hidden: int = 128,
        rnn_layers: int = 2,
        dropout: float = 0.5,
        rnn_dropout: float = 0.0,
        image_size: int = 96,
        global_pool: bool = False,
        backbone_nodes: Sequence[str] | None = None,
        vggface_checkpoint: str | None = None,
        lr: float = 1e-4,
        lr_decay_after: int | None = 10,
        lr_decay_gamma: float = 0.95,
        median_eval: bool = False,
        log_media: bool = True,
        media_samples: int = 5000,
    ) -> None:
        super().__init__(
            image_size=image_size, lr=lr, lr_decay_after=lr_decay_after, lr_decay_gamma=lr_decay_gamma,
            median_eval=median_eval, log_media=log_media, media_samples=media_samples,
        )  # fmt: skip
        self.net = AffWildNet(
            backbone=backbone, fc_units=fc_units, fc_layers=fc_layers, use_landmarks=use_landmarks,
            num_landmarks=num_landmarks, rnn=rnn, rnn_hidden=rnn_hidden, rnn_layers=rnn_layers, dropout=dropout,
            rnn_dropout=rnn_dropout, image_size=image_size, global_pool=global_pool,
            backbone_nodes=backbone_nodes, vggface_checkpoint=vggface_checkpoint,
        )  # fmt: skip
