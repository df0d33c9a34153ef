"""CNN plus multi-RNN networks and their model-level fusion (paper Sec. V-B, Fig. 2, Table III).

- **CNN-3RNN-2nd-pool_last-pool_fc** (``CNNRNN(mode="3rnn")``): VGG-FACE conv/pool layers, the 68
  landmarks concatenated with the last pool's features into an FC layer of 4096 units; three
  feature sets per frame each feed their own 2-layer GRU x 128: RNN_1 the FC output, RNN_2 the last
  pool (before the landmark concat), RNN_3 the 2nd pool (following the 4th conv layer). The three
  RNN outputs are concatenated (384) and fed to the output layer (valence, arousal per frame).
- **CNN-1RNN-2nd-pool_last-pool_fc** (``CNNRNN(mode="1rnn")``): the same three feature sets
  concatenated and fed to one 2-layer GRU x 128, then the output layer.
- **Model-level fusion** (``ModelLevelFusion``): a CNN-1RNN and a CNN-3RNN; the outputs of all
  their RNNs (128 + 384) are concatenated and fed to one 128-unit GRU layer (``fusion="rnn"``,
  "Model-Level Fusion + RNN") or one 128-unit FC layer (``fusion="fc"``), then the output layer;
  trained end to end (optionally initialised from the two networks' checkpoints).

Every network predicts per frame ``{"va": [B, T, 2]}``; the final estimate of a sequence is the
median of its frames (:func:`affect.models.postprocess.sequence_medians`; the LightningModules
report it as ``{stage}/va_median/...``).

Dropout (Sec. V-B "training implementation details": "dropout with 0.5 probability value in fully
connected layers and dropout with 0.8 probability value in the first GRU layer"): 0.5 drop on the
FC layer's output; on the first GRU layer we read 0.8 as TensorFlow's ``keep_prob`` (the authors'
code base is TensorFlow, where ``DropoutWrapper(output_keep_prob=0.8)`` is the idiom, and dropping
80% of a 128-unit layer is implausible), i.e. ``rnn_dropout=0.2`` drop probability on the first
GRU layer's output. Set ``rnn_dropout=0.8`` for the other reading.

>>> import torch
>>> net = CNNRNN("3rnn", backbone="test_resnet", backbone_nodes=["layer1", "layer4"], fc_units=16,
...              rnn_hidden=8, image_size=32)
>>> tuple(net(torch.zeros(2, 4, 3, 32, 32), torch.rand(2, 4, 68, 2))["va"].shape), net.rnn_out_dim
((2, 4, 2), 24)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from affect.models.affwildnet.torch_model import FrameEncoder, SequenceRNN, landmark_inputs
from affect.models.backbones import VGG16_MULTI_LEVEL

__all__ = ["CNNRNN", "ModelLevelFusion"]

FEATURE_ORDER: tuple[str, str, str] = ("fc", "last", "low")  # RNN_1, RNN_2, RNN_3 of Fig. 2


def _multi_level_nodes(backbone: str, backbone_nodes: Sequence[str] | None) -> list[str]:
    if backbone_nodes is None:
        if backbone not in ("vgg16", "vggface"):
            raise ValueError(
                f"backbone {backbone!r}: give backbone_nodes = [low-level tap, last tap] (FX node names); "
                f"only the VGG-16 layouts (vgg16, vggface) have a default (2nd pool, last pool = {list(VGG16_MULTI_LEVEL)})"
            )
        return list(VGG16_MULTI_LEVEL)
    if len(backbone_nodes) != 2:
        raise ValueError(
            f"backbone_nodes must name 2 taps (2nd pool, last pool), found {list(backbone_nodes)}"
        )
    return list(backbone_nodes)


class CNNRNN(nn.Module):
    """CNN-3RNN / CNN-1RNN "2nd-pool_last-pool_fc" (Sec. V-B, Fig. 2).

    Args:
        mode: ``"3rnn"`` (one GRU per feature set, outputs concatenated) or ``"1rnn"`` (one GRU on
            the concatenated feature sets).
        backbone: timm name (``"vggface"`` / ``"vgg16"`` = the VGG-16 layout).
        backbone_nodes: ``[2nd pool, last pool]`` FX nodes (default for vgg16: ``VGG16_MULTI_LEVEL``).
        rnn_hidden, rnn_layers: each GRU (paper: 2 x 128).
        rnn_dropout: drop probability on each GRU's first-layer output (paper's "0.8", read as
            keep probability: 0.2; see the module docstring).
        **encoder: the per-frame CNN part, :class:`~affect.models.affwildnet.torch_model.FrameEncoder`'s
            arguments: ``fc_units`` (after the landmark concat, paper 4096), ``use_landmarks`` /
            ``num_landmarks`` (the 68 landmarks concatenated with the last pool), ``dropout`` (on the
            FC output, paper 0.5), ``image_size`` (paper 96), ``low_pool_size`` (0 = feed the 2nd
            pool flattened as it is, the paper's ``[128, 24, 24]`` = 73,728 values at 96x96; k > 0 =
            average-pool it to ``k x k`` first, a cheaper variant).
    """

    output_tasks: tuple[str, ...] = ("va",)
    #: reads ``[B, T, ...]`` sequences (``affect predict`` cuts face tracks into windows)
    sequence_input: bool = True

    def __init__(
        self,
        mode: Literal["3rnn", "1rnn"] = "3rnn",
        backbone: str = "vgg16",
        backbone_nodes: Sequence[str] | None = None,
        rnn_hidden: int = 128,
        rnn_layers: int = 2,
        rnn_dropout: float = 0.2,
        **encoder,
    ) -> None:
        super().__init__()
        if mode not in ("3rnn", "1rnn"):
            raise ValueError(f"mode must be '3rnn' or '1rnn', got {mode!r}")
        self.mode = mode
        self.encoder = FrameEncoder(backbone=backbone, backbone_nodes=_multi_level_nodes(backbone, backbone_nodes), **encoder)
        self.input_keys = landmark_inputs(self.encoder.use_landmarks)
        dims = {"fc": self.encoder.fc_dim, "last": self.encoder.last_dim, "low": self.encoder.low_dim}
        if mode == "3rnn":
            self.rnns = nn.ModuleDict(
                {k: SequenceRNN(dims[k], rnn_hidden, rnn_layers, "gru", rnn_dropout) for k in FEATURE_ORDER}
            )
            self.rnn_out_dim = 3 * rnn_hidden
        else:
            self.rnns = nn.ModuleDict(
                {"all": SequenceRNN(sum(dims.values()), rnn_hidden, rnn_layers, "gru", rnn_dropout)}
            )
            self.rnn_out_dim = rnn_hidden
        self.out = nn.Linear(self.rnn_out_dim, 2)

    @property
    def backbone(self) -> nn.Module:
        """The per-frame CNN's backbone (what ``backbone_weights`` starts)."""
        return self.encoder.cnn

    def rnn_features(
        self, images: Tensor, landmarks: Tensor | None = None, landmarks_mask: Tensor | None = None
    ) -> Tensor:
        """The concatenated RNN outputs ``[B, T, rnn_out_dim]`` (what model-level fusion takes)."""
        if images.dim() != 5:
            raise ValueError(f"expected a sequence batch of images [B, T, C, H, W], found {tuple(images.shape)}")
        feats = self.encoder(images, landmarks, landmarks_mask)
        if self.mode == "3rnn":
            return torch.cat([self.rnns[k](feats[k]) for k in FEATURE_ORDER], -1)
        return self.rnns["all"](torch.cat([feats["low"], feats["last"], feats["fc"]], -1))

    def forward(
        self, images: Tensor, landmarks: Tensor | None = None, landmarks_mask: Tensor | None = None
    ) -> dict[str, Tensor]:
        """``[B, T, 3, H, W]`` in [-1, 1] (+ landmarks ``[B, T, L, 2]`` in [0, 1]) -> ``{"va": [B, T, 2]}``."""
        return {"va": self.out(self.rnn_features(images, landmarks, landmarks_mask))}


