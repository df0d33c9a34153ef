"""Reading an ``affect`` checkpoint once, checking it, and handing on what it holds.

A file given as ``--ckpt_path`` (or to Python callers) is opened once, with the safe loader
(``torch.load(weights_only=True)``: no pickled code runs; :func:`affect.models.weights.read_weights`),
and checked before anything else runs — before ``affect predict`` extracts a single face. What it
must hold (what ``affect fit`` writes through Lightning):

- ``state_dict``: the module's tensors (a *plain* state dict, as ``torch.save(model.state_dict())``
  writes, is refused: it names neither the model class nor its settings);
- ``pytorch-lightning_version`` and ``hyper_parameters`` (a mapping: the module's settings; its
  ``_class_path`` names the class when LightningCLI wrote it);
- ``affect``: the label spaces and input convention (see :meth:`MultiTaskModule.label_spaces
  <affect.models.multitask.MultiTaskModule.label_spaces>`), checked key by key:

  ============== ==================================================================
  ``image_size`` an integer in [:data:`MIN_IMAGE_SIZE`, :data:`MAX_IMAGE_SIZE`] (and the
                 ``image_size`` hyper-parameter, when there is one, equals it)
  ``tasks``      optional; a non-empty list of distinct names from ``va``, ``expr``, ``au``
  ``au_set``     optional; distinct AU numbers of the package's AU set, in output order
  ``expr_classes`` / ``compound_classes``: optional; non-empty lists of distinct strings
  ``format``     optional; 2 (the current layout)
  ============== ==================================================================

Every failure is one :class:`~affect.errors.CheckpointError` line naming the file, the key and the
fix: a missing file, a file that is not a torch checkpoint, a plain state dict, another project's
file (a config dump, a Lightning checkpoint of a model that is not ``affect``'s), a missing or
tampered ``affect`` entry (``image_size: 100000`` is refused here, not discovered as a 120 GB
allocation). A checkpoint of the earlier module layout gets the ``affect upgrade-checkpoint`` line
(:mod:`affect.models.compat`).

>>> import tempfile, os, torch
>>> p = os.path.join(tempfile.mkdtemp(), "weights.pt")
>>> torch.save({"fc.weight": torch.zeros(2, 2)}, p)
>>> read_checkpoint(p)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
affect.errors.CheckpointError: --ckpt_path ...weights.pt is a plain state dict (tensors only)...
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from torch import Tensor, nn

from affect.data.batches import TASKS
from affect.errors import CheckpointError, MissingCheckpointError
from affect.labels import AU_SET

__all__ = ["MAX_IMAGE_SIZE", "MIN_IMAGE_SIZE", "CheckpointRecord", "read_checkpoint"]

#: The range of a checkpoint's ``image_size`` (the paper's networks take 96; 8 is the smallest side
#: the package's modules accept, 1024 bounds what a forged entry can make predict allocate).
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 8, 1024
#: The ``affect`` entry's layout version that this package writes.
FORMAT = 2
_FIX = "pass the .ckpt file that `affect fit` wrote (<run>/.../checkpoints/*.ckpt)"


@dataclass(frozen=True)
class CheckpointRecord:
    """What a checked checkpoint holds (see the module docstring).

    ``class_path``: the LightningModule's class (``None`` when the file does not name it: Lightning
    alone does not, LightningCLI does); ``hyper_parameters``: the module's saved settings;
    ``affect``: the checked ``affect`` entry; ``image_size`` / ``tasks`` / ``au_set`` /
    ``expr_classes`` / ``compound_classes``: its values (``None`` / ``()`` when absent); ``checkpoint``: the
    whole loaded file (``state_dict`` and Lightning's entries), for :meth:`load_into`.
    """

    path: Path
    class_path: str | None
    hyper_parameters: dict
    affect: dict
    image_size: int | None
    tasks: tuple[str, ...] = ()
    au_set: tuple[int, ...] = ()
    expr_classes: tuple[str, ...] = ()
    compound_classes: tuple[str, ...] = ()
    checkpoint: Mapping = field(default_factory=dict, repr=False)

    @property
    def state_dict(self) -> Mapping[str, Tensor]:
        return self.checkpoint["state_dict"]

    def load_into(self, module: nn.Module) -> None:
        """Restore the weights into ``module`` as Lightning's restore does for evaluation (its
        ``on_load_checkpoint`` hook, then every tensor, strictly); a mismatch is a one-line error."""
        hook = getattr(module, "on_load_checkpoint", None)
        if callable(hook):
            hook(dict(self.checkpoint))
        try:
            module.load_state_dict(self.state_dict, strict=True)
        except RuntimeError as err:
            first = " ".join(str(err).split())[:300]
            raise CheckpointError(
                f"--ckpt_path {self.path}: its weights do not fit {type(module).__name__} ({first}); the model "
                "settings given beside --ckpt_path must be those it was trained with (drop the overrides)"
            ) from None


def read_checkpoint(path: str | os.PathLike, *, key: str = "--ckpt_path", require_affect: bool = True) -> CheckpointRecord:
    """Open ``path`` once (safe loader), check it and return its :class:`CheckpointRecord`; a
    :class:`~affect.errors.CheckpointError` (one line: the file, the key, the fix) otherwise.

    ``require_affect=False`` accepts a Lightning checkpoint without an ``affect`` entry (a module of
    the user's own that ``affect fit`` trained; ``fit`` / ``validate`` / ``test`` need no label spaces);
    an entry that is there is checked all the same."""
    from affect.models.compat import needs_upgrade, old_checkpoint_message
    from affect.models.weights import WeightsFileError, expand_path, read_weights

    try:
        file = expand_path(path, key)
    except WeightsFileError as err:
        raise CheckpointError(str(err)) from None
    if not file.is_file():
        raise MissingCheckpointError(f"{key} {file} does not exist; check the path ({_FIX})")
    try:
        ckpt = read_weights(file, key=key)
    except WeightsFileError as err:
        raise CheckpointError(f"{err}; {_FIX}") from None
    where = f"{key} {file}"
    if not isinstance(ckpt, Mapping):
        raise CheckpointError(f"{where} holds a {type(ckpt).__name__}, not a checkpoint; {_FIX}")
    if ckpt and all(isinstance(v, Tensor) for v in ckpt.values()):
        raise CheckpointError(
            f"{where} is a plain state dict (tensors only): it names neither the model nor its settings; {_FIX}, "
            "or load the tensors in Python (affect.models.weights.load_weights)"
        )
    if not isinstance(ckpt.get("state_dict"), Mapping) or "pytorch-lightning_version" not in ckpt:
        raise CheckpointError(
            f"{where} is not a Lightning checkpoint (no state_dict / pytorch-lightning_version; keys "
            f"{sorted(map(str, ckpt))[:6]}); {_FIX}"
        )
    hparams = ckpt.get("hyper_parameters", {})
    if not isinstance(hparams, Mapping):
        raise CheckpointError(f"{where}: hyper_parameters is a {type(hparams).__name__}, not a mapping; {_FIX}")
    if needs_upgrade(hparams):
        raise CheckpointError(old_checkpoint_message(file))
    class_path = hparams.get("_class_path")
    entry = ckpt.get("affect")
    if entry is None and not require_affect:
        return CheckpointRecord(file, class_path if isinstance(class_path, str) else None, dict(hparams), {}, None,
                                checkpoint=ckpt)  # fmt: skip
    if not isinstance(entry, Mapping):
        model = class_path or ckpt.get("hparams_name") or "an unnamed model"
        raise CheckpointError(
            f"{where} is a Lightning checkpoint of another project ({model}): it has no 'affect' entry "
            f"(label spaces, image size) that affect's models write; {_FIX}"
        )
    entry = dict(entry)
    size = _image_size(entry, hparams, where)
    record = CheckpointRecord(
        path=file,
        class_path=class_path if isinstance(class_path, str) else None,
        hyper_parameters=dict(hparams),
        affect=entry,
        image_size=size,
        tasks=_names(entry, "tasks", where, allowed=TASKS),
        au_set=_au_set(entry, where),
        expr_classes=_names(entry, "expr_classes", where),
        compound_classes=_names(entry, "compound_classes", where),
        checkpoint=ckpt,
    )
    fmt = entry.get("format", FORMAT)
    if type(fmt) is not int or fmt != FORMAT:
        raise _tampered(where, "format", fmt, f"{FORMAT} (the layout this affect writes)")
    return record


def _tampered(where: str, key: str, value: object, want: str) -> CheckpointError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return CheckpointError(
        f"{where}: affect.{key} is {shown}, expected {want}; the file was changed after training or is not "
        f"affect's: {_FIX}"
    )


def _image_size(entry: dict, hparams: Mapping, where: str) -> int:
    want = f"an integer in [{MIN_IMAGE_SIZE}, {MAX_IMAGE_SIZE}]"
    if "image_size" not in entry:
        raise CheckpointError(f"{where}: the 'affect' entry has no image_size (the network's input side); {_FIX}")
    size = entry["image_size"]
    if type(size) is not int or not MIN_IMAGE_SIZE <= size <= MAX_IMAGE_SIZE:
        raise _tampered(where, "image_size", size, want)
    hp = hparams.get("image_size")
    if hp is not None and (type(hp) is not int or hp != size):
        raise CheckpointError(
            f"{where}: hyper_parameters.image_size is {hp!r} but affect.image_size is {size}: the file was "
            f"changed after training; {_FIX}"
        )
    return size


def _names(entry: dict, key: str, where: str, allowed: tuple[str, ...] | None = None) -> tuple[str, ...]:
    if key not in entry:
        return ()
    value = entry[key]
    want = f"a non-empty list of distinct names{f' from {list(allowed)}' if allowed else ''}"
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) and v for v in value):
        raise _tampered(where, key, value, want)
    if len(set(value)) != len(value) or (allowed is not None and not set(value) <= set(allowed)):
        raise _tampered(where, key, value, want)
    return tuple(value)


def _au_set(entry: dict, where: str) -> tuple[int, ...]:
    if "au_set" not in entry:
        return ()
    value = entry["au_set"]
    want = f"a non-empty list of distinct AU numbers from {list(AU_SET)}"
    ok = isinstance(value, (list, tuple)) and value and all(type(a) is int and a in AU_SET for a in value)
    if not ok or len(set(value)) != len(value):
        raise _tampered(where, "au_set", value, want)
    return tuple(value)
