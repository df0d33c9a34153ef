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
import pkgutil
import sys
from collections.abc import Sequence
from pathlib import Path

from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from affect.configs import resolve_config_args
from affect.errors import CKPT_ALIASES, ConfigError, check_checkpoint_file, find_affect_error

__all__ = ["AffectCLI", "build_cli", "main"]

DESCRIPTION = (
    "affect: facial affect analysis in-the-wild (Kollias & Zafeiriou). Subcommands: fit | validate | test | "
    "predict (LightningCLI; short form: affect predict INPUT... [-o OUT] [--ckpt CKPT], see affect predict "
    "INPUT --help), prepare (face crops into the prepared store), relatedness (estimate the emotion-AU "
    "relatedness table), demo (the main job on procedural corpora). --config takes a file or a shipped "
    "config's name (table6/fbn_du2014)."
)
#: Subcommands dispatched before LightningCLI: name -> (module, help).
EXTRA_COMMANDS: dict[str, tuple[str, str]] = {
    "prepare": ("affect.prepare", "Detect, align and store face crops (+ audio) of a corpus for fast loading."),
    "relatedness": ("affect.relatedness.estimate", "Estimate p(AU | emotion) (Table V) from a corpus's labels."),
    "upgrade-checkpoint": ("affect.models.compat", "Convert a checkpoint written by an earlier affect."),
    "postprocess": ("affect.postprocess", "Fuse (eq. 3) and median-filter the valence-arousal of predictions.csv files."),
    "demo": ("affect.demo", "FaceBehaviorNet on procedural corpora, from nothing: train, evaluate, predict."),
}
#: Packages whose LightningModules / LightningDataModules are registered as known subclasses.
REGISTERED_PACKAGES: tuple[str, ...] = ("affect.models", "affect.data")


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


def _check_ckpt_path(args: list[str]) -> None:
    """A ``--ckpt_path`` that is not a torch checkpoint fails here, naming the file (not deep in torch.load)."""
    for i, a in enumerate(args):
        value = args[i + 1] if a == "--ckpt_path" and i + 1 < len(args) else a.partition("=")[2] \
            if a.startswith("--ckpt_path=") else None
        if value and value not in CKPT_ALIASES and value.lower() not in ("null", "none"):
            check_checkpoint_file(value, what="--ckpt_path")


def register_classes() -> None:
    """Import every module of the model and data packages, so that jsonargparse knows their
    LightningModule / LightningDataModule subclasses (``--help`` lists them; short names resolve)."""
    for package_name in REGISTERED_PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.walk_packages(package.__path__, f"{package_name}."):
            leaf = info.name.rsplit(".", 1)[-1]
            if leaf.startswith("_") or "fixtures" in info.name or "synthetic" in info.name:
                continue
            importlib.import_module(info.name)


def data_image_size(datamodule: LightningDataModule) -> int:
    """The image side a datamodule delivers (its ``image_size``): the model is built for it."""
    size = getattr(datamodule, "image_size", None)
    if not isinstance(size, int):
        raise TypeError(
            f"{type(datamodule).__name__} has no integer attribute image_size: a datamodule used with affect's "
            "models must say which image side it delivers (the model's image_size is linked to it)"
        )
    return size


#: Model options that change only how a trained network is evaluated: given on the command line,
#: they win over the checkpoint's hyper-parameters (``--ckpt_path``).
EVALUATION_OPTIONS = ("test_time_flip", "au_threshold")


