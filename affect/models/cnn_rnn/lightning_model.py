"""``CNNRNNModule`` (CNN-1RNN / CNN-3RNN) and ``ModelLevelFusionModule`` (Sec. V-B, Table III).

Thin LightningModules over :mod:`affect.models.cnn_rnn.torch_model`: loss (eq. 2 over valid frames),
metrics, optimisation and initial weights come from :class:`affect.models.multitask.MultiTaskModule`.
"Their median values are the final estimates": add the
:class:`~affect.models.callbacks.SequenceMedianEvaluation` callback (the Table III configs do), which
logs ``{stage}/va_median/ccc``. Paper training: Adam, lr 1e-4 or 1e-5, batch 4 x 80, end to end;
the CNN-RNNs are pre-trained on Aff-Wild2 (``init_checkpoint`` of an Aff-Wild2 run, Sec. V-B).

>>> m = CNNRNNModule(mode="1rnn", backbone="test_resnet", backbone_nodes=["layer1", "layer4"],
...                  fc_units=16, rnn_hidden=8, image_size=32)
>>> m.hparams.mode, m.tasks
('1rnn', ('va',))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torch import nn

from affect.models.backbones import backbone_weights_source
from affect.models.cnn_rnn.torch_model import CNNRNN, ModelLevelFusion
from affect.models.multitask import MultiTaskModule
from affect.models.weights import InitialWeights

__all__ = ["CNNRNNModule", "ModelLevelFusionModule"]


class CNNRNNModule(MultiTaskModule):
    """CNN-3RNN / CNN-1RNN-2nd-pool_last-pool_fc; network arguments as :class:`CNNRNN`,
    ``backbone_weights`` as :class:`~affect.models.affwildnet.AffWildNetModule`, ``**kwargs`` as
    :class:`~affect.models.multitask.MultiTaskModule` (``init_checkpoint``: the Aff-Wild2 pre-training)."""

    def __init__(
        self,
        mode: Literal["3rnn", "1rnn"] = "3rnn",
        backbone: str = "vggface",
        backbone_weights: str | None = None,
        backbone_nodes: Sequence[str] | None = None,
        fc_units: int = 4096,
        use_landmarks: bool = True,
        num_landmarks: int = 68,
        rnn_hidden: int = 128,
        rnn_layers: int = 2,
        dropout: float = 0.5,
        rnn_dropout: float = 0.2,
        low_pool_size: int = 0,
        tasks: Sequence[str] = ("va",),
        **kwargs,
    ) -> None:
        super().__init__(tasks=tasks, **kwargs)

    def configure_net(self) -> nn.Module:
        return CNNRNN(mode=self.hparams.mode, **_cnn_rnn_args(self.hparams))

    def initial_weights(self) -> list[InitialWeights]:
        return [*backbone_weights_source(self.hparams, self.net.encoder.cnn), *super().initial_weights()]


class ModelLevelFusionModule(CNNRNNModule):
    """Model-Level Fusion + RNN / + FC; network arguments as :class:`ModelLevelFusion`.

    ``one_rnn_checkpoint`` / ``three_rnn_checkpoint``: checkpoints of :class:`CNNRNNModule` runs
    (``mode`` 1rnn / 3rnn) whose networks start the two branches, loaded when fitting starts; the
    fusion net is then trained end to end. Every other argument is :class:`CNNRNNModule`'s (``mode``
    is unused: both kinds are built).
    """

    def __init__(
        self,
        fusion: Literal["rnn", "fc"] = "rnn",
        fusion_units: int = 128,
        one_rnn_checkpoint: str | None = None,
        three_rnn_checkpoint: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)

    def configure_net(self) -> nn.Module:
        h = self.hparams
        return ModelLevelFusion(fusion=h.fusion, fusion_units=h.fusion_units, **_cnn_rnn_args(h))

    def initial_weights(self) -> list[InitialWeights]:
        h, net = self.hparams, self.net
        sources = [*backbone_weights_source(h, net.one_rnn.encoder.cnn), *backbone_weights_source(h, net.three_rnn.encoder.cnn)]
        for key, branch in (("one_rnn_checkpoint", net.one_rnn), ("three_rnn_checkpoint", net.three_rnn)):
            if h.get(key):  # the branch's own output layer takes no part in the fusion net
                sources.append(InitialWeights(key, branch, h[key], exclude=("out.",), strict=True))
        return [*sources, *MultiTaskModule.initial_weights(self)]


def _cnn_rnn_args(h) -> dict:
    keys = ("backbone", "backbone_nodes", "fc_units", "use_landmarks", "num_landmarks", "rnn_hidden",
            "rnn_layers", "dropout", "rnn_dropout", "image_size", "low_pool_size")  # fmt: skip
    return {k: h[k] for k in keys}
