"""MT-VGG-GRU and A/V-MT-VGG-GRU (paper Sec. VI-A.2-3, Fig. 3, Table IV).

- **MT-VGG-GRU** (:class:`MTVGGGRU`): MT-VGG (:class:`affect.models.mt_vgg.torch_model.MTVGG`)
  up to its first FC layer (4096, ReLU), then a 2-layer GRU x 128, then the same multi-task output
  layer as MT-VGG (:class:`~affect.models.mt_vgg.torch_model.MultiTaskHead`: 2 VA + 7 EXPR logits
  + A AU logits) at every frame. "The CNN part of the MT-VGG-GRU was initialized with the weights of
  the MT-VGG": the module's ``mtvgg_checkpoint``, loaded when fitting starts. Input ``[B, T, C, H, W]`` in [-1, 1]; output
  ``{"va": [B, T, 2], "expr": [B, T, 7], "au": [B, T, A]}``. With ``output_layer=False`` it is one
  stream of the A/V net and returns ``{"features": [B, T, 128]}``.
- **A/V-MT-VGG-GRU** (:class:`AVMTVGGGRU`): a visual and an audio stream, each an MT-VGG-GRU without
  output layer; their 128-d outputs are concatenated (256) and fed to a 2-layer GRU x 128, then the
  multi-task output layer. Phase 1 trains each stream alone (an :class:`MTVGGGRU` on ``"image"`` or
  on ``"audio"``); phase 2 starts this net from their checkpoints (``visual_checkpoint`` /
  ``audio_checkpoint`` of the module; their output layers are dropped) and trains it end to end.

The audio stream takes spectrogram images ``[B, T, 1, H, W]`` in [-1, 1] (one per video frame,
Sec. IV). Choice: its first conv is built for 1 input channel (``in_chans=1``; timm adapts the
layer), rather than repeating the spectrogram 3 times; an RGB-trained checkpoint (MT-VGG, VGG-FACE)
is adapted by summing the first conv's weights over the 3 input channels (timm's own rule), see
:func:`affect.models.weights.load_weights`. ``audio_in_chans=3`` repeats instead.

Dropout (p = 0.5, "applied", Sec. VI-A): on the first FC's output, the GRU input (MT-VGG itself
applies it around its second FC, which MT-VGG-GRU does not use); ``rnn_dropout`` (default 0) on the
first GRU layer's output.

>>> import torch
>>> net = MTVGGGRU(backbone="test_resnet", hidden=16, rnn_hidden=8, image_size=32)
>>> {k: tuple(v.shape) for k, v in net(torch.zeros(2, 3, 3, 32, 32)).items()}
{'va': (2, 3, 2), 'expr': (2, 3, 7), 'au': (2, 3, 8)}
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from affect.models.affwildnet.torch_model import SequenceRNN
from affect.models.mt_vgg.torch_model import MTVGG, MultiTaskHead

__all__ = ["AVMTVGGGRU", "MTVGGGRU"]


class MTVGGGRU(nn.Module):
    """MT-VGG-GRU (Sec. VI-A.2): MT-VGG's CNN + first FC -> 2-layer GRU x 128 -> multi-task output.

    Args:
        rnn_hidden, rnn_layers: the GRU (paper: 2 x 128).
        rnn_dropout: drop probability on the first GRU layer's output.
        output_layer: False = a stream of A/V-MT-VGG-GRU (returns ``{"features": [B, T, rnn_hidden]}``).
        input_key: the batch key of the frames: ``"image"`` (faces) or ``"audio"`` (spectrograms).
        **cnn: :class:`MTVGG`'s arguments (``backbone``, ``hidden`` = the first FC's units, paper 4096;
            ``dropout``: here on the first FC's output, the GRU input, paper 0.5; ``num_aus``,
            ``num_expr``, ``image_size``, ``in_chans=1`` for the audio stream, ...).
    """

    output_tasks: tuple[str, ...] = ("va", "expr", "au")
    #: reads ``[B, T, ...]`` sequences (``affect predict`` cuts face tracks into windows)
    sequence_input: bool = True

    def __init__(
        self,
        rnn_hidden: int = 128,
        rnn_layers: int = 2,
        rnn_dropout: float = 0.0,
        output_layer: bool = True,
        input_key: Literal["image", "audio"] = "image",
        **cnn,
    ) -> None:
        super().__init__()
        if input_key not in ("image", "audio"):
            raise ValueError(f"input_key must be 'image' or 'audio', got {input_key!r}")
        self.input_keys = (input_key,)
        self.cnn = MTVGG(**cnn)
        #: ``(2, num_expr, num_aus)``: the output layer's, also A/V-MT-VGG-GRU's when this is one of its streams
        self.head_sizes = self.cnn.head.sizes
        #: the side of the spectrogram images read from ``batch["audio"]`` (0: reads faces)
        self.audio_size = self.cnn.backbone.image_size if input_key == "audio" else 0
        # MT-VGG-GRU stacks its GRU on the first FC: MT-VGG's fc2 and output layer are not part of it
        # (its dropout is, on the GRU input).
        self.cnn.fc2 = nn.Identity()
        self.cnn.head = nn.Identity()
        self.rnn = SequenceRNN(self.cnn.hidden, rnn_hidden, rnn_layers, "gru", rnn_dropout)
        self.head = MultiTaskHead(rnn_hidden, *self.head_sizes[1:]) if output_layer else None
        self.out_dim = rnn_hidden

    @property
    def backbone(self) -> nn.Module:
        """The CNN's backbone (what ``backbone_weights`` starts)."""
        return self.cnn.backbone

    def features(self, images: Tensor) -> Tensor:
        """``[B, T, C, H, W]`` -> the GRU's output ``[B, T, rnn_hidden]``."""
        if images.dim() != 5:
            raise ValueError(f"expected a sequence batch [B, T, C, H, W], found {tuple(images.shape)}")
        return self.rnn(self.cnn.dropout(self.cnn.embed(images)))

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """``{"va", "expr", "au"}`` per frame, or ``{"features"}`` without the output layer."""
        h = self.features(images)
        return self.head(h) if self.head is not None else {"features": h}


