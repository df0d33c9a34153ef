"""``MTVGGGRUModule`` and ``AVMTVGGGRUModule`` (paper Sec. VI-A.2-3, Table IV) as thin LightningModules.

Each declares its network's arguments and the checkpoints it starts from; the loss (eq. 4-6 summed
over the valid frames of ``[B, T, ...]`` batches), metrics, Adam and the loading of those files when
fitting starts are :class:`affect.models.multitask.MultiTaskModule`'s. Paper training: Adam, lr 1e-4
or 1e-5, batch 10 x 90 frames, dropout 0.5; the CNN part initialised from MT-VGG
(``mtvgg_checkpoint``); A/V-MT-VGG-GRU in two phases: each stream alone (``MTVGGGRUModule`` with
``input_key="image"`` or ``"audio"``), then ``AVMTVGGGRUModule(visual_checkpoint=...,
audio_checkpoint=...)`` end to end.

>>> m = MTVGGGRUModule(backbone="test_resnet", hidden=16, rnn_hidden=8, image_size=32)
>>> m.hparams.input_key, m.hparams.au_set, m.net.input_keys
('image', (1, 2, 4, 6, 12, 15, 20, 25), ('image',))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torch import nn

from affect.models.backbones import backbone_weights_source
from affect.models.mt_vgg.torch_model import ABAW2020_AU_SET
from affect.models.mt_vgg_gru.torch_model import AVMTVGGGRU, MTVGGGRU
from affect.models.multitask import MultiTaskModule
from affect.models.weights import InitialWeights

__all__ = ["AVMTVGGGRUModule", "MTVGGGRUModule"]

#: MT-VGG's layers that MT-VGG-GRU does not have (it stacks its GRU on the first FC).
_NOT_IN_MTVGGGRU = ("head.", "fc2.")


class MTVGGGRUModule(MultiTaskModule):
    """MT-VGG-GRU on face frames (``input_key="image"``) or on spectrogram images (``"audio"``, then a
    1-channel first conv); network arguments as :class:`MTVGGGRU`.

    Args:
        backbone, backbone_weights: the conv part and its VGG-FACE file (as
            :class:`~affect.models.mt_vgg.MTVGGModule`; the audio stream uses ``vgg16`` or MT-VGG's).
        mtvgg_checkpoint: an MT-VGG checkpoint whose CNN and first FC start the network (Sec. VI-A.2).
        **kwargs: :class:`~affect.models.multitask.MultiTaskModule`'s arguments.
    """

    def __init__(
        self,
        backbone: str = "vggface",
        backbone_weights: str | None = None,
        hidden: int = 4096,
        dropout: float = 0.5,
        rnn_hidden: int = 128,
        rnn_layers: int = 2,
        rnn_dropout: float = 0.0,
        input_key: Literal["image", "audio"] = "image",
        mtvgg_checkpoint: str | None = None,
        au_set: Sequence[int] = ABAW2020_AU_SET,
        **kwargs,
    ) -> None:
        super().__init__(au_set=au_set, **kwargs)

    def configure_net(self) -> nn.Module:
        h = self.hparams
        return MTVGGGRU(in_chans=1 if h.input_key == "audio" else 3, input_key=h.input_key, **_stream_args(self))

    def initial_weights(self) -> list[InitialWeights]:
        sources = backbone_weights_source(self.hparams, self.net.cnn.backbone)
        if self.hparams.mtvgg_checkpoint:
            sources.append(InitialWeights("mtvgg_checkpoint", self.net.cnn, self.hparams.mtvgg_checkpoint,
                                          exclude=_NOT_IN_MTVGGGRU))  # fmt: skip
        return [*sources, *super().initial_weights()]


class AVMTVGGGRUModule(MultiTaskModule):
    """A/V-MT-VGG-GRU on ``batch["image"]`` and ``batch["audio"]``; network arguments as :class:`AVMTVGGGRU`.

    Args:
        visual_checkpoint, audio_checkpoint: phase-1 :class:`MTVGGGRUModule` checkpoints of the two
            streams (their output layers are dropped), loaded when fitting starts.
        mtvgg_checkpoint: an MT-VGG checkpoint for both streams' CNN parts (before the stream checkpoints).
        backbone_weights: the VGG-FACE file of the visual stream (``backbone="vggface"``).
        **kwargs: :class:`~affect.models.multitask.MultiTaskModule`'s arguments.
    """

    def __init__(
        self,
        backbone: str = "vgg16",
        backbone_weights: str | None = None,
        hidden: int = 4096,
        dropout: float = 0.5,
        rnn_hidden: int = 128,
        rnn_layers: int = 2,
        rnn_dropout: float = 0.0,
        audio_size: int = 96,
        audio_in_chans: int = 1,
        visual_checkpoint: str | None = None,
        audio_checkpoint: str | None = None,
        mtvgg_checkpoint: str | None = None,
        au_set: Sequence[int] = ABAW2020_AU_SET,
        **kwargs,
    ) -> None:
        super().__init__(au_set=au_set, **kwargs)

    def configure_net(self) -> nn.Module:
        h = self.hparams
        return AVMTVGGGRU(audio_size=h.audio_size, audio_in_chans=h.audio_in_chans, **_stream_args(self))

    def initial_weights(self) -> list[InitialWeights]:
        h, net = self.hparams, self.net
        sources = backbone_weights_source(h, net.visual.cnn.backbone)
        if h.mtvgg_checkpoint:
            sources += [InitialWeights("mtvgg_checkpoint", stream.cnn, h.mtvgg_checkpoint, exclude=_NOT_IN_MTVGGGRU)
                        for stream in (net.visual, net.audio)]  # fmt: skip
        for key, stream in (("visual_checkpoint", net.visual), ("audio_checkpoint", net.audio)):
            if h.get(key):
                sources.append(InitialWeights(key, stream, h[key], exclude=("head.",), strict=True))
        return [*sources, *super().initial_weights()]


def _stream_args(module: MultiTaskModule) -> dict:
    """The network arguments both modules pass on as they are (a stream's CNN, FC and GRU sizes)."""
    h = module.hparams
    keys = ("backbone", "hidden", "dropout", "image_size", "rnn_hidden", "rnn_layers", "rnn_dropout")
    return {"num_aus": len(module.au_set), **{k: h[k] for k in keys}}
