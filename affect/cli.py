"""The ``affect`` command: LightningCLI (``fit | validate | test | predict``) plus the extra
subcommands of :data:`EXTRA_COMMANDS` (``prepare``, ``relatedness``, ``upgrade-checkpoint``, ``demo``),
listed by ``affect --help``.

- ``affect fit --config experiments/model/<m>.yaml --config experiments/data/<d>.yaml
  --config experiments/trainer/gpu.yaml --config experiments/<table>/<row>.yaml``: configs compose
  left to right; each table row's YAML starts with its exact command. Any value can be overridden
  (``--trainer.max_epochs 3``). ``model`` / ``data`` take any ``LightningModule`` /
  ``LightningDataModule`` by class path or by short name (``--model FaceBehaviorNetModule``): the
  package's models and datamodules are imported first, so ``affect fit --help`` lists them.
- ``image_size`` is stated once, on the data side, and linked into the model
  (``data.image_size`` -> ``model.init_args.image_size``).
- ``--ckpt_path``: read and checked once (:mod:`affect.models.checkpoint`, one line on a bad file)
  before any class is built; the model's class and settings and the data's image size come from it,
  and ``predict`` loads its weights from that one read (docs/checkpoints.md).
- ``checkpoint`` configures the run's :class:`~lightning.pytorch.callbacks.ModelCheckpoint`
  (``monitor``, ``mode``, ``dirpath``); ``figures`` the
  :class:`~affect.models.callbacks.EvaluationFigures` callback; the
  :class:`~affect.models.callbacks.SequenceMedianEvaluation` callback is always on (it acts on
  sequence outputs only: ``{stage}/va_median/*``).
- At the end of ``fit`` / ``validate`` / ``test`` a short table prints the best / final metrics and
  where the checkpoint, logs and W&B run are.
- ``affect prepare ...`` -> :func:`affect.prepare.main`; ``affect relatedness ...`` ->
  :func:`affect.relatedness.estimate.main`; ``affect demo ...`` -> :func:`affect.demo.main`.
- ``--config`` takes a file or the name of a shipped config (``table6/fbn_du2014``, ``.yaml``
  optional; :mod:`affect.configs`), so the commands work from any folder with an installed affect.
- ``affect predict INPUT... [-o OUT] [--ckpt CKPT]`` is the short form (:mod:`affect.predict.command`,
  the default model without ``--ckpt``); ``affect predict --config ... --ckpt_path ...`` is LightningCLI's,
  which refuses to predict without ``--ckpt_path`` (that would be an untrained network).

Runs and logging: every run needs its own directory, ``--trainer.default_root_dir runs/<name>``
(LightningCLI refuses to overwrite a saved ``config.yaml``). Multi-GPU: ``--trainer.strategy ddp
--trainer.devices N``; DDP re-runs the command line (``sys.argv``), so launch through the ``affect``
entry point or ``python -m affect``.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence

from affect.configs import resolve_config_args
from affect.errors import find_affect_error
from affect.lightning_cli import EXTRA_COMMANDS, AffectCLI, _check_ckpt_path, build_cli

__all__ = ["AffectCLI", "build_cli", "main"]


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
    if args and args[0] in EXTRA_COMMANDS:
        module = importlib.import_module(EXTRA_COMMANDS[args[0]][0])
        return module.main(args[1:]) or 0
    if args and args[0] == "predict":
        from affect.predict.command import is_short_form
        from affect.predict.command import main as short_predict

        if is_short_form(args[1:]):
            return short_predict(args[1:])
    resolved = resolve_config_args(args)
    if argv is None and resolved != args:
        sys.argv = [sys.argv[0], *resolved]  # DDP re-runs sys.argv: its processes get the resolved paths
    _check_ckpt_path(resolved)
    build_cli(None if argv is None else resolved)  # None: LightningCLI reads sys.argv itself
    return 0


