"""``MTVGGModule``: MT-VGG (paper Sec. VI-A.1, Table IV) as a thin LightningModule.

Builds :class:`~affect.models.mt_vgg.torch_model.MTVGG` and hands everything else (loss of eq. 4-6,
metrics, multi-domain batches, media, Adam) to :class:`affect.models.multitask.MultiTaskModule`.

>>> module = MTVGGModule(backbone="test_resnet", hidden=16, image_size=32, log_media=False)
>>> module.hparams.au_set, module.label_spaces()["expr_classes"][4]
((1, 2, 4, 6, 12, 15, 20, 25), 'Happiness')
"""

from __future__ import annotations

from collections.abc import Sequence

from affect.models.backbones import load_vggface
from affect.models.mt_vgg.torch_model import ABAW2020_AU_SET, MTVGG
from affect.models.multitask import TASKS, MultiTaskModule

__all__ = ["MTVGGModule"]


class MTVGGModule(MultiTaskModule):
    """MT-VGG trained with the sum of the task losses (eq. 4-6; Adam, lr 1e-4, dropout 0.5).

    Args:
        backbone: timm name of the conv part (``"vgg16"`` = VGG-FACE layout).
        hidden: units of the two FC layers (4096).
        dropout: dropout on the FC layers (0.5).
        au_set: the AU head's AUs (ABAW 2020: 1, 2, 4, 6, 12, 15, 20, 25).
        vggface_checkpoint: optional converted VGG-FACE state dict for a ``vgg16`` backbone
            (:func:`affect.models.backbones.load_vggface`).
        init_checkpoint: optional checkpoint of an earlier run (e.g. MT-VGG pre-trained on Aff-Wild)
            whose tensors are copied where name and shape match
            (:meth:`~affect.models.multitask.MultiTaskModule.load_matching_weights`).
        reset_head: with ``init_checkpoint``, keep a new output layer ("the output layer was
            discarded and substituted by a new one for MTL", Sec. VI-A).
        Both files are read once, when ``fit`` starts (never by validate/test/predict, nor by a
        module restored from a checkpoint, whose weights win).
        The other arguments are :class:`~affect.models.multitask.MultiTaskModule`'s.
    """

    #: The network built with ``backbone``, ``hidden``, ``dropout``, ``num_aus=len(au_set)``, ``image_size``.
    net_class: type[MTVGG] = MTVGG

    def __init__(
        self,
        backbone: str = "vgg16",
        hidden: int = 4096,
        dropout: float = 0.5,
        au_set: Sequence[int] = ABAW2020_AU_SET,
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
            tasks=tasks, au_set=au_set, image_size=image_size, lr=lr, lr_decay_after=lr_decay_after,
            lr_decay_gamma=lr_decay_gamma, lambda_au=lambda_au, lambda_va=lambda_va, relatedness=relatedness,
            co_annotation=co_annotation, distribution_matching=distribution_matching,
            soft_co_annotation=soft_co_annotation, lambda_dm=lambda_dm, lambda_soft=lambda_soft,
            reweight=reweight, au_threshold=au_threshold, log_media=log_media, media_samples=media_samples,
        )  # fmt: skip
        self.net = self.net_class(
            backbone=backbone, hidden=hidden, dropout=dropout, num_aus=len(self.au_set), image_size=image_size
        )

    def load_initial_weights(self) -> None:
        """At the start of ``fit``: VGG-FACE conv weights, then the matching weights of ``init_checkpoint``."""
        if self.hparams.vggface_checkpoint:
            load_vggface(self.net.backbone, self.hparams.vggface_checkpoint)
        if self.hparams.init_checkpoint:
            self.load_matching_weights(
                self.hparams.init_checkpoint, exclude=("net.head.",) if self.hparams.reset_head else ()
            )
