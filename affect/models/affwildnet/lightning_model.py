"""``AffWildNetModule``: AffWildNet (paper Sec. V-A, Table II) as a thin LightningModule.

Declares the network's arguments and builds :class:`~affect.models.affwildnet.torch_model.AffWildNet`
(the Table II rows are settings of it); the CCC loss of eq. 2 over the valid frames, metrics
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

from torch import nn

from affect.models.affwildnet.torch_model import AffWildNet
from affect.models.backbones import backbone_weights_source
from affect.models.multitask import MultiTaskModule
from affect.models.weights import InitialWeights

__all__ = ["AffWildNetModule"]


class AffWildNetModule(MultiTaskModule):
    """AffWildNet and the Table II rows (see :mod:`affect.models.affwildnet.torch_model`).

    Paper training (Sec. V-A): Adam, lr 1e-4, "exponentially decaying after 10 epochs"
    (``lr_decay_after=10``; the decay factor is not given: ``lr_decay_gamma=0.95`` per epoch),
    batch 4 x 80 frames, dropout 0.5, loss eq. 2. ``backbone="vggface"`` needs the converted VGG-FACE
    file (``backbone_weights`` or ``$VGGFACE_WEIGHTS``, see
    :func:`~affect.models.backbones.backbone_weights_source`); the other network arguments are
    :class:`~affect.models.affwildnet.torch_model.AffWildNet`'s; ``**kwargs`` are
    :class:`~affect.models.multitask.MultiTaskModule`'s.
    """

    def __init__(
        self,
        backbone: str = "vggface",
        backbone_weights: str | None = None,
        fc_units: int = 4096,
        fc_layers: int = 1,
        use_landmarks: bool = True,
        num_landmarks: int = 68,
        rnn: Literal["gru", "lstm", "none"] = "gru",
        rnn_hidden: int = 128,
        rnn_layers: int = 2,
        dropout: float = 0.5,
        rnn_dropout: float = 0.0,
        global_pool: bool = False,
        backbone_nodes: Sequence[str] | None = None,
        tasks: Sequence[str] = ("va",),
        lr_decay_after: int | None = 10,
        **kwargs,
    ) -> None:
        super().__init__(tasks=tasks, lr_decay_after=lr_decay_after, **kwargs)

    def configure_net(self) -> nn.Module:
        h = self.hparams
        return AffWildNet(
            backbone=h.backbone, fc_units=h.fc_units, fc_layers=h.fc_layers, use_landmarks=h.use_landmarks,
            num_landmarks=h.num_landmarks, rnn=h.rnn, rnn_hidden=h.rnn_hidden, rnn_layers=h.rnn_layers,
            dropout=h.dropout, rnn_dropout=h.rnn_dropout, image_size=h.image_size, global_pool=h.global_pool,
            backbone_nodes=h.backbone_nodes,
        )  # fmt: skip

    def initial_weights(self) -> list[InitialWeights]:
        return [*backbone_weights_source(self.hparams, self.net.encoder.cnn), *super().initial_weights()]
