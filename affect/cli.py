"""The ``affect`` command: one plain ``LightningCLI`` (``fit | validate | test | predict``) plus two
extra subcommands dispatched before it.

- ``affect fit --config experiments/<run>.yaml`` (configs compose left to right:
  ``--config base.yaml --config run.yaml``; any value can be overridden,
  ``--trainer.max_epochs 3``). ``model`` and ``data`` take any ``LightningModule`` /
  ``LightningDataModule`` by full class path (``class_path: affect.models.mt_vgg.MTVGGModule``).
- ``affect prepare ...`` -> :func:`affect.prepare.main` (face crops into the prepared store).
- ``affect relatedness ...`` -> :func:`affect.relatedness.estimate.main` (Table V from data).

Runs and logging: every run needs its own directory, ``--trainer.default_root_dir runs/<name>``
(LightningCLI saves the resolved ``config.yaml`` into the run's log directory and, with
``overwrite: False``, refuses to overwrite one from an earlier run). With no logger configured,
Lightning logs to a ``CSVLogger`` under that directory (``lightning_logs/version_N/metrics.csv``,
media PNGs in ``media/``). For Weights & Biases put a logger in the YAML (``WANDB_MODE=offline``
works without network)::

    trainer:
      logger:
        class_path: lightning.pytorch.loggers.WandbLogger
        init_args: {project: affect, save_dir: runs/fbn}

Multi-GPU: ``--trainer.strategy ddp --trainer.devices N``. DDP starts the other processes by
re-running the same command line (``sys.argv``), so launch through the ``affect`` entry point or
``python -m affect``, not through :func:`main` called with a different ``argv``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningCLI

from affect.errors import CKPT_ALIASES, check_checkpoint_file, find_affect_error

__all__ = ["build_cli", "main"]

DESCRIPTION = (
    "affect: facial affect analysis in-the-wild (Kollias & Zafeiriou). LightningCLI subcommands "
    "fit | validate | test | predict, plus `affect prepare ...` (face crops into the prepared store) and "
    "`affect relatedness ...` (estimate the emotion-AU relatedness table)."
)


DEBUG_ENV = "AFFECT_DEBUG"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``affect`` console script and of ``python -m affect``.

    A mistake in the user's input (an :class:`affect.errors.AffectError`, also when jsonargparse or
    Lightning wrapped it) ends in one line on stderr, ``affect: error: <what, where, the fix>``, and
    exit status 2; ``--debug`` (anywhere on the line) or ``AFFECT_DEBUG=1`` shows the full traceback.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    if "--debug" in args:
        args = [a for a in args if a != "--debug"]
        os.environ[DEBUG_ENV] = "1"  # DDP re-runs sys.argv: its processes inherit the setting
        if argv is None:
            sys.argv = [sys.argv[0], *args]
    try:
        return _dispatch(args, None if argv is None else args)
    except Exception as exc:
        err = find_affect_error(exc)
        if err is None or debug:
            raise
        print(f"affect: error: {' '.join(str(err).split())}  (--debug shows the traceback)", file=sys.stderr)
        return 2


def _dispatch(args: list[str], argv: list[str] | None) -> int:
    if args and args[0] == "prepare":
        from affect.prepare import main as prepare_main

        return prepare_main(args[1:]) or 0
    if args and args[0] == "relatedness":
        from affect.relatedness.estimate import main as relatedness_main

        return relatedness_main(args[1:]) or 0
    _check_ckpt_path(args)
    build_cli(argv)  # None: LightningCLI reads sys.argv itself
    return 0


def _check_ckpt_path(args: list[str]) -> None:
    """A ``--ckpt_path`` that is not a torch checkpoint fails here, naming the file (not deep in torch.load)."""
    for i, a in enumerate(args):
        value = args[i + 1] if a == "--ckpt_path" and i + 1 < len(args) else a.partition("=")[2] \
            if a.startswith("--ckpt_path=") else None
        if value and value not in CKPT_ALIASES and value.lower() not in ("null", "none"):
            check_checkpoint_file(value, what="--ckpt_path")


def build_cli(args: Sequence[str] | None = None) -> LightningCLI:
    """The one ``LightningCLI`` behind ``affect fit | validate | test | predict``; runs ``args``.

    Returned so that Python callers (``affect.demo``) can read ``cli.trainer`` after the run.
    """
    return LightningCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": False},
        parser_kwargs={"prog": "affect", "description": DESCRIPTION},
        args=None if args is None else list(args),
    )
