"""The default model: a trained network that ships inside the package, used when no checkpoint is given.

This folder is package data holding two files (until a model is dropped in it holds neither, and
:func:`load_default_model` raises :class:`~affect.errors.DefaultModelError`):

- ``model.json``: ``{"format": "affect-default-model", "version": 1, "name", "weights": "<file>.pt",
  "sha256": "<hex of the weights file>", "class_path": "affect.models....Module", "init_args": {the
  module's hyper-parameters}, "affect": {the checkpoint's "affect" entry: expr_classes, au_set, tasks,
  image_size, normalisation, format}, "licence", "card"}``;
- the weights file: a plain state dict of tensors (float16 allowed: each tensor is cast to the
  dtype of the module's own tensor on load), opened with ``torch.load(..., weights_only=True)``
  after its sha256 matched ``model.json``.

:func:`export_default_model` writes both from a Lightning checkpoint of ``affect fit`` (and loads
them back, so a folder it wrote is known to load). :func:`default_checkpoint` writes the loaded
model as a Lightning checkpoint file, which is how ``affect predict`` without ``--ckpt`` runs it:
through the same ``--ckpt_path`` path as any trained checkpoint (:func:`affect.predict.run_predict`).
"""

from __future__ import annotations

import hashlib
import io
import json
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from affect.errors import DefaultModelError

__all__ = ["MODEL_DIR", "default_checkpoint", "export_default_model", "load_default_model", "read_manifest"]

#: Where the default model's files are (the package folder; tests point it elsewhere).
MODEL_DIR: Traversable | Path = resources.files(__name__)
MANIFEST = "model.json"
WEIGHTS = "weights.pt"
FORMAT, VERSION = "affect-default-model", 1
REQUIRED = ("format", "version", "name", "weights", "sha256", "class_path", "init_args", "affect")
#: Hyper-parameters that name weight files of the training run: the exported weights replace them.
WEIGHT_SOURCES = ("init_checkpoint", "backbone_weights")
#: Only the package's own modules are built from ``class_path``.
CLASS_PREFIX = "affect.models."
_FIX = "reinstall affect, or pass a checkpoint (--ckpt CKPT) that `affect fit` wrote"


def _folder(folder: str | Path | Traversable | None) -> Traversable | Path:
    return MODEL_DIR if folder is None else folder if isinstance(folder, Traversable) else Path(folder)


def read_manifest(folder: str | Path | Traversable | None = None) -> dict:
    """``model.json`` of ``folder`` (default: :data:`MODEL_DIR`), checked for the contract's keys."""
    where = _folder(folder)
    file = where / MANIFEST
    if not file.is_file():
        raise DefaultModelError(f"no default model is installed ({file} is missing); pass a checkpoint that "
                                "`affect fit` wrote (--ckpt runs/<name>/checkpoints/best.ckpt)")  # fmt: skip
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DefaultModelError(f"default model: {file} is not JSON ({err}); {_FIX}") from None
    missing = [k for k in REQUIRED if k not in manifest] if isinstance(manifest, dict) else list(REQUIRED)
    if missing:
        raise DefaultModelError(f"default model: {file} lacks {', '.join(missing)}; {_FIX}")
    if manifest["format"] != FORMAT or manifest["version"] != VERSION:
        raise DefaultModelError(
            f"default model: {file} is format {manifest['format']!r} version {manifest['version']!r}; this affect "
            f"reads {FORMAT!r} version {VERSION}; {_FIX}"
        )
    if not str(manifest["class_path"]).startswith(CLASS_PREFIX):
        raise DefaultModelError(f"default model: {file}: class_path {manifest['class_path']!r} is not one of "
                                f"affect's models ({CLASS_PREFIX}...); {_FIX}")  # fmt: skip
    return manifest


