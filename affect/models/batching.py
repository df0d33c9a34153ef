"""From a loader's batch to a network's inputs: normalisation, the multi-domain merge (Fig. 4), the
AU columns of a model's AU set, the batch keys a network declares it reads, and what a module's
network takes (:class:`InputSpec`: frames or sequences, image and spectrogram sides).

The batch format itself (keys, masks, fill values) is :mod:`affect.data.batches`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from affect.data.batches import LABELS, unannotated
from affect.labels import NUM_AU, au_index

__all__ = [
    "NORMALISATION",
    "InputSpec",
    "concat_batches",
    "is_domain_batch",
    "narrow_au",
    "network_inputs",
    "normalise_images",
]

#: How uint8 images become network input (saved in every checkpoint).
NORMALISATION = "x.float() / 127.5 - 1  (uint8 RGB [0, 255] -> [-1, 1], paper Sec. IV)"


@dataclass(frozen=True)
class InputSpec:
    """What a module's network takes, for code that feeds it without knowing its class (``affect
    predict``): ``image_size`` (side of the uint8 face crops), ``sequence`` (``[B, T, 3, S, S]``
    windows instead of ``[B, 3, S, S]`` frames: the network's ``sequence_input``), ``audio_size``
    (side of the ``batch["audio"]`` spectrogram images; 0 = reads no audio).

    >>> from affect.models.mt_vgg_gru.torch_model import MTVGGGRU
    >>> InputSpec.of(MTVGGGRU(backbone="test_resnet", hidden=8, rnn_hidden=4, image_size=32), image_size=32)
    InputSpec(image_size=32, sequence=True, audio_size=0)
    """

    image_size: int
    sequence: bool = False
    audio_size: int = 0

    @classmethod
    def of(cls, net: nn.Module, image_size: int) -> InputSpec:
        """The spec of ``net`` (its ``input_keys``, ``sequence_input`` and ``audio_size``) for faces of
        ``image_size``; a network that reads audio must name its spectrogram side."""
        audio = 0
        if "audio" in getattr(net, "input_keys", ("image",)):
            audio = int(getattr(net, "audio_size", 0) or 0)
            if audio < 1:
                raise TypeError(f"{type(net).__name__} reads batch['audio'] but names no audio_size")
        return cls(int(image_size), bool(getattr(net, "sequence_input", False)), audio)


#: Inputs a network may leave out (passed as ``None`` when the batch lacks them).
OPTIONAL_INPUTS: tuple[str, ...] = ("landmarks", "landmarks_mask")


def normalise_images(images: Tensor) -> Tensor:
    """uint8 images -> float in [-1, 1] (``x / 127.5 - 1``, Sec. IV).

    >>> normalise_images(torch.tensor([0, 255], dtype=torch.uint8))
    tensor([-1.,  1.])
    """
    if images.dtype != torch.uint8:
        raise TypeError(
            f"images must be uint8 in [0, 255] (the batch convention; models normalise on device), found {images.dtype}"
        )
    return images.float() / 127.5 - 1.0


def _audio_input(audio: Tensor) -> Tensor:
    """Spectrogram images are float in [-1, 1] already (Sec. IV); uint8 ones are normalised."""
    return audio.float() if audio.dtype.is_floating_point else normalise_images(audio)


def network_inputs(net: nn.Module, batch: Mapping) -> list[Tensor | None]:
    """The positional inputs of ``net`` from ``batch``, in the order of ``net.input_keys``.

    Every network of :mod:`affect.models` declares the batch keys it reads (``("image",)`` for
    MT-VGG / FaceBehaviorNet, ``("image", "landmarks", "landmarks_mask")`` for AffWildNet with
    landmarks, ``("audio",)`` / ``("image", "audio")`` for the A/V models). ``image`` is normalised
    to [-1, 1] and a 4-D one goes channels-last (NHWC convolutions are 1.4-2x faster for these
    backbones at 96x96, with cuDNN in bf16 and with oneDNN on CPU); ``audio`` is normalised when
    uint8; landmarks pass as they are (``None`` when the batch has none).

    >>> net = nn.Identity(); net.input_keys = ("image",)
    >>> network_inputs(net, {"image": torch.zeros(1, 3, 2, 2, dtype=torch.uint8)})[0].min().item()
    -1.0
    """
    keys = getattr(net, "input_keys", ("image",))
    args: list[Tensor | None] = []
    for key in keys:
        value = batch.get(key)
        if value is None:
            if key in OPTIONAL_INPUTS:
                args.append(None)
                continue
            raise KeyError(f"{type(net).__name__} reads batch[{key!r}], which this batch lacks (keys {sorted(batch)})")
        if key == "image":
            value = normalise_images(value)
            if value.ndim == 4:
                value = value.contiguous(memory_format=torch.channels_last)
        elif key == "audio":
            value = _audio_input(value)
        args.append(value)
    return args


def is_domain_batch(batch: object) -> bool:
    """Whether ``batch`` is a dict of domain batches (``{"va": {...}, "au": {...}}``), not one batch.

    >>> is_domain_batch({"va": {"image": 0}, "au": {"image": 0}}), is_domain_batch({"image": 0})
    (True, False)
    """
    return (
        isinstance(batch, Mapping) and len(batch) > 0 and all(isinstance(v, Mapping) for v in batch.values())
    )


def concat_batches(batches: Mapping[str, Mapping]) -> dict:
    """Concatenate domain batches along the batch axis into one batch (Fig. 4: VA-, AU- and
    EXPR-Set batches of 401 / 247 / 103 images form one forward pass).

    Tensors are concatenated on dim 0, lists of ids (``corpus``, ``video``, ``path``) joined. A
    label a domain lacks is filled as not annotated (:data:`affect.data.batches.LABELS`); any other
    key must be in every domain. Sequence batches (with ``frame_mask``) of different lengths are
    right-padded on the time axis (padding is masked out by ``frame_mask``).

    >>> a = {"image": torch.zeros(2, 3, 4, 4, dtype=torch.uint8), "expr": torch.tensor([1, 2]), "corpus": ["x", "x"]}
    >>> b = {"image": torch.zeros(1, 3, 4, 4, dtype=torch.uint8), "expr": torch.tensor([-1]), "corpus": ["y"]}
    >>> out = concat_batches({"expr": a, "va": b})
    >>> out["image"].shape, out["expr"].tolist(), out["corpus"]
    (torch.Size([3, 3, 4, 4]), [1, 2, -1], ['x', 'x', 'y'])
    """
    names = list(batches)
    if not names:
        raise ValueError("concat_batches: no domain batches")
    parts = [dict(batches[n]) for n in names]
    sizes = [_batch_size(p, n) for p, n in zip(parts, names, strict=True)]
    for p, size in zip(parts, sizes, strict=True):
        for key in LABELS:
            present = [q[key] for q in parts if key in q]
            if key in p or not present:
                continue
            like = present[0]
            seq = "frame_mask" in p  # sequence batch: [B, T, ...]
            shape = (size, p["frame_mask"].shape[1], *like.shape[2:]) if seq else (size, *like.shape[1:])
            p.update(unannotated(key, shape, like))
    keys = list(dict.fromkeys(k for p in parts for k in p))
    out: dict = {}
    for key in keys:
        missing = [n for p, n in zip(parts, names, strict=True) if key not in p]
        if missing:
            have = [n for n in names if n not in missing]
            raise ValueError(
                f"concat_batches: key {key!r} is in the {have} batches but missing from {missing}"
            )
        values = [p[key] for p in parts]
        if all(isinstance(v, Tensor) for v in values):
            out[key] = _cat(values, key)
        elif all(isinstance(v, (list, tuple)) for v in values):
            out[key] = [x for v in values for x in v]
        else:
            raise ValueError(f"concat_batches: key {key!r} mixes types {[type(v).__name__ for v in values]}")
    return out


def _batch_size(batch: Mapping, name: str) -> int:
    image = batch.get("image")
    if not isinstance(image, Tensor):
        raise ValueError(f"batch {name!r} has no 'image' tensor; keys {sorted(batch)}")
    return int(image.shape[0])


def _fill(key: str) -> float | int:
    label = LABELS.get(key)
    return label.fill if label is not None else 0


def _cat(values: list[Tensor], key: str) -> Tensor:
    if all(v.shape[1:] == values[0].shape[1:] for v in values):
        return torch.cat(values, 0)
    if all(v.ndim >= 2 and v.shape[2:] == values[0].shape[2:] for v in values):  # sequences of different T
        t = max(v.shape[1] for v in values)
        fill = _fill(key)
        padded = [
            torch.cat([v, v.new_full((v.shape[0], t - v.shape[1], *v.shape[2:]), fill)], 1) for v in values
        ]
        return torch.cat(padded, 0)
    raise ValueError(
        f"concat_batches: {key!r} shapes {[tuple(v.shape) for v in values]} cannot be concatenated"
    )


def narrow_au(batch: dict, au_set: Sequence[int]) -> dict:
    """AU targets (and mask) on a model's AU set, in place.

    Corpora deliver AU targets over the 17 AUs of ``labels.AU_SET``; a model with another AU set
    (MT-VGG's 8 ABAW 2020 AUs) gets the matching columns.

    >>> b = narrow_au({"au": torch.arange(17.0)[None]}, (1, 12))
    >>> b["au"].tolist()
    [[0.0, 8.0]]
    """
    au = batch.get("au")
    if au is None or au.shape[-1] == len(au_set):
        return batch
    if au.shape[-1] != NUM_AU:
        raise ValueError(
            f"batch['au'] has {au.shape[-1]} AUs; expected the model's {len(au_set)} "
            f"({list(au_set)}) or the {NUM_AU} of labels.AU_SET"
        )
    columns = _au_columns(tuple(au_set), au.device)
    batch["au"] = au.index_select(-1, columns)
    if batch.get("au_mask") is not None:
        batch["au_mask"] = batch["au_mask"].index_select(-1, columns)
    return batch


@functools.cache
def _au_columns(au_set: tuple[int, ...], device: torch.device) -> Tensor:
    """The columns of ``au_set`` in ``labels.AU_SET`` as an index on ``device``, made once (a tensor
    built from a Python list on every step would be a blocking host-to-device copy on a GPU)."""
    return torch.tensor([au_index(a) for a in au_set], device=device)
