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

from typing import Literal

from affect.models.affwildnet.lightning_model import FrameEncoderModule
from affect.models.backbones import backbone_weights_source
from affect.models.cnn_rnn.torch_model import CNNRNN, ModelLevelFusion
from affect.models.weights import InitialWeights

__all__ = ["CNNRNNModule", "ModelLevelFusionModule"]


class CNNRNNModule(FrameEncoderModule):
    """CNN-3RNN / CNN-1RNN-2nd-pool_last-pool_fc; network arguments as :class:`CNNRNN`.

    Args:
        mode: ``"3rnn"`` or ``"1rnn"``.
        rnn_dropout: drop probability on each GRU's first-layer output (0.2: the paper's "0.8" read
            as keep probability, see :mod:`affect.models.cnn_rnn.torch_model`).
        low_pool_size: 0 = the 2nd pool flattened as it is (paper); k > 0 = average-pooled to ``k x k``.
        **kwargs: :class:`~affect.models.affwildnet.lightning_model.FrameEncoderModule`'s arguments
            (the CNN part, RNN size, ``backbone``, ``backbone_weights``) and
            :class:`~affect.models.multitask.MultiTaskModule`'s (``init_checkpoint``: the Aff-Wild2 pre-training).
    """

    network = CNNRNN

    def __init__(
        self,
        mode: Literal["3rnn", "1rnn"] = "3rnn",
        rnn_dropout: float = 0.2,
        low_pool_size: int = 0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)

    def net_args(self) -> dict:
        keys = ("mode", "rnn_dropout", "low_pool_size")
        return {**super().net_args(), **{k: self.hparams[k] for k in keys}}


class ModelLevelFusionModule(CNNRNNModule):
    """Model-Level Fusion + RNN / + FC; network arguments as :class:`ModelLevelFusion`.

    ``one_rnn_checkpoint`` / ``three_rnn_checkpoint``: checkpoints of :class:`CNNRNNModule` runs
    (``mode`` 1rnn / 3rnn) whose networks start the two branches, loaded when fitting starts; the
    fusion net is then trained end to end. Every other argument is :class:`CNNRNNModule`'s (``mode``
    is unused: both kinds are built).
    """

    network = ModelLevelFusion

    def __init__(
        self,
        fusion: Literal["rnn", "fc"] = "rnn",
        fusion_units: int = 128,
        one_rnn_checkpoint: str | None = None,
        three_rnn_checkpoint: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)

    def net_args(self) -> dict:
        h = self.hparams
        args = {k: v for k, v in super().net_args().items() if k != "mode"}
        return {**args, "fusion": h.fusion, "fusion_units": h.fusion_units}

    def start_weights(self) -> list[InitialWeights]:
        h, net = self.hparams, self.net
        sources = [*backbone_weights_source(h, net.one_rnn.backbone), *backbone_weights_source(h, net.three_rnn.backbone)]
        for key, branch in (("one_rnn_checkpoint", net.one_rnn), ("three_rnn_checkpoint", net.three_rnn)):
            if h.get(key):  # the branch's own output layer takes no part in the fusion net
                sources.append(InitialWeights(key, branch, h[key], exclude=("out.",), strict=True))
        return sources
