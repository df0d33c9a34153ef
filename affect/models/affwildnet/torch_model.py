"""AffWildNet (paper Sec. V-A, Table II) and the pieces the temporal models share.

AffWildNet = CNN conv/pool layers (VGG-FACE layout, or ResNet-50) -> the last pool's features
concatenated with the 68 facial landmarks -> one FC layer (4096 units for VGG-FACE, 1500 for
ResNet-50) -> 2-layer GRU x 128 -> linear output layer: valence and arousal for every frame.
Trained end to end with the CCC loss of eq. 2.

Plain ``nn.Module`` (no Lightning). Inputs: images float ``[B, T, 3, H, W]`` in [-1, 1]
(paper Sec. IV; uint8 batches are normalised by the LightningModule), optional
``landmarks`` ``[B, T, L, 2]`` in [0, 1] of the crop (the data convention,
``affect.data.datasets``; mapped here to [-1, 1]) with ``landmarks_mask`` ``[B, T]``
(absent landmarks are fed as zeros). A frame batch ``[B, 3, H, W]`` is accepted as ``T = 1``
and gives ``[B, 2]``. Output ``{"va": [B, T, 2]}`` (linear, unbounded, as the paper's output layer).

The comparison rows of Table II are constructor settings of the same class:

============== =================================================================================
Table II row   settings
============== =================================================================================
VGG-16         ``backbone="vgg16", use_landmarks=False, rnn="none", fc_layers=2`` (random init)
ResNet-50      ``backbone="resnet50", global_pool=True, use_landmarks=False, rnn="none", fc_units=1500``
VGG-FACE       as VGG-16 with ``backbone="vggface"`` (weights loaded by the module when fitting starts)
VGG-FACE-LSTM  ``backbone="vggface", use_landmarks=False, rnn="lstm"`` (2-layer LSTM on the first FC)
AffWildNet     ``backbone="vggface"``, otherwise defaults; ResNet variant: ``backbone="resnet50",
               global_pool=True, fc_units=1500``
============== =================================================================================

Choices the paper leaves open (documented here and in this folder's ``README.md``): ReLU after each FC layer;
the 0.5 dropout is applied to each FC layer's output (the RNN input); ``rnn_dropout`` is the
drop probability between the two RNN layers (PyTorch's ``nn.GRU(dropout=...)``, which acts on
the first layer's output only); ResNet-50's "last pooling layer" is its global average pool
(``global_pool=True``), VGG's is pool5, flattened.

>>> import torch
>>> net = AffWildNet(backbone="test_resnet", fc_units=16, rnn_hidden=8, image_size=32)
>>> out = net(torch.zeros(2, 5, 3, 32, 32), torch.rand(2, 5, 68, 2))
>>> tuple(out["va"].shape)
(2, 5, 2)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from affect.models.backbones import Backbone, fold_frames, unfold_frames

__all__ = [
    "AffWildNet",
    "landmark_inputs",
    "FrameEncoder",
    "SequenceRNN",
    "landmark_features",
]

RNNCell = Literal["gru", "lstm"]


def landmark_features(landmarks: Tensor, landmarks_mask: Tensor | None = None) -> Tensor:
    """Landmarks ``[..., L, 2]`` in [0, 1] -> flat ``[..., 2L]`` in [-1, 1]; absent ones are zeros.

    >>> landmark_features(torch.tensor([[[0.0, 1.0], [0.5, 0.25]]]), torch.tensor([True])).tolist()
    [[-1.0, 1.0, 0.0, -0.5]]
    """
    flat = (landmarks.float() * 2 - 1).flatten(-2)
    if landmarks_mask is not None:
        flat = flat * landmarks_mask.to(flat.dtype).unsqueeze(-1)
    return flat


def landmark_inputs(use_landmarks: bool) -> tuple[str, ...]:
    """The batch keys a VA sequence network reads (``input_keys``): images, and landmarks if used."""
    return ("image", "landmarks", "landmarks_mask") if use_landmarks else ("image",)


class SequenceRNN(nn.Module):
    """The paper's RNN part: ``num_layers`` GRU (or LSTM) layers of ``hidden_size`` units, batch-first.

    ``dropout`` is the drop probability on the first layer's output (with 2 layers, PyTorch's
    inter-layer dropout is exactly "dropout in the first GRU layer", Sec. V-B). Padding must be
    trailing (``frame_mask`` = a valid prefix): the RNN is causal, so valid frames never see padding.

    >>> rnn = SequenceRNN(6, hidden_size=4)
    >>> tuple(rnn(torch.zeros(2, 3, 6)).shape)
    (2, 3, 4)
    """

    def __init__(
        self,
        in_features: int,
        hidden_size: int = 128,
        num_layers: int = 2,
        cell: RNNCell = "gru",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if cell not in ("gru", "lstm"):
            raise ValueError(f"cell must be 'gru' or 'lstm', got {cell!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"RNN dropout is a drop probability in [0, 1), got {dropout}")
        rnn_cls = nn.GRU if cell == "gru" else nn.LSTM
        self.rnn = rnn_cls(
            in_features,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.hidden_size = hidden_size

    def forward(self, x: Tensor) -> Tensor:
        """``[B, T, F]`` -> ``[B, T, hidden_size]`` (the last layer's output at every frame)."""
        return self.rnn(x)[0]


class FrameEncoder(nn.Module):
    """Per-frame CNN part shared by AffWildNet, CNN-1RNN and CNN-3RNN (Sec. V-A, V-B, Fig. 2).

    conv/pool layers of ``backbone`` (tapped at ``backbone_nodes``; the *last* tap is "the last
    pooling layer") -> flatten (or global average pool) -> concat flattened landmarks -> FC
    ``fc_units`` -> ReLU -> dropout (x ``fc_layers``). ``forward`` returns the features the
    multi-level nets need: ``"low"`` (the first tap, when 2 taps are given; e.g. VGG's 2nd pool
    after conv 4), ``"last"`` (the last pool, before the landmark concat) and ``"fc"`` (the last
    FC layer's output), each flattened per frame.

    Args:
        backbone: timm name of the conv/pool part (``"vggface"`` / ``"vgg16"``: the VGG-16 layout, ``"resnet50"``).
        backbone_nodes: FX nodes to tap (default: the backbone's last feature point).
        image_size: input side (paper: 96).
        in_chans: input channels (3).
        fc_units: units of the FC layer (paper: 4096 for VGG-FACE, 1500 for ResNet-50).
        fc_layers: FC layers (1; 2 = VGG's fc6+fc7 for the CNN-only rows of Table II).
        use_landmarks: concatenate the flattened landmarks with the last pool's features.
        num_landmarks: landmarks per frame (68).
        global_pool: average-pool the last tap (ResNet's "last pooling layer"); VGG pool5 is flattened.
        low_pool_size: 0 = the first tap flattened as it is; k > 0 = average-pooled to ``k x k`` first.
        dropout: drop probability after each FC layer (paper: 0.5).
    """

    def __init__(
        self,
        backbone: str = "vgg16",
        backbone_nodes: Sequence[str] | None = None,
        image_size: int = 96,
        in_chans: int = 3,
        fc_units: int = 4096,
        fc_layers: int = 1,
        use_landmarks: bool = True,
        num_landmarks: int = 68,
        global_pool: bool = False,
        low_pool_size: int = 0,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        if fc_layers < 1:
            raise ValueError(f"fc_layers must be >= 1, got {fc_layers}")
        self.cnn = Backbone(backbone, nodes=backbone_nodes, image_size=image_size, in_chans=in_chans)
        self.global_pool = global_pool
        self.low_pool_size = low_pool_size
        self.use_landmarks = use_landmarks
        self.num_landmarks = num_landmarks
        last_shape = self.cnn.shapes[-1]
        self.last_dim = last_shape[0] if global_pool else self.cnn.out_dims[-1]
        self.low_dim = 0
        if len(self.cnn.shapes) > 1:
            low = self.cnn.shapes[0]
            self.low_dim = low[0] * low_pool_size**2 if low_pool_size else self.cnn.out_dims[0]
        in_fc = self.last_dim + (2 * num_landmarks if use_landmarks else 0)
        layers: list[nn.Module] = []
        for i in range(fc_layers):
            layers += [
                nn.Linear(in_fc if i == 0 else fc_units, fc_units),
                nn.ReLU(inplace=True),
                nn.Dropout(dropout),
            ]
        self.fc = nn.Sequential(*layers)
        self.fc_dim = fc_units

    def forward(
        self, images: Tensor, landmarks: Tensor | None = None, landmarks_mask: Tensor | None = None
    ) -> dict[str, Tensor]:
        """``images`` ``[N, C, H, W]`` or ``[B, T, C, H, W]`` in [-1, 1], ``landmarks`` ``[..., L, 2]`` ->
        ``{"low", "last", "fc"}``, each ``[N, D]`` or ``[B, T, D]`` (the CNN runs on the frames)."""
        if images.dim() not in (4, 5):
            raise ValueError(f"expected images [N, C, H, W] or a sequence batch [B, T, C, H, W], found {tuple(images.shape)}")
        lead = images.shape[:-3]
        images, landmarks, landmarks_mask = (fold_frames(lead, x) for x in (images, landmarks, landmarks_mask))
        taps = self.cnn(images)
        last = taps[-1]
        last = last.mean((-2, -1)) if self.global_pool else last.flatten(1)
        feats: dict[str, Tensor] = {"last": last}
        if len(taps) > 1:
            low = taps[0]
            if self.low_pool_size:
                low = F.adaptive_avg_pool2d(low, self.low_pool_size)
            feats["low"] = low.flatten(1)
        x = last
        if self.use_landmarks:
            if landmarks is None:
                raise ValueError(
                    "this network was built with use_landmarks=True: pass landmarks [N, L, 2] "
                    "(batch key 'landmarks'), or build it with use_landmarks=False"
                )
            if landmarks.shape[-2:] != (self.num_landmarks, 2):
                raise ValueError(
                    f"landmarks must be [..., {self.num_landmarks}, 2], found {tuple(landmarks.shape)}"
                )
            x = torch.cat([x, landmark_features(landmarks, landmarks_mask).to(x.dtype)], 1)
        feats["fc"] = self.fc(x)
        return {k: unfold_frames(lead, v) for k, v in feats.items()}


class AffWildNet(nn.Module):
    """AffWildNet (Sec. V-A) and the Table II comparison networks (see the module docstring).

    Args:
        rnn: ``"gru"`` (AffWildNet), ``"lstm"`` (VGG-FACE-LSTM) or ``"none"`` (CNN-only rows).
        rnn_hidden, rnn_layers: GRU/LSTM size (paper: 128 units, 2 layers).
        rnn_dropout: drop probability on the first RNN layer's output (paper: none named for AffWildNet).
        **encoder: the per-frame CNN part, :class:`FrameEncoder`'s arguments (``backbone``, ``fc_units``,
            ``fc_layers``, ``use_landmarks``, ``dropout``, ``image_size``, ``global_pool``, ...).

    Initial weights (VGG-FACE, Sec. V-A) are loaded by the LightningModule when fitting starts
    (:mod:`affect.models.weights`), not here.
    """

    output_tasks: tuple[str, ...] = ("va",)
    #: reads ``[B, T, ...]`` sequences (``affect predict`` cuts face tracks into windows)
    sequence_input: bool = True

    def __init__(
        self,
        rnn: Literal["gru", "lstm", "none"] = "gru",
        rnn_hidden: int = 128,
        rnn_layers: int = 2,
        rnn_dropout: float = 0.0,
        **encoder,
    ) -> None:
        super().__init__()
        if rnn not in ("gru", "lstm", "none"):
            raise ValueError(f"rnn must be 'gru', 'lstm' or 'none', got {rnn!r}")
        self.encoder = FrameEncoder(**encoder)
        self.input_keys = landmark_inputs(self.encoder.use_landmarks)
        fc_units = self.encoder.fc_dim
        self.rnn = None if rnn == "none" else SequenceRNN(fc_units, rnn_hidden, rnn_layers, rnn, rnn_dropout)
        self.out = nn.Linear(rnn_hidden if self.rnn is not None else fc_units, 2)

    @property
    def backbone(self) -> nn.Module:
        """The per-frame CNN's backbone (what ``backbone_weights`` starts)."""
        return self.encoder.cnn

    def forward(
        self, images: Tensor, landmarks: Tensor | None = None, landmarks_mask: Tensor | None = None
    ) -> dict[str, Tensor]:
        """``[B, T, 3, H, W]`` (+ landmarks ``[B, T, L, 2]``) -> ``{"va": [B, T, 2]}``; frames ``[B, 3, H, W]`` -> ``[B, 2]``."""
        h = self.encoder(images, landmarks, landmarks_mask)["fc"]
        if self.rnn is not None:  # a frame batch runs as one-frame sequences
            h = self.rnn(h) if h.dim() == 3 else self.rnn(h.unsqueeze(1)).squeeze(1)
        return {"va": self.out(h)}
