"""``MTVGGGRUModule`` and ``AVMTVGGGRUModule`` (paper Sec. VI-A.2-3, Table IV) as thin LightningModules.

Loss (eq. 4-6 summed, over the valid frames of ``[B, T, ...]`` batches), metrics per stage and
task, Adam, uint8 normalisation: :class:`affect.models.multitask.MultiTaskModule`. Paper training:
Adam, lr 1e-4 or 1e-5, batch 10 x 90 frames, dropout 0.5; the CNN part initialised from MT-VGG
(``mtvgg_checkpoint``); A/V-MT-VGG-GRU in two phases: each stream alone (``MTVGGGRUModule`` with
``input_key="image"`` or ``"audio"``), then ``AVMTVGGGRUModule(visual_checkpoint=...,
audio_checkpoint=...)`` end to end.

>>> m = MTVGGGRUModule(backbone="test_resnet", hidden=16, rnn_hidden=8, image_size=32, log_media=False)
>>> m.hparams.input_key, m.hparams.au_set
('image', (1, 2, 4, 6, 12, 15, 20, 25))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from torch import Tensor

from affect.models.mt_vgg.torch_model import ABAW2020_AU_SET
from affect.models.mt_vgg_gru.torch_model import AVMTVGGGRU, MTVGGGRU
from affect.models.multitask import TASKS, MultiTaskModule, normalise_images

__all__ = ["AVMTVGGGRUModule", "MTVGGGRUModule"]


def _audio_input(audio: Tensor) -> Tensor:
    """Spectrogram images are float in [-1, 1] already (Sec. IV); uint8 ones are normalised."""
    return normalise_images(audio) if audio.dtype.is_floating_point is False else audio.float()


class MTVGGGRUModule(MultiTaskModule):
    """MT-VGG-GRU on face frames (``input_key="image"``) or on spectrogram images (``"audio"``,
    then ``in_chans=1``); network arguments as :class:`MTVGGGRU`, the rest as :class:`MultiTaskModule`."""

    def __init__(
        self,
        backbone: str = "vgg16",
        hidden: int = 4096,
        dropout: float = 0.5,
        rnn_hidden: int = 128,
        rnn_layers: int = 2,
        rnn_dropout: float = 0.0,
        au_set: Sequence[int] = ABAW2020_AU_SET,
        image_size: int = 96,
        input_key: Literal["image", "audio"] = "image",
        mtvgg_checkpoint: str | None = None,
        vggface_checkpoint: str | None = None,
        tasks: Sequence[str] = TASKS,
        lr: float = 1e-4,
        lr_decay_after: int | None = None,
        lr_decay_gamma: float = 0.95,
        lambda_au: float = 1.0,
        lambda_va: float = 1.0,
        au_threshold: float = 0.5,
        log_media: bool = True,
        media_samples: int = 5000,
    ) -> None:
        super().__init__(
            tasks=tasks, au_set=au_set, image_size=image_size, lr=lr, lr_decay_after=lr_decay_after,
            lr_decay_gamma=lr_decay_gamma, lambda_au=lambda_au, lambda_va=lambda_va, au_threshold=au_threshold,
            log_media=log_media, media_samples=media_samples,
        )  # fmt: skip
        if input_key not in ("image", "audio"):
            raise ValueError(f"input_key must be 'image' or 'audio', got {input_key!r}")
        self.input_key = input_key
        self.net = MTVGGGRU(
            backbone=backbone, hidden=hidden, dropout=dropout, num_aus=len(self.au_set), image_size=image_size,
            in_chans=1 if input_key == "audio" else 3, rnn_hidden=rnn_hidden, rnn_layers=rnn_layers,
            rnn_dropout=rnn_dropout, mtvgg_checkpoint=mtvgg_checkpoint,
            vggface_checkpoint=vggface_checkpoint if input_key == "image" else None,
        )  # fmt: skip

    def forward(self, inputs: Tensor) -> dict[str, Tensor]:
        """uint8 frames ``[B, T, 3, H, W]`` (or spectrograms ``[B, T, 1, H, W]`` in [-1, 1]) -> outputs ``[B, T, ...]``."""
        x = normalise_images(inputs) if self.input_key == "image" else _audio_input(inputs)
        return self.net(x)

    def forward_batch(self, batch: Mapping) -> dict[str, Tensor]:
        if self.input_key not in batch:
            raise KeyError(
                f"MT-VGG-GRU with input_key={self.input_key!r}: the batch has no {self.input_key!r} ({sorted(batch)})"
            )
        return self(batch[self.input_key])


class AVMTVGGGRUModule(MultiTaskModule):
    """A/V-MT-VGG-GRU on ``batch["image"]`` and ``batch["audio"]``; network arguments as :class:`AVMTVGGGRU`."""

    def __init__(
        self,
        backbone: str = "vgg16",
        hidden: int = 4096,
        dropout: float = 0.5,
        rnn_hidden: int = 128,
        rnn_layers: int = 2,
        rnn_dropout: float = 0.0,
        au_set: Sequence[int] = ABAW2020_AU_SET,
        image_size: int = 96,
        audio_size: int = 96,
        audio_in_chans: int = 1,
        visual_checkpoint: str | None = None,
        audio_checkpoint: str | None = None,
        mtvgg_checkpoint: str | None = None,
        tasks: Sequence[str] = TASKS,
        lr: float = 1e-4,
        lr_decay_after: int | None = None,
        lr_decay_gamma: float = 0.95,
        lambda_au: float = 1.0,
        lambda_va: float = 1.0,
        au_threshold: float = 0.5,
        log_media: bool = True,
        media_samples: int = 5000,
    ) -> None:
        super().__init__(
            tasks=tasks, au_set=au_set, image_size=image_size, lr=lr, lr_decay_after=lr_decay_after,
            lr_decay_gamma=lr_decay_gamma, lambda_au=lambda_au, lambda_va=lambda_va, au_threshold=au_threshold,
            log_media=log_media, media_samples=media_samples,
        )  # fmt: skip
        self.net = AVMTVGGGRU(
            backbone=backbone, hidden=hidden, dropout=dropout, num_aus=len(self.au_set), image_size=image_size,
            audio_size=audio_size, audio_in_chans=audio_in_chans, rnn_hidden=rnn_hidden, rnn_layers=rnn_layers,
            rnn_dropout=rnn_dropout, visual_checkpoint=visual_checkpoint, audio_checkpoint=audio_checkpoint,
            mtvgg_checkpoint=mtvgg_checkpoint,
        )  # fmt: skip

    def forward(self, images: Tensor, audio: Tensor) -> dict[str, Tensor]:
        """uint8 frames ``[B, T, 3, H, W]`` + spectrograms ``[B, T, 1, H', W']`` in [-1, 1] -> outputs ``[B, T, ...]``."""
        return self.net(normalise_images(images), _audio_input(audio))

    def forward_batch(self, batch: Mapping) -> dict[str, Tensor]:
        if "audio" not in batch:
            raise KeyError(
                f"A/V-MT-VGG-GRU needs batch['audio'] spectrogram images [B, T, 1, H, W]; keys {sorted(batch)}"
            )
        return self(batch["image"], batch["audio"])
