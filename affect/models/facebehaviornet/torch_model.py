"""FaceBehaviorNet (paper Sec. VI-B, Fig. 4): MT-VGG whose output layer predicts valence-arousal,
7 basic expressions and 17 action units, all "pooled from the same feature space".

It is :class:`~affect.models.mt_vgg.torch_model.MTVGG` with ``num_aus = 17`` (the canonical
``AU_SET``); nothing else differs, so there is one implementation. What makes FaceBehaviorNet
holistic is the training (multi-domain batches, coupling losses), which lives in the Lightning
module and in :class:`affect.losses.MultiTaskLoss`.

>>> import torch
>>> net = FaceBehaviorNet(backbone="test_resnet", hidden=16, image_size=32)
>>> {k: tuple(v.shape) for k, v in net(torch.zeros(2, 3, 32, 32)).items()}
{'va': (2, 2), 'expr': (2, 7), 'au': (2, 17)}
"""

from __future__ import annotations

from affect.labels import NUM_AU
from affect.models.mt_vgg.torch_model import MTVGG

__all__ = ["FaceBehaviorNet"]


class FaceBehaviorNet(MTVGG):
    """MT-VGG with 2 + 7 + 17 outputs (Sec. VI-B).

    Args:
        num_aus: AU logits (the 17 of ``affect.labels.AU_SET``).
        **kwargs: :class:`~affect.models.mt_vgg.torch_model.MTVGG`'s other arguments.
    """

    def __init__(self, num_aus: int = NUM_AU, **kwargs) -> None:
        super().__init__(num_aus=num_aus, **kwargs)
