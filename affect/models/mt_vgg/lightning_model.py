"""``MTVGGModule``: MT-VGG (paper Sec. VI-A.1, Table IV) as a thin LightningModule.

Declares the network's arguments and builds :class:`~affect.models.mt_vgg.torch_model.MTVGG`; the
backbone options are :class:`~affect.models.backbone_module.BackboneModule`'s, the loss of eq. 4-6,
metrics, multi-domain batches, initial weights and Adam :class:`affect.models.multitask.MultiTaskModule`'s
(their arguments pass through ``**kwargs``).

>>> module = MTVGGModule(backbone="test_resnet", hidden=16, image_size=32)
>>> module.hparams.au_set, module.label_spaces()["expr_classes"][4]
((1, 2, 4, 6, 12, 15, 20, 25), 'Happiness')
"""

from __future__ import annotations

from collections.abc import Sequence

from affect.models.backbone_module import BackboneModule
from affect.models.mt_vgg.torch_model import ABAW2020_AU_SET, MTVGG

__all__ = ["MTVGGModule"]


class MTVGGModule(BackboneModule):
    """MT-VGG trained with the sum of the task losses (eq. 4-6; Adam, lr 1e-4, dropout 0.5).

    Args:
        hidden: units of the two FC layers (4096).
        dropout: dropout on the FC layers (0.5).
        au_set: the AU head's AUs (ABAW 2020: 1, 2, 4, 6, 12, 15, 20, 25).
        net_input_size: the backbone's own input side; None = ``image_size``. Faces are aligned at
            ``image_size`` and area-downscaled to it on the device (e.g. 96 -> 48 for a small-face backbone).
        **kwargs: :class:`~affect.models.backbone_module.BackboneModule`'s arguments (``backbone``,
            ``backbone_weights``) and :class:`~affect.models.multitask.MultiTaskModule`'s (``loss``,
            ``tasks``, ``lr``, ``init_checkpoint``, ``reset_head``, ...).
    """

    network = MTVGG

    def __init__(
        self,
        hidden: int = 4096,
        dropout: float = 0.5,
        au_set: Sequence[int] = ABAW2020_AU_SET,
        net_input_size: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(au_set=au_set, **kwargs)

    def net_args(self) -> dict:
        h = self.hparams
        return {**super().net_args(), "hidden": h.hidden, "dropout": h.dropout, "num_aus": len(self.au_set),
                "input_size": h.get("net_input_size")}  # fmt: skip
