"""The plain networks of the compound models (no Lightning): the ``K``-class output layer that
replaces FaceBehaviorNet's, and FaceBehaviorNet's network read from a trained checkpoint through the
one safe reader (:mod:`affect.models.weights`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from torch import Tensor, nn

from affect.models.facebehaviornet.torch_model import FaceBehaviorNet
from affect.models.weights import WeightsFileError, load_weights, read_weights, state_dict_of

__all__ = ["CompoundHead", "TrainedFaceBehaviorNet", "check_checkpoint_image_size", "load_facebehaviornet"]


class TrainedFaceBehaviorNet(NamedTuple):
    """A FaceBehaviorNet network read from a :class:`FaceBehaviorNetModule` checkpoint."""

    net: FaceBehaviorNet
    tasks: tuple[str, ...]
    au_set: tuple[int, ...]
    arch: dict


def load_facebehaviornet(checkpoint: str, *, trusted: bool = False) -> TrainedFaceBehaviorNet:
    """The network of a :class:`FaceBehaviorNetModule` checkpoint, rebuilt from its saved architecture
    (``hyper_parameters``: backbone, hidden, dropout, image_size; ``affect``: tasks, AU set) and
    loaded through the one safe reader (:func:`affect.models.weights.read_weights`, no unpickling)."""
    ckpt = read_weights(checkpoint, trusted=trusted, key="FaceBehaviorNet checkpoint")
    hp = ckpt.get("hyper_parameters") if isinstance(ckpt, Mapping) else None
    spaces = ckpt.get("affect") if isinstance(ckpt, Mapping) else None
    if not isinstance(hp, Mapping) or not isinstance(spaces, Mapping):
        raise WeightsFileError(
            f"{checkpoint}: not a FaceBehaviorNetModule checkpoint (no 'hyper_parameters' / 'affect' entries)"
        )
    arch = {"backbone": hp.get("backbone", "vgg16"), "hidden": int(hp.get("hidden", 4096)),
            "dropout": float(hp.get("dropout", 0.5)), "image_size": int(spaces["image_size"])}  # fmt: skip
    au_set = tuple(int(a) for a in spaces["au_set"])
    net = FaceBehaviorNet(num_aus=len(au_set), **arch)
    load_weights(net, state_dict_of(ckpt, checkpoint), strict=True, key="FaceBehaviorNet checkpoint")
    return TrainedFaceBehaviorNet(net, tuple(spaces["tasks"]), au_set, arch)


def check_checkpoint_image_size(data_size: int | None, net_size: int, checkpoint: str) -> None:
    """The data's image size (linked by the CLI) must be the one the checkpoint's network was built for."""
    if data_size is not None and int(data_size) != int(net_size):
        raise ValueError(
            f"{checkpoint} holds a network built for {net_size}x{net_size} images but the data delivers "
            f"{data_size}x{data_size}; set data.init_args.image_size to {net_size}"
        )


class CompoundHead(nn.Module):
    """The ``K``-class output layer that replaces FaceBehaviorNet's VA/EXPR/AU layer (one linear layer
    on the same FC2 features); returns ``{"compound": logits}`` so it slots into ``MTVGG.forward``.

    >>> import torch
    >>> CompoundHead(8, 11)(torch.zeros(2, 8))["compound"].shape
    torch.Size([2, 11])
    """

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, num_classes)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        return {"compound": self.linear(x)}
