"""``FaceBehaviorNetModule``: FaceBehaviorNet (paper Sec. VI-B, Fig. 4, Table VI) as a thin
LightningModule.

:class:`~affect.models.mt_vgg.lightning_model.MTVGGModule` with 17 AUs by default: ``L_MT`` of eq. 7
over one concatenated VA / AU / EXPR batch per step; the coupling losses (co-annotation,
distribution matching, soft co-annotation) are options of its ``loss``
(:class:`affect.losses.MultiTaskLoss`), e.g. in YAML::

    model:
      class_path: affect.models.facebehaviornet.FaceBehaviorNetModule
      init_args:
        loss:
          class_path: affect.losses.MultiTaskLoss
          init_args: {relatedness: du2014, soft_co_annotation: true, distribution_matching: true}

The "(3x) VGG-FACE single-task" row of Table VI is this module with ``tasks: [va]``, ``[expr]`` or ``[au]``.

>>> module = FaceBehaviorNetModule(backbone="test_resnet", hidden=16, image_size=32)
>>> len(module.hparams.au_set), module.net.head.sizes
(17, (2, 7, 17))
"""

from __future__ import annotations

from collections.abc import Sequence

from affect.labels import AU_SET
from affect.models.facebehaviornet.torch_model import FaceBehaviorNet
from affect.models.mt_vgg.lightning_model import MTVGGModule

__all__ = ["FaceBehaviorNetModule"]


class FaceBehaviorNetModule(MTVGGModule):
    """FaceBehaviorNet trained with eq. 7 (+ Sec. VI-B couplings); Adam, lr 1e-4, dropout 0.5.

    Args:
        au_set: the AU head's AUs (the 17 of ``affect.labels.AU_SET``).
        **kwargs: :class:`~affect.models.mt_vgg.lightning_model.MTVGGModule`'s arguments (network)
            and :class:`~affect.models.multitask.MultiTaskModule`'s (loss, tasks, optimisation).
    """

    network = FaceBehaviorNet

    def __init__(self, au_set: Sequence[int] = AU_SET, **kwargs) -> None:
        super().__init__(au_set=au_set, **kwargs)
