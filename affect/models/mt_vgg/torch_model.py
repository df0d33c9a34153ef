"""MT-VGG (paper Sec. VI-A.1): VGG-FACE conv/pool layers -> FC 4096 -> FC 4096 -> one linear
output layer giving 2 VA values, 7 EXPR logits and A AU logits (A = 8 for Aff-Wild2 / ABAW 2020).

Plain ``nn.Module`` (no Lightning): input float ``[B, 3, H, W]`` in [-1, 1] (Sec. IV), output
``{"va": [B, 2], "expr": [B, 7], "au": [B, A]}`` (the VA values are the linear outputs, unbounded,
as the paper's "(linear) output layer"; softmax / sigmoid give EXPR / AU probabilities).
FaceBehaviorNet (Sec. VI-B) is this network with 17 AU outputs
(:class:`affect.models.facebehaviornet.torch_model.FaceBehaviorNet`).

Choices the paper leaves open: ReLU after each FC layer; dropout (p = 0.5, "applied") before and
after the second FC layer, i.e. on the input of every FC layer that follows FC1 (as VGG's own
classifier does), never on the conv features.

>>> import torch
>>> net = MTVGG(backbone="test_resnet", hidden=16, image_size=32)
>>> out = net(torch.zeros(4, 3, 32, 32), return_features=True)
>>> {k: tuple(v.shape) for k, v in out.items()}
{'va': (4, 2), 'expr': (4, 7), 'au': (4, 8), 'features': (4, 16)}
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from affect.labels import NUM_EXPR
from affect.models.backbones import Backbone, fold_frames, unfold_frames

__all__ = ["ABAW2020_AU_SET", "MTVGG", "MultiTaskHead"]

#: The 8 AUs of Aff-Wild2 in ABAW 2020 (MT-VGG, Table IV).
ABAW2020_AU_SET: tuple[int, ...] = (1, 2, 4, 6, 12, 15, 20, 25)


class MultiTaskHead(nn.Module):
    """The shared linear output layer of MT-VGG / MT-VGG-GRU / FaceBehaviorNet (Sec. VI-A, Fig. 4).

    One ``nn.Linear(in_features, 2 + num_expr + num_aus)``, split into ``"va"``, ``"expr"``,
    ``"au"``; works on any leading shape (``[B, F]`` or ``[B, T, F]``).

    >>> import torch
    >>> head = MultiTaskHead(8, num_aus=17)
    >>> {k: tuple(v.shape) for k, v in head(torch.zeros(2, 5, 8)).items()}
    {'va': (2, 5, 2), 'expr': (2, 5, 7), 'au': (2, 5, 17)}
    """

    def __init__(
        self, in_features: int, num_expr: int = NUM_EXPR, num_aus: int = len(ABAW2020_AU_SET)
    ) -> None:
        super().__init__()
        self.sizes = (2, num_expr, num_aus)
        self.linear = nn.Linear(in_features, sum(self.sizes))

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        va, expr, au = self.linear(x).split(self.sizes, dim=-1)
        return {"va": va, "expr": expr, "au": au}


class MTVGG(nn.Module):
    """MT-VGG: backbone conv/pool features -> FC ``hidden`` -> FC ``hidden`` -> :class:`MultiTaskHead`.

    Args:
        backbone: timm name of the conv part (``"vgg16"`` = VGG-FACE layout; ``"resnet50"``; a tiny
            one such as ``"test_resnet"`` in tests). Its last pool is flattened into FC1.
        hidden: units of each FC layer (paper: 4096).
        dropout: dropout probability on the FC layers (paper: 0.5).
        num_aus: AU logits (paper: 8 for MT-VGG on Aff-Wild2, 17 for FaceBehaviorNet).
        num_expr: EXPR logits (7).
        image_size: input side (paper: 96); fixes FC1's input size.
        in_chans: input channels (3; 1 for the audio-spectrogram stream of A/V-MT-VGG-GRU).
        backbone_nodes: optional FX node names to tap (see :class:`Backbone`); the *last* one feeds FC1.
        input_size: the backbone's own input side (:class:`Backbone`); None = ``image_size``.
    """

    input_keys: tuple[str, ...] = ("image",)
    #: reads single frames ``[B, 3, H, W]`` (sequence networks set True: ``[B, T, 3, H, W]``)
    sequence_input: bool = False
    output_tasks: tuple[str, ...] = ("va", "expr", "au")

    def __init__(
        self,
        backbone: str = "vgg16",
        hidden: int = 4096,
        dropout: float = 0.5,
        num_aus: int = len(ABAW2020_AU_SET),
        num_expr: int = NUM_EXPR,
        image_size: int = 96,
        in_chans: int = 3,
        backbone_nodes: Sequence[str] | None = None,
        input_size: int | None = None,
    ) -> None:
        super().__init__()
        self.backbone = Backbone(backbone, nodes=backbone_nodes, image_size=image_size, in_chans=in_chans,
                                 input_size=input_size)  # fmt: skip
        self.fc1 = nn.Linear(self.backbone.out_dims[-1], hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(dropout)
        self.head = MultiTaskHead(hidden, num_expr=num_expr, num_aus=num_aus)
        self.hidden = hidden

    def embed(self, images: Tensor) -> Tensor:
        """First-FC features (after ReLU) ``[..., hidden]`` of images ``[..., C, H, W]`` in [-1, 1].

        Leading axes are flattened through the CNN and restored (``[B, T, C, H, W]`` ->
        ``[B, T, hidden]``): MT-VGG-GRU stacks its GRU on these (Sec. VI-A.2).
        """
        lead = images.shape[:-3]
        feats = self.backbone(fold_frames(lead, images))[-1].flatten(1)
        return unfold_frames(lead, F.relu(self.fc1(feats)))

    def forward(self, images: Tensor, return_features: bool = False) -> dict[str, Tensor]:
        """``{"va", "expr", "au"}`` (plus ``"features"`` = :meth:`embed` when asked)."""
        h1 = self.embed(images)
        h2 = self.dropout(F.relu(self.fc2(self.dropout(h1))))
        out = self.head(h2)
        if return_features:
            out["features"] = h1
        return out
