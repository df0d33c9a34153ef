"""``AffWildNetModule``: AffWildNet (paper Sec. V-A, Table II) as a thin LightningModule.

Declares the network's arguments (those it shares with the CNN-RNNs in :class:`FrameEncoderModule`)
and builds :class:`~affect.models.affwildnet.torch_model.AffWildNet` (the Table II rows are settings
of it); the CCC loss of eq. 2 over the valid frames, metrics
``{stage}/va/ccc`` ..., Adam with exponential decay, initial weights and the uint8 -> [-1, 1]
normalisation are :class:`affect.models.multitask.MultiTaskModule`'s. The network reads the batch's
``image`` (and ``landmarks`` / ``landmarks_mask`` with ``use_landmarks``).

>>> module = AffWildNetModule(backbone="test_resnet", fc_units=16, rnn_hidden=8, image_size=32)
>>> module.hparams.rnn, module.hparams.lr_decay_after, module.tasks, module.net.input_keys
('gru', 10, ('va',), ('image', 'landmarks', 'landmarks_mask'))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from affect.models.affwildnet.torch_model import AffWildNet
from affect.models.backbone_module import BackboneModule

__all__ = ["AffWildNetModule", "FrameEncoderModule"]


class FrameEncoderModule(BackboneModule):
    """The options AffWildNet and the CNN-RNNs (:mod:`affect.models.cnn_rnn`) share: their per-frame
    CNN part (:class:`~affect.models.affwildnet.torch_model.FrameEncoder`) and RNN size, VA only.

    Args:
        backbone_nodes: FX nodes of the backbone to tap (default: the network's own).
        fc_units: units of the FC layer (paper: 4096 for VGG-FACE, 1500 for ResNet-50).
        use_landmarks, num_landmarks: the 68 landmarks concatenated with the last pool's features.
        rnn_hidden, rnn_layers: each GRU / LSTM (paper: 2 x 128).
        dropout: drop probability on the FC output (paper: 0.5).
        tasks: the trained tasks (VA).
        **kwargs: :class:`~affect.models.backbone_module.BackboneModule`'s arguments (``backbone``,
            ``backbone_weights``) and :class:`~affect.models.multitask.MultiTaskModule`'s.
    """

    def __init__(
        self,
        backbone_nodes: Sequence[str] | None = None,
        fc_units: int = 4096,
        use_landmarks: bool = True,
        num_landmarks: int = 68,
        rnn_hidden: int = 128,
        rnn_layers: int = 2,
        dropout: float = 0.5,
        tasks: Sequence[str] = ("va",),
        **kwargs,
    ) -> None:
        super().__init__(tasks=tasks, **kwargs)

    def net_args(self) -> dict:
        keys = ("backbone_nodes", "fc_units", "use_landmarks", "num_landmarks", "rnn_hidden", "rnn_layers", "dropout")
        return {**super().net_args(), **{k: self.hparams[k] for k in keys}}


class AffWildNetModule(FrameEncoderModule):
    """AffWildNet and the Table II rows (see :mod:`affect.models.affwildnet.torch_model`).

    Paper training (Sec. V-A): Adam, lr 1e-4, "exponentially decaying after 10 epochs"
    (``lr_decay_after=10``; the decay factor is not given: ``lr_decay_gamma=0.95`` per epoch),
    batch 4 x 80 frames, dropout 0.5, loss eq. 2. ``backbone="vggface"`` needs the converted VGG-FACE
    file (``backbone_weights`` or ``$VGGFACE_WEIGHTS``, see
    :func:`~affect.models.backbones.backbone_weights_source`).

    Args:
        fc_layers: FC layers before the RNN / output (1; 2 = VGG's fc6+fc7 for the CNN-only rows).
        rnn: ``"gru"`` (AffWildNet), ``"lstm"`` (VGG-FACE-LSTM) or ``"none"`` (CNN-only rows).
        rnn_dropout: drop probability on the first RNN layer's output.
        global_pool: average-pool the last tap (ResNet's "last pooling layer"); VGG pool5 is flattened.
        lr_decay_after: epoch from which the learning rate decays (10).
        **kwargs: :class:`FrameEncoderModule`'s arguments (the CNN part, RNN size, backbone) and
            :class:`~affect.models.multitask.MultiTaskModule`'s.
    """

    network = AffWildNet

    def __init__(
        self,
        fc_layers: int = 1,
        rnn: Literal["gru", "lstm", "none"] = "gru",
        rnn_dropout: float = 0.0,
        global_pool: bool = False,
        lr_decay_after: int | None = 10,
        **kwargs,
    ) -> None:
        super().__init__(lr_decay_after=lr_decay_after, **kwargs)

    def net_args(self) -> dict:
        keys = ("fc_layers", "rnn", "rnn_dropout", "global_pool")
        return {**super().net_args(), **{k: self.hparams[k] for k in keys}}