def read_state_dict(folder: str | Path | Traversable | None = None, manifest: dict | None = None) -> dict:
    """The weights file named by ``model.json``, after its sha256 matched: ``{name: tensor}``."""
    import torch

    where = _folder(folder)
    manifest = read_manifest(where) if manifest is None else manifest
    file = where / str(manifest["weights"])
    if not file.is_file():
        raise DefaultModelError(f"default model: weights file {file} (named in {MANIFEST}) is missing; {_FIX}")
    data = file.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != str(manifest["sha256"]).lower():
        raise DefaultModelError(f"default model: {file} has sha256 {digest}, {MANIFEST} says {manifest['sha256']} "
                                f"(a damaged or replaced file); {_FIX}")  # fmt: skip
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - the weights-only unpickler raises many types on a foreign file
        raise DefaultModelError(f"default model: {file} is not a plain state dict ({err}); {_FIX}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DefaultModelError(f"default model: {file} is not a plain state dict of tensors; {_FIX}")
    return state


def load_default_model(device="cpu", folder: str | Path | Traversable | None = None):
    """``(LightningModule in eval mode on device, the "affect" entry)`` of the default model.

    Raises :class:`~affect.errors.DefaultModelError` when the files are missing or do not match (sha256,
    format, tensor names or shapes)."""
    from jsonargparse import ArgumentParser
    from lightning.pytorch import LightningModule

    where = _folder(folder)
    manifest = read_manifest(where)
    state = read_state_dict(where, manifest)
    try:  # as LightningCLI builds a module from a checkpoint's hyper-parameters (nested class configs too)
        parser = ArgumentParser(exit_on_error=False)
        parser.add_subclass_arguments(LightningModule, "module", fail_untyped=False)
        cfg = parser.parse_object({"module": {"class_path": manifest["class_path"], "init_args": manifest["init_args"]}})
        module = parser.instantiate(cfg).module
    except Exception as err:  # noqa: BLE001 - jsonargparse reports a bad class or argument in many types
        raise DefaultModelError(f"default model: cannot build {manifest['class_path']} from {where / MANIFEST}'s "
                                f"init_args ({' '.join(str(err).split())[:300]}); {_FIX}") from None  # fmt: skip
    own = module.state_dict()
    cast = {k: v.to(own[k].dtype) if k in own and v.is_floating_point() else v for k, v in state.items()}
    try:
        module.load_state_dict(cast, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DefaultModelError(f"default model: {where / manifest['weights']} does not fit "
                                f"{manifest['class_path']} ({first}); {_FIX}") from None  # fmt: skip
    if hasattr(module, "_initial_weights_done"):
        module._initial_weights_done = True  # the weights are loaded: fitting on from here reads no other file
    return module.to(device).eval(), dict(manifest["affect"])


def default_checkpoint(path: str | Path, folder: str | Path | Traversable | None = None) -> Path:
    """Write the default model as a Lightning checkpoint at ``path`` (loaded and checked first, by
    :func:`load_default_model`): what ``--ckpt_path`` reads, with the ``"affect"`` entry."""
    import lightning
    import torch

    where = _folder(folder)
    manifest = read_manifest(where)
    module, entry = load_default_model("cpu", where)
    ckpt = {
        "state_dict": module.state_dict(),
        "hyper_parameters": {"_class_path": manifest["class_path"], **manifest["init_args"]},
        "affect": entry,
        "pytorch-lightning_version": lightning.__version__,
        "epoch": 0,
        "global_step": 0,
        "default_model": {"name": manifest["name"], "sha256": manifest["sha256"], "licence": manifest.get("licence")},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)
    return path


def export_default_model(
    lightning_ckpt_path: str | Path,
    out_dir: str | Path,
    name: str,
    licence: str,
    card: str = "docs/model_card.md",
    dtype: str = "float16",
) -> Path:
    """Write ``model.json`` + ``weights.pt`` into ``out_dir`` from a checkpoint of ``affect fit``
    (floating tensors stored as ``dtype``: ``float16`` halves the file); returns ``model.json``'s path.

    The checkpoint is read with ``weights_only=True``; it needs the ``hyper_parameters`` (with
    LightningCLI's ``_class_path``) and the ``"affect"`` entry that ``affect fit`` saves. The written
    folder is loaded back (:func:`load_default_model`) before returning."""
    import torch

    from affect.models.weights import read_weights

    src = str(lightning_ckpt_path)
    ckpt = read_weights(src, key="checkpoint to export")
    hparams = dict(ckpt.get("hyper_parameters") or {}) if isinstance(ckpt, dict) else {}
    if not (hparams.get("_class_path") and isinstance(ckpt.get("state_dict"), dict) and ckpt.get("affect")):
        raise DefaultModelError(f"{src}: not a checkpoint of `affect fit` (needs state_dict, hyper_parameters with "
                                "_class_path, and the 'affect' entry)")  # fmt: skip
    if dtype not in ("float16", "float32"):
        raise DefaultModelError(f"export_default_model: dtype {dtype!r}; use float16 or float32")
    class_path = hparams.pop("_class_path")
    hparams.pop("_instantiator", None)
    for key in WEIGHT_SOURCES:
        if key in hparams:
            hparams[key] = None
    target = getattr(torch, dtype)
    state = {k: (v.to(target) if v.is_floating_point() else v).contiguous() for k, v in ckpt["state_dict"].items()}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    weights = out / WEIGHTS
    torch.save(state, weights)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "name": name,
        "weights": WEIGHTS,
        "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "class_path": class_path,
        "init_args": hparams,
        "affect": ckpt["affect"],
        "licence": licence,
        "card": card,
        "source": {"checkpoint": Path(src).name, "dtype": dtype},
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    load_default_model("cpu", out)
    return out / MANIFEST