class AVMTVGGGRU(nn.Module):
    """A/V-MT-VGG-GRU (Sec. VI-A.3, Fig. 3): visual + audio MT-VGG-GRU streams -> 2-layer GRU -> output.

    Args:
        audio_size: side of the spectrogram images (the audio stream's ``image_size``).
        audio_in_chans: 1 = a 1-channel first conv on the spectrogram (default); 3 = the
            spectrogram repeated to 3 channels and a standard first conv.
        **stream: :class:`MTVGGGRU`'s arguments, for both streams (``backbone``, ``hidden``,
            ``dropout``, ``num_aus``, ``num_expr``, ``rnn_hidden``, ``rnn_layers``, ``rnn_dropout``, ...;
            ``image_size``: side of the face images, ``input_size``: the visual backbone's own input
            side); the fusion GRU has the streams' size and dropout.
    """

    input_keys: tuple[str, ...] = ("image", "audio")
    output_tasks: tuple[str, ...] = ("va", "expr", "au")
    #: reads ``[B, T, ...]`` sequences (``affect predict`` cuts face tracks into windows)
    sequence_input: bool = True

    def __init__(self, audio_size: int = 96, audio_in_chans: int = 1, **stream) -> None:
        super().__init__()
        if audio_in_chans not in (1, 3):
            raise ValueError(f"audio_in_chans must be 1 or 3, got {audio_in_chans}")
        audio = {**stream, "image_size": audio_size, "in_chans": audio_in_chans, "input_size": None}
        self.visual = MTVGGGRU(output_layer=False, **stream)
        self.audio = MTVGGGRU(output_layer=False, input_key="audio", **audio)
        self.audio_in_chans = audio_in_chans
        self.audio_size = audio_size
        gru = self.visual.rnn.rnn
        self.fusion = SequenceRNN(2 * gru.hidden_size, gru.hidden_size, gru.num_layers, "gru", gru.dropout)
        self.head = MultiTaskHead(gru.hidden_size, *self.visual.head_sizes[1:])

    @property
    def backbone(self) -> nn.Module:
        """The visual stream's backbone (what ``backbone_weights`` starts)."""
        return self.visual.backbone

    def forward(self, images: Tensor, audio: Tensor) -> dict[str, Tensor]:
        """``images`` ``[B, T, 3, H, W]`` and ``audio`` ``[B, T, 1, H', W']``, both in [-1, 1] ->
        ``{"va": [B, T, 2], "expr": [B, T, 7], "au": [B, T, A]}``."""
        if audio.dim() != 5 or audio.shape[2] != 1:
            raise ValueError(f"audio must be spectrogram images [B, T, 1, H, W], found {tuple(audio.shape)}")
        if audio.shape[:2] != images.shape[:2]:
            raise ValueError(
                f"audio [B, T] = {tuple(audio.shape[:2])} must match images [B, T] = {tuple(images.shape[:2])}"
            )
        if audio.shape[-2:] != (self.audio_size, self.audio_size):
            raise ValueError(
                f"audio spectrogram images must be {self.audio_size}x{self.audio_size} (audio_size), "
                f"found {tuple(audio.shape[-2:])}"
            )
        if self.audio_in_chans == 3:
            audio = audio.expand(-1, -1, 3, -1, -1)
        h = torch.cat([self.visual.features(images), self.audio.features(audio.float())], -1)
        return self.head(self.fusion(h))
