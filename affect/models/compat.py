"""Checkpoints written before the module recomposition, and ``affect upgrade-checkpoint`` to convert them.

Until the modules took their loss as a part, a checkpoint's ``hyper_parameters`` carried the loss
options (``relatedness``, ``co_annotation``, ``distribution_matching``, ...) and evaluation switches
(``log_media``, ``media_samples``, ``median_eval``, ``vggface_checkpoint``) as module arguments, which
the modules no longer accept. Such a checkpoint is recognised by those keys;
``affect test --ckpt_path`` then stops with one line naming this command, and
:func:`upgrade_checkpoint` rewrites it: the loss options become ``loss: {class_path:
affect.losses.MultiTaskLoss, init_args: {...}}``, the evaluation switches are dropped (median
evaluation and figures are callbacks now), the weights are kept as they are.

>>> old = {"tasks": ["va", "expr", "au"], "au_set": [1, 2], "relatedness": "du2014", "co_annotation": True,
...        "log_media": False, "backbone": "vgg16"}
>>> new = upgrade_hyperparameters(old)
>>> new["loss"]["init_args"]["co_annotation"], "log_media" in new, new["backbone"]
(True, False, 'vgg16')
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from affect.models.weights import read_weights

__all__ = ["LEGACY_KEYS", "LOSS_KEYS", "main", "needs_upgrade", "upgrade_checkpoint", "upgrade_hyperparameters"]

#: Loss options that were module arguments.
LOSS_KEYS: tuple[str, ...] = ("lambda_au", "lambda_va", "relatedness", "co_annotation", "distribution_matching",
                              "soft_co_annotation", "lambda_dm", "lambda_soft", "reweight")  # fmt: skip
#: Module arguments that became callbacks or the one weight-loading path (dropped on upgrade).
LEGACY_KEYS: tuple[str, ...] = ("log_media", "media_samples", "median_eval", "vggface_checkpoint")
#: Defaults of the loss options: a checkpoint that kept them all needs no ``loss`` entry.
_LOSS_DEFAULTS = {"lambda_au": 1.0, "lambda_va": 1.0, "relatedness": "du2014", "co_annotation": False,
                  "distribution_matching": False, "soft_co_annotation": False, "lambda_dm": 1.0,
                  "lambda_soft": 1.0, "reweight": True}  # fmt: skip


def needs_upgrade(hparams: Mapping) -> bool:
    """Whether checkpoint hyper-parameters are of the pre-recomposition format. (``log_media`` alone is no
    sign of it: the compound modules, ``ZeroShotCompound`` / ``CompoundFineTune``, still take it.)

    >>> needs_upgrade({"log_media": True, "media_samples": 5000}), needs_upgrade({"log_media": False, "lr": 1e-4})
    (True, False)
    """
    return any(k in hparams for k in (*LOSS_KEYS, *LEGACY_KEYS) if k != "log_media")


def upgrade_hyperparameters(hparams: Mapping) -> dict:
    """Old hyper-parameters -> new ones (see the module docstring)."""
    out = {k: v for k, v in hparams.items() if k not in LOSS_KEYS and k not in LEGACY_KEYS}
    loss = {k: hparams[k] for k in LOSS_KEYS if k in hparams and hparams[k] != _LOSS_DEFAULTS[k]}
    coupled = any(loss.get(k) for k in ("co_annotation", "distribution_matching", "soft_co_annotation"))
    if loss:
        loss["relatedness"] = hparams.get("relatedness", "du2014") if coupled else None
        if "au_set" in hparams:
            loss["au_set"] = list(hparams["au_set"])
        out["loss"] = {"class_path": "affect.losses.MultiTaskLoss", "init_args": loss}
    return out


def upgrade_checkpoint(src: str | Path, dst: str | Path, *, trusted: bool = False) -> dict:
    """Rewrite an old checkpoint ``src`` as ``dst`` (new format); returns the new hyper-parameters."""
    ckpt = read_weights(src, trusted=trusted, key="checkpoint")
    if not isinstance(ckpt, Mapping) or not isinstance(ckpt.get("hyper_parameters"), Mapping):
        raise ValueError(f"{src}: not a Lightning checkpoint with hyper_parameters")
    ckpt = dict(ckpt)
    ckpt["hyper_parameters"] = upgrade_hyperparameters(ckpt["hyper_parameters"])
    ckpt["affect"] = {**(ckpt.get("affect") or {}), "format": 2}
    if Path(dst).exists():
        raise FileExistsError(f"{dst} exists; choose a new file name")
    torch.save(ckpt, dst)
    return ckpt["hyper_parameters"]


def old_checkpoint_message(path: str | Path) -> str:
    return (
        f"{path} was written by an earlier affect (loss options as module arguments); convert it once with "
        f"`affect upgrade-checkpoint {path} <new.ckpt>` and use the new file"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``affect upgrade-checkpoint OLD NEW``."""
    parser = argparse.ArgumentParser(prog="affect upgrade-checkpoint",
                                     description="Convert a checkpoint written before the module recomposition.")  # fmt: skip
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    args = parser.parse_args(argv)
    hparams = upgrade_checkpoint(args.old, args.new)
    print(f"wrote {args.new}: loss {hparams.get('loss', 'default (eq. 7, no coupling)')}")
    return 0
