"""``FaceBehaviorNetModule``: FaceBehaviorNet (paper Sec. VI-B, Fig. 4, Table VI) as a thin
LightningModule.

Builds :class:`~affect.models.facebehaviornet.torch_model.FaceBehaviorNet` (17 AUs) and hands the
rest to :class:`affect.models.multitask.MultiTaskModule`: ``L_MT`` of eq. 7 with the coupling
losses (co-annotation, distribution matching, soft co-annotation) switched by the arguments, over
one concatenated VA / AU / EXPR batch per step. The "(3x) VGG-FACE single-task" row of Table VI
is this module with ``tasks: [va]``, ``[expr]`` or ``[au]``.

>>> module = FaceBehaviorNetModule(backbone="test_resnet", hidden=16, image_size=32, log_media=False)
>>> len(module.hparams.au_set), module.net.head.sizes
(17, (2, 7, 17))
"""

from __future__ import annotations

from collections.abc import Sequence

from affect.labels import AU_SET
from affect.models.facebehaviornet.torch_model import FaceBehaviorNet
from affect.models.mt_vgg.lightning_model import MTVGGModule
from affect.models.multitask import TASKS

__all__ = ["FaceBehaviorNetModule"]


class FaceBehaviorNetModule(MTVGGModule):
    """FaceBehaviorNet trained with eq. 7 (+ Sec. VI-B couplings); Adam, lr 1e-4, dropout 0.5.

    Args:
        backbone: timm name of the conv part (``"vgg16"`` = VGG-FACE layout).
        hidden: units of the two FC layers (4096).
        dropout: dropout on the FC layers (0.5).
        au_set: the AU head's AUs (the 17 of ``affect.labels.AU_SET``).
        vggface_checkpoint, init_checkpoint, reset_head: initial weights, read when ``fit`` starts
            (as :class:`~affect.models.mt_vgg.lightning_model.MTVGGModule`).
        relatedness: Table V column for the couplings: ``"du2014"`` (cognitive study [38]),
            ``"affwild2"`` (empirical) or a JSON path.
        co_annotation, distribution_matching, soft_co_annotation: the coupling losses (Sec. VI-B.1-3);
            Table VI's best rows use ``soft_co_annotation`` and ``distribution_matching``.
        The other arguments are :class:`~affect.models.multitask.MultiTaskModule`'s.

    The same module as :class:`~affect.models.mt_vgg.lightning_model.MTVGGModule` with the network
    class and the default AU set changed (17 AUs).
    """

    net_class = FaceBehaviorNet

    def __init__(
        self,
        backbone: str = "vgg16",
        hidden: int = 4096,
        dropout: float = 0.5,
        au_set: Sequence[int] = AU_SET,
        image_size: int = 96,
        vggface_checkpoint: str | None = None,
        init_checkpoint: str | None = None,
        reset_head: bool = False,
        tasks: Sequence[str] = TASKS,
        lr: float = 1e-4,
        lr_decay_after: int | None = None,
        lr_decay_gamma: float = 0.95,
        lambda_au: float = 1.0,
        lambda_va: float = 1.0,
        relatedness: str = "du2014",
        co_annotation: bool = False,
        distribution_matching: bool = False,
        soft_co_annotation: bool = False,
        lambda_dm: float = 1.0,
        lambda_soft: float = 1.0,
        reweight: bool = True,
        au_threshold: float = 0.5,
        log_media: bool = True,
        media_samples: int = 5000,
    ) -> None:
        super().__init__(
            backbone=backbone, hidden=hidden, dropout=dropout, au_set=au_set, image_size=image_size,
            vggface_checkpoint=vggface_checkpoint, init_checkpoint=init_checkpoint, reset_head=reset_head,
            tasks=tasks, lr=lr, lr_decay_after=lr_decay_after, lr_decay_gamma=lr_decay_gamma, lambda_au=lambda_au,
            lambda_va=lambda_va, relatedness=relatedness, co_annotation=co_annotation,
            distribution_matching=distribution_matching, soft_co_annotation=soft_co_annotation, lambda_dm=lambda_dm,
            lambda_soft=lambda_soft, reweight=reweight, au_threshold=au_threshold, log_media=log_media,
            media_samples=media_samples,
        )  # fmt: skip