class AffectCLI(LightningCLI):
    """LightningCLI with the package's argument links, run callbacks and end-of-run summary."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        from affect.models.callbacks import EvaluationFigures, SequenceMedianEvaluation

        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.filename": "best", "checkpoint.save_last": True})
        parser.add_lightning_class_args(EvaluationFigures, "figures")
        parser.add_lightning_class_args(SequenceMedianEvaluation, "sequence_medians")
        parser.link_arguments("data", "model.init_args.image_size", compute_fn=data_image_size, apply_on="instantiate")

    def parse_arguments(self, parser, args) -> None:
        """As LightningCLI's; the arguments are kept for :meth:`_parse_ckpt_path`."""
        self._argv = list(sys.argv[1:]) if args is None else list(args) if isinstance(args, (list, tuple)) else []
        super().parse_arguments(parser, args)

    def _parse_ckpt_path(self) -> None:
        """With ``--ckpt_path``: stop with one line on a checkpoint of the earlier format (see
        :mod:`affect.models.compat`), and take the image size from the checkpoint (into the data).

        LightningCLI gives the checkpoint's hyper-parameters priority over the command line; the
        evaluation-only model options (:data:`EVALUATION_OPTIONS`) named on the command line win, so
        ``affect test --ckpt_path X --model.init_args.test_time_flip false`` does what it says."""
        from affect.models.compat import needs_upgrade, old_checkpoint_message
        from affect.models.weights import read_weights

        sub = self.config.get("subcommand")
        path = self.config[sub].get("ckpt_path") if sub else None
        if not (path and Path(path).is_file()):
            return super()._parse_ckpt_path()
        ckpt = read_weights(path, key="--ckpt_path")
        hparams = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
        if isinstance(hparams, dict) and needs_upgrade(hparams):
            self.parser.error(old_checkpoint_message(path))
        model = self.config[sub].get("model")
        given = {}
        if model is not None and model.get("init_args") is not None:
            named = [a.split("=")[0] for a in getattr(self, "_argv", []) if a.startswith("--model.")]
            given = {k: model["init_args"][k] for k in EVALUATION_OPTIONS
                     if k in model["init_args"] and any(n.endswith(f".{k}") for n in named)}  # fmt: skip
        super()._parse_ckpt_path()
        for key, value in given.items():
            self.config[sub]["model"]["init_args"][key] = value
        # the network in the checkpoint was built for its image size: the data delivers that size
        size = (ckpt.get("affect") or {}).get("image_size") if isinstance(ckpt, dict) else None
        data = self.config[sub].get("data")
        init = data.get("init_args") if data is not None else None
        if size and init is not None and "image_size" in init:
            init["image_size"] = int(size)

    def _instantiate_trainer(self, config: dict, callbacks: list) -> Trainer:
        """``--trainer.enable_checkpointing false`` drops the ``checkpoint`` callback instead of failing."""
        if config.get("enable_checkpointing") is False:
            callbacks = [cb for cb in callbacks if not isinstance(cb, ModelCheckpoint)]
        return super()._instantiate_trainer(config, callbacks)

    def before_predict(self) -> None:
        """Refuse ``predict`` without ``--ckpt_path``: the config's model would be an untrained network,
        unless the module is built trained (``predicts_without_checkpoint``, e.g. zero-shot compound)."""
        if self.config[self.subcommand].get("ckpt_path") or getattr(self.model, "predicts_without_checkpoint", False):
            return
        raise ConfigError(
            f"affect predict without --ckpt_path would run an untrained {type(self.model).__name__} (the config's "
            "placeholder); pass --ckpt_path <run>/checkpoints/best.ckpt, or use the short form "
            "`affect predict INPUT... [-o OUT]` for the model that ships with affect"
        )

    def _print_summary(self) -> None:
        from affect.tracking import run_summary

        print(run_summary(self.trainer), file=sys.stderr)

    def after_fit(self) -> None:
        self._print_summary()

    def after_validate(self) -> None:
        self._print_summary()

    def after_test(self) -> None:
        self._print_summary()


def _help_epilog() -> str:
    lines = ["extra subcommands (not LightningCLI):"]
    lines += [f"  affect {name:<12} {help_}  (affect {name} --help)" for name, (_, help_) in EXTRA_COMMANDS.items()]
    return "\n".join(lines)


def build_cli(args: Sequence[str] | None = None, overwrite: bool = False) -> LightningCLI:
    """The ``AffectCLI`` behind ``affect fit | validate | test | predict``; runs ``args``.

    Returned so that Python callers (``affect.demo``) can read ``cli.trainer`` after the run.
    ``--config`` values may be shipped configs' names (:func:`affect.configs.resolve_config_args`).
    ``overwrite``: the run may replace the ``config.yaml`` an earlier run saved in its folder.
    """
    register_classes()
    return AffectCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": overwrite},
        parser_kwargs={"prog": "affect", "description": DESCRIPTION, "epilog": _help_epilog()},
        args=None if args is None else resolve_config_args(list(args)),
    )
