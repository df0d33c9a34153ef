"""``MTVGGGRUModule`` and ``AVMTVGGGRUModule`` (paper Sec. VI-A.2-3, Table IV) as thin LightningModules.

Each declares its network's arguments and the checkpoints it starts from; the MT-VGG options (CNN,
first FC, AU set) are :class:`~affect.models.mt_vgg.MTVGGModule`'s, the GRU options and the MT-VGG
start (``mtvgg_checkpoint``) the streams' base's; the loss (eq. 4-6 summed over the valid frames of
``[B, T, ...]`` batches), metrics, Adam and the loading of those files when fitting starts are
:class:`affect.models.multitask.MultiTaskModule`'s. Paper training: Adam, lr 1e-4 or 1e-5, batch
10 x 90 frames, dropout 0.5; the CNN part initialised from MT-VGG (``mtvgg_checkpoint``);
A/V-MT-VGG-GRU in two phases: each stream alone (``MTVGGGRUModule`` with ``input_key="image"`` or
``"audio"``), then ``AVMTVGGGRUModule(visual_checkpoint=..., audio_checkpoint=...)`` end to end.

>>> m = MTVGGGRUModule(backbone="test_resnet", hidden=16, rnn_hidden=8, image_size=32)
>>> m.hparams.input_key, m.hparams.au_set, m.net.input_keys
('image', (1, 2, 4, 6, 12, 15, 20, 25), ('image',))
"""

from __future__ import annotations

from typing import Literal

from affect.models.mt_vgg.lightning_model import MTVGGModule
from affect.models.mt_vgg_gru.torch_model import AVMTVGGGRU, MTVGGGRU
from affect.models.weights import InitialWeights

__all__ = ["AVMTVGGGRUModule", "MTVGGGRUModule"]

#: MT-VGG's layers that MT-VGG-GRU does not have (it stacks its GRU on the first FC).
_NOT_IN_MTVGGGRU = ("head.", "fc2.")


class _GRUStreamsModule(MTVGGModule):
    """What MT-VGG-GRU and A/V-MT-VGG-GRU share: MT-VGG's options (``backbone``, ``backbone_weights``,
    ``hidden``, ``dropout`` on the first FC's output, ``au_set``, ...), a GRU on each stream and the
    MT-VGG checkpoint their CNN parts start from.

    Args:
        rnn_hidden, rnn_layers: each GRU (paper: 2 x 128).
        rnn_dropout: drop probability on the first GRU layer's output.
        mtvgg_checkpoint: an MT-VGG checkpoint whose CNN and first FC start every stream (Sec. VI-A.2).
        **kwargs: :class:`~affect.models.mt_vgg.MTVGGModule`'s arguments (the CNN part) and
            :class:`~affect.models.multitask.MultiTaskModule`'s.
    """

    def __init__(
        self,
        rnn_hidden: int = 128,
        rnn_layers: int = 2,
        rnn_dropout: float = 0.0,
        mtvgg_checkpoint: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)

    def net_args(self) -> dict:
        h = self.hparams
        return {**super().net_args(), "rnn_hidden": h.rnn_hidden, "rnn_layers": h.rnn_layers, "rnn_dropout": h.rnn_dropout}

    def streams(self) -> tuple[MTVGGGRU, ...]:
        """The network's MT-VGG-GRU streams."""
        return (self.net,)

    def start_weights(self) -> list[InitialWeights]:
        sources = super().start_weights()
        if self.hparams.mtvgg_checkpoint:
            sources += [InitialWeights("mtvgg_checkpoint", stream.cnn, self.hparams.mtvgg_checkpoint,
                                       exclude=_NOT_IN_MTVGGGRU) for stream in self.streams()]  # fmt: skip
        return sources


class MTVGGGRUModule(_GRUStreamsModule):
    """MT-VGG-GRU on face frames (``input_key="image"``) or on spectrogram images (``"audio"``, then a
    1-channel first conv); network arguments as :class:`MTVGGGRU`.

    Args:
        input_key: the batch key of the frames: ``"image"`` (faces) or ``"audio"`` (spectrograms; the
            audio stream uses ``backbone="vgg16"`` or MT-VGG's weights).
        **kwargs: the GRU options and ``mtvgg_checkpoint``, :class:`~affect.models.mt_vgg.MTVGGModule`'s
            (``backbone``, ``backbone_weights``, ``hidden``, ``dropout``, ``au_set``, ...) and
            :class:`~affect.models.multitask.MultiTaskModule`'s arguments.
    """

    network = MTVGGGRU

    def __init__(self, input_key: Literal["image", "audio"] = "image", **kwargs) -> None:
        super().__init__(**kwargs)

    def net_args(self) -> dict:
        key = self.hparams.input_key
        return {**super().net_args(), "in_chans": 1 if key == "audio" else 3, "input_key": key}


class AVMTVGGGRUModule(_GRUStreamsModule):
    """A/V-MT-VGG-GRU on ``batch["image"]`` and ``batch["audio"]``; network arguments as :class:`AVMTVGGGRU`.

    Args:
        backbone: the streams' conv part (``vgg16``: their weights come from their checkpoints);
            ``backbone_weights`` starts the visual stream's (``backbone="vggface"``).
        audio_size: side of the spectrogram images.
        audio_in_chans: 1 = a 1-channel first conv on the spectrogram; 3 = the spectrogram repeated.
        visual_checkpoint, audio_checkpoint: phase-1 :class:`MTVGGGRUModule` checkpoints of the two
            streams (their output layers are dropped), loaded when fitting starts, after ``mtvgg_checkpoint``.
        **kwargs: as :class:`MTVGGGRUModule` (but ``input_key``: both streams are read).
    """

    network = AVMTVGGGRU

    def __init__(
        self,
        backbone: str = "vgg16",
        audio_size: int = 96,
        audio_in_chans: int = 1,
        visual_checkpoint: str | None = None,
        audio_checkpoint: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__(backbone=backbone, **kwargs)

    def net_args(self) -> dict:
        return {**super().net_args(), "audio_size": self.hparams.audio_size, "audio_in_chans": self.hparams.audio_in_chans}

    def streams(self) -> tuple[MTVGGGRU, ...]:
        return (self.net.visual, self.net.audio)

    def start_weights(self) -> list[InitialWeights]:
        h = self.hparams
        keys = ("visual_checkpoint", "audio_checkpoint")
        phase1 = [InitialWeights(key, stream, h[key], exclude=("head.",), strict=True)
                  for key, stream in zip(keys, self.streams(), strict=True) if h.get(key)]  # fmt: skip
        return [*super().start_weights(), *phase1]
