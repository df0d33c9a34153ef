"""Initial weights: the one place where a weights or checkpoint file that a user names is opened.

Every initial-weights source of every model (a converted VGG-FACE file, an MT-VGG / FaceBehaviorNet
/ CNN-RNN checkpoint of an earlier run, the two streams of A/V-MT-VGG-GRU, the two networks of
model-level fusion) is an :class:`InitialWeights` entry that a LightningModule lists in
``initial_weights()``; :meth:`affect.models.multitask.MultiTaskModule.setup` loads them once, when
``fit`` starts. ``validate`` / ``test`` / ``predict --ckpt_path`` never open these files: the
weights are in the checkpoint.

Files never run code: :func:`read_weights` loads with ``torch.load(..., weights_only=True)`` (plain
tensors, containers and numbers only). A file that needs unpickling of other Python objects is
refused with one line naming it; a user who trusts such a file opts in with ``trusted_weights:
true`` on the model (or ``trusted=True`` here), and the file is then unpickled with a warning.

>>> import tempfile, os
>>> net = nn.Linear(2, 1)
>>> path = os.path.join(tempfile.mkdtemp(), "w.pt")
>>> torch.save({"state_dict": {"net.weight": torch.ones(1, 2), "net.bias": torch.zeros(1)}}, path)
>>> load_weights(nn.ModuleDict({"net": net}), path).loaded
['net.bias', 'net.weight']
>>> net.weight.tolist()
[[1.0, 1.0]]
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal, NamedTuple

import torch
from torch import Tensor, nn

from affect.errors import InputFileError

__all__ = [
    "InitialWeights",
    "LoadResult",
    "UnsafeWeightsFileError",
    "WeightsFileError",
    "expand_path",
    "load_weights",
    "read_weights",
    "state_dict_of",
]


class WeightsFileError(InputFileError):
    """A weights file that is missing, unreadable, or does not fit the model (one-line message; the
    ``affect`` command prints it as one line, see :mod:`affect.errors`)."""


class UnsafeWeightsFileError(WeightsFileError):
    """A weights file that needs unpickling of Python objects (could run code); refused unless trusted."""


class LoadResult(NamedTuple):
    """Names of the tensors copied and of those left out (absent in the model or of another shape)."""

    loaded: list[str]
    skipped: list[str]


class InitialWeights(NamedTuple):
    """One source of initial weights that a module loads when ``fit`` starts.

    ``key``: the config key that named the file (for messages); ``target``: the (sub)module that
    receives it; ``path``: the file; ``layout``: ``"vggface"`` (a converted VGG-FACE state dict into a
    VGG-16 :class:`~affect.models.backbones.Backbone`, strict), ``"by_order"`` (a packaged ImageNet file
    renamed by tensor order, :mod:`affect.models.pretrained`) or ``"checkpoint"`` (a Lightning
    checkpoint or state dict, see :func:`load_weights`); ``exclude``: name prefixes not copied;
    ``strict``: every tensor of ``target`` (outside ``exclude``) must be in the file.
    """

    key: str
    target: nn.Module
    path: str
    layout: Literal["vggface", "checkpoint", "by_order"] = "checkpoint"
    exclude: tuple[str, ...] = ()
    strict: bool = False


def expand_path(path: str | os.PathLike, key: str) -> Path:
    """``$VAR`` / ``${VAR}`` / ``~`` expanded; an unset variable is an error naming it and ``key``.

    >>> os.environ["AFFECT_TEST_W"] = "/tmp"
    >>> str(expand_path("${AFFECT_TEST_W}/x.pt", "backbone_weights"))
    '/tmp/x.pt'
    """
    text = os.path.expanduser(os.path.expandvars(str(path)))
    if "$" in text:
        raise WeightsFileError(
            f"{key}: {path!s} names an environment variable that is not set; export it or give the file's path"
        )
    return Path(text)


def read_weights(path: str | os.PathLike, *, trusted: bool = False, key: str = "weights file") -> object:
    """Open a weights / checkpoint file safely (``weights_only=True``); see the module docstring."""
    file = expand_path(path, key)
    if not file.is_file():
        raise WeightsFileError(f"{key}: {file} does not exist")
    if not _has_torch_magic(file):
        raise WeightsFileError(
            f"{key}: {file} is not a PyTorch weights file (neither a torch.save zip archive nor a pickle)"
        )
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        reason = str(err)
        if not _is_pickle_of_objects(reason):
            raise WeightsFileError(f"{key}: {file} is not a PyTorch weights file ({_first_line(reason)})") from None
        if not trusted:
            raise UnsafeWeightsFileError(
                f"{key}: refused {file}: {_unsafe_reason(reason)}; unpickling it can run code: re-save it as a "
                "plain state dict, or set trusted_weights: true on the model if you trust the file"
            ) from None
        warnings.warn(f"{key}: unpickling {file} (trusted_weights is set)", stacklevel=2)
        try:
            return torch.load(file, map_location="cpu", weights_only=not trusted)  # the documented opt-in
        except Exception as full:  # noqa: BLE001 - a corrupt file fails the full unpickler too
            raise WeightsFileError(f"{key}: {file} is not a PyTorch weights file ({_first_line(str(full))})") from None
    except Exception as err:  # noqa: BLE001 - torch's weights-only unpickler raises KeyError, IndexError,
        # RuntimeError, EOFError, zipfile.BadZipFile ... on a corrupt or foreign file
        raise WeightsFileError(f"{key}: {file} is not a PyTorch weights file ({_first_line(str(err))})") from None


def _has_torch_magic(file: Path) -> bool:
    """Whether ``file`` starts like what ``torch.save`` writes: a zip archive, or (legacy format) a pickle
    of protocol >= 2. A text file is not fed to the unpickler, whose errors on it are misleading."""
    with open(file, "rb") as f:
        head = f.read(4)
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def _is_pickle_of_objects(reason: str) -> bool:
    """Whether a ``weights_only`` failure is a forbidden Python object (not a corrupt / foreign file)."""
    return any(s in reason for s in ("Unsupported global", "Unsupported operand", "is not an allowed global",
                                     "Trying to call reduce", "Unsupported class"))  # fmt: skip


def _unsafe_reason(reason: str) -> str:
    """Why the safe loader refused a file (from torch's message, without its add_safe_globals advice)."""
    found = re.search(r"GLOBAL ([\w.]+)", reason)
    if found:
        return f"loading it would unpickle Python objects (it names {found.group(1)})"
    operand = re.search(r"Unsupported operand (\d+)", reason)
    if operand:  # protocol 0 / 4 / 5 pickles (of objects or not), or a damaged file
        return (f"the safe loader cannot read it (pickle operand {operand.group(1)}: Python objects, "
                "a pickle protocol other than 2, or a damaged file)")  # fmt: skip
    return "loading it would unpickle Python objects (not plain tensors)"


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    useful = [line for line in lines if "weights_only" not in line and "Weights only load failed" not in line]
    return (useful or lines or ["unreadable"])[0][:200]


def state_dict_of(obj: object, file: str = "weights file") -> Mapping[str, Tensor]:
    """The state dict inside a Lightning checkpoint (``"state_dict"``) or a plain state dict."""
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise WeightsFileError(
            f"{file}: expected a Lightning checkpoint or a state dict of tensors, found {type(obj).__name__}"
        )
    return obj


def load_weights(
    target: nn.Module,
    source: str | os.PathLike | Mapping[str, Tensor],
    *,
    exclude: Sequence[str] = (),
    strict: bool = False,
    trusted: bool = False,
    key: str = "weights file",
) -> LoadResult:
    """Copy the tensors of a checkpoint / state dict into ``target`` where name and shape match.

    Names are aligned by stripping a ``net.`` prefix when the file holds a whole LightningModule
    and ``target`` is its network, or adding it in the opposite case. A 4-D weight stored for 3 input
    channels is summed over them where ``target`` expects 1 (an RGB-trained first conv reused for a
    spectrogram stream, as timm does for ``in_chans=1``). Names starting with one of ``exclude``
    (e.g. an output layer being replaced) are not copied. Tensors that are absent in ``target`` or of
    another shape are skipped with a warning; with ``strict``, any skipped tensor or any tensor of
    ``target`` left unloaded is an error listing them. Nothing matching at all is always an error.
    """
    name = str(source) if not isinstance(source, Mapping) else "state dict"
    state = source if isinstance(source, Mapping) else state_dict_of(read_weights(source, trusted=trusted, key=key), name)
    own = target.state_dict()
    state = _align_prefix(dict(state), own)
    state = {k: v for k, v in state.items() if not any(k.startswith(p) for p in exclude)}
    for k, v in list(state.items()):
        if k in own and v.dim() == 4 and own[k].dim() == 4 and v.shape[1] == 3 and own[k].shape[1] == 1:
            state[k] = v.sum(1, keepdim=True)
    loaded = sorted(k for k, v in state.items() if k in own and v.shape == own[k].shape)
    skipped = sorted(set(state) - set(loaded))
    if not loaded:
        raise WeightsFileError(
            f"{key}: no tensor of {name} fits {type(target).__name__} by name and shape "
            f"(file keys {list(state)[:4]}, model keys {list(own)[:4]})"
        )
    missing = sorted(k for k in own if k not in loaded and not any(k.startswith(p) for p in exclude))
    if strict and (skipped or missing):
        raise WeightsFileError(
            f"{key}: {name} does not fit {type(target).__name__}: not in the model or other shape "
            f"{_shapes(skipped, state, own)}, not in the file {missing[:10]}"
        )
    target.load_state_dict({k: state[k].to(own[k].dtype) for k in loaded}, strict=False)
    if skipped:
        warnings.warn(f"{key}: {len(skipped)} tensors of {name} not loaded (absent or other shape): {skipped[:10]}",
                      stacklevel=2)  # fmt: skip
    return LoadResult(loaded, skipped)


def _align_prefix(state: dict[str, Tensor], own: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Strip or add the ``net.`` prefix so that the file's names meet the target's."""
    def hits(names):
        return sum(1 for k in names if k in own)

    stripped = {k[len("net."):]: v for k, v in state.items() if k.startswith("net.")}
    added = {f"net.{k}": v for k, v in state.items()}
    return max((state, stripped, added), key=lambda s: hits(s))


def _shapes(names: Sequence[str], state: Mapping[str, Tensor], own: Mapping[str, Tensor]) -> list[str]:
    return [f"{k} {tuple(state[k].shape)}" + (f" vs {tuple(own[k].shape)}" if k in own else "") for k in names[:10]]