class ModelLevelFusion(nn.Module):
    """Model-level fusion of a CNN-1RNN and a CNN-3RNN (Sec. V-B "Ensemble Methodology", Table III).

    Args:
        fusion: ``"rnn"`` (one GRU layer of ``fusion_units``, "Model-Level Fusion + RNN") or ``"fc"``
            (one FC layer of ``fusion_units`` + ReLU + dropout, "Model-Level Fusion + FC").
        fusion_units: 128 in the paper.
        dropout: as :class:`CNNRNN` (both networks), and after the FC fusion layer.
        network: the other arguments of :class:`CNNRNN` but ``mode``, shared by both networks.

    The two networks start from checkpoints of CNN-1RNN / CNN-3RNN runs, loaded by the
    LightningModule when fitting starts (``one_rnn_checkpoint`` / ``three_rnn_checkpoint``).
    """

    output_tasks: tuple[str, ...] = ("va",)
    #: reads ``[B, T, ...]`` sequences (``affect predict`` cuts face tracks into windows)
    sequence_input: bool = True

    def __init__(
        self, fusion: Literal["rnn", "fc"] = "rnn", fusion_units: int = 128, dropout: float = 0.5, **network
    ) -> None:
        super().__init__()
        if fusion not in ("rnn", "fc"):
            raise ValueError(f"fusion must be 'rnn' or 'fc', got {fusion!r}")
        common = {"dropout": dropout, **network}
        self.one_rnn = CNNRNN("1rnn", **common)
        self.three_rnn = CNNRNN("3rnn", **common)
        self.input_keys = self.one_rnn.input_keys
        # The sub-networks' own output layers take no part in the fusion net (no unused DDP params).
        self.one_rnn.out = nn.Identity()
        self.three_rnn.out = nn.Identity()
        in_features = self.one_rnn.rnn_out_dim + self.three_rnn.rnn_out_dim
        self.fusion = fusion
        if fusion == "rnn":
            self.fuse: nn.Module = SequenceRNN(in_features, fusion_units, num_layers=1)
        else:
            self.fuse = nn.Sequential(
                nn.Linear(in_features, fusion_units), nn.ReLU(inplace=True), nn.Dropout(dropout)
            )
        self.out = nn.Linear(fusion_units, 2)

    def forward(
        self, images: Tensor, landmarks: Tensor | None = None, landmarks_mask: Tensor | None = None
    ) -> dict[str, Tensor]:
        """``[B, T, 3, H, W]`` (+ landmarks) -> ``{"va": [B, T, 2]}``."""
        h = torch.cat(
            [
                self.one_rnn.rnn_features(images, landmarks, landmarks_mask),
                self.three_rnn.rnn_features(images, landmarks, landmarks_mask),
            ],
            -1,
        )
        return {"va": self.out(self.fuse(h))}
