"""``CNNRNNModule`` (CNN-1RNN / CNN-3RNN) and ``ModelLevelFusionModule`` (Sec. V-B, Table III).

Thin LightningModules over :mod:`affect.models.cnn_rnn.torch_model`; loss (eq. 2 over valid
frames), metrics, optimisation and the per-sequence median evaluation (``median_eval=True`` by
default here: "their median values are the final estimates"; logged as ``{stage}/va_median/ccc``)
come from :class:`affect.models.affwildnet.lightning_model.SequenceVAModule`. Paper training:
Adam, lr 1e-4 or 1e-5, batch 4 x 80, end to end.

>>> m = CNNRNNModule(mode="1rnn", backbone="test_resnet", backbone_nodes=["layer1", "layer4"],
...                  fc_units=16, rnn_hidden=8, image_size=32, log_media=False)
>>> m.hparams.mode, m.hparams.median_eval
('1rnn', True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from affect.models.affwildnet.lightning_model import SequenceVAModule
from affect.models.cnn_rnn.torch_model import CNNRNN, ModelLevelFusion

__all__ = ["CNNRNNModule", "ModelLevelFusionModule"]


class CNNRNNModule(SequenceVAModule):
    """CNN-3RNN / CNN-1RNN-2nd-pool_last-pool_fc; network arguments as :class:`CNNRNN`."""

    def __init__(
        self,
        mode: Literal["3rnn", "1rnn"] = "3rnn",
        backbone: str = "vgg16",
        backbone_nodes: Sequence[str] | None = None,
        fc_units: int = 4096,
        use_landmarks: bool = True,
        num_landmarks: int = 68,
        rnn_hidden: int = 128,
        rnn_layers: int = 2,
        dropout: float = 0.5,
        rnn_dropout: float = 0.2,
        image_size: int = 96,
        low_pool_size: int = 0,
        vggface_checkpoint: str | None = None,
        lr: float = 1e-4,
        lr_decay_after: int | None = None,
        lr_decay_gamma: float = 0.95,
        median_eval: bool = True,
        log_media: bool = True,
        media_samples: int = 5000,
    ) -> None:
        super().__init__(
            image_size=image_size, lr=lr, lr_decay_after=lr_decay_after, lr_decay_gamma=lr_decay_gamma,
            median_eval=median_eval, log_media=log_media, media_samples=media_samples,
        )  # fmt: skip
        self.net = CNNRNN(
            mode=mode, backbone=backbone, backbone_nodes=backbone_nodes, fc_units=fc_units,
            use_landmarks=use_landmarks, num_landmarks=num_landmarks, rnn_hidden=rnn_hidden,
            rnn_layers=rnn_layers, dropout=dropout, rnn_dropout=rnn_dropout, image_size=image_size,
            low_pool_size=low_pool_size, vggface_checkpoint=vggface_checkpoint,
        )  # fmt: skip


class ModelLevelFusionModule(SequenceVAModule):
    """Model-Level Fusion + RNN / + FC; network arguments as :class:`ModelLevelFusion`.

    ``one_rnn_checkpoint`` / ``three_rnn_checkpoint`` may be checkpoints of :class:`CNNRNNModule`
    runs (the ``net.`` prefix is stripped); the fusion net is then trained end to end.
    """

    def __init__(
        self,
        fusion: Literal["rnn", "fc"] = "rnn",
        fusion_units: int = 128,
        backbone: str = "vgg16",
        backbone_nodes: Sequence[str] | None = None,
        fc_units: int = 4096,
        use_landmarks: bool = True,
        num_landmarks: int = 68,
        rnn_hidden: int = 128,
        rnn_layers: int = 2,
        dropout: float = 0.5,
        rnn_dropout: float = 0.2,
        image_size: int = 96,
        low_pool_size: int = 0,
        vggface_checkpoint: str | None = None,
        one_rnn_checkpoint: str | None = None,
        three_rnn_checkpoint: str | None = None,
        lr: float = 1e-4,
        lr_decay_after: int | None = None,
        lr_decay_gamma: float = 0.95,
        median_eval: bool = True,
        log_media: bool = True,
        media_samples: int = 5000,
    ) -> None:
        super().__init__(
            image_size=image_size, lr=lr, lr_decay_after=lr_decay_after, lr_decay_gamma=lr_decay_gamma,
            median_eval=median_eval, log_media=log_media, media_samples=media_samples,
        )  # fmt: skip
        self.net = ModelLevelFusion(
            fusion=fusion, fusion_units=fusion_units, backbone=backbone, backbone_nodes=backbone_nodes,
            fc_units=fc_units, use_landmarks=use_landmarks, num_landmarks=num_landmarks, rnn_hidden=rnn_hidden,
            rnn_layers=rnn_layers, dropout=dropout, rnn_dropout=rnn_dropout, image_size=image_size,
            low_pool_size=low_pool_size, vggface_checkpoint=vggface_checkpoint,
            one_rnn_checkpoint=one_rnn_checkpoint, three_rnn_checkpoint=three_rnn_checkpoint,
        )  # fmt: skip
