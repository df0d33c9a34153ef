"""The LightningCLI of ``affect`` (``fit | validate | test | predict``): :class:`AffectCLI` and :func:`build_cli`.

The ``affect`` command (:mod:`affect.cli`) dispatches to it after the extra subcommands and the short
``affect predict`` form; Python callers (``affect.predict.run_predict``, the demo, benchmarks) build it
with :func:`build_cli`. See :mod:`affect.cli` for the command line as a whole.
"""


from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from affect.configs import resolve_config_args
from affect.errors import CKPT_ALIASES, ConfigError, check_checkpoint_file

__all__ = ["DESCRIPTION", "EXTRA_COMMANDS", "AffectCLI", "build_cli"]

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


def read_checkpoint_once(path: str | None, subcommand: str | None):
    """The checked record of ``--ckpt_path`` (:func:`affect.models.checkpoint.read_checkpoint`), or
    ``None`` for none or one of Lightning's aliases (``best``, ``last``). ``predict`` needs the
    checkpoint's ``affect`` entry (label spaces, image size); the other subcommands accept a checkpoint
    of any LightningModule that ``affect fit`` trained."""
    from affect.models.checkpoint import read_checkpoint

    if not path or str(path) in CKPT_ALIASES or "://" in str(path):  # Lightning's aliases, remote files
        return None
    return read_checkpoint(path, key="--ckpt_path", require_affect=subcommand == "predict")


def apply_checkpoint(parser, config, subcommand: str, record, argv: Sequence[str]):
    """``config`` with the checkpoint's model class and hyper-parameters (as LightningCLI does: they
    win over the command line, except the evaluation-only options named on it,
    :data:`EVALUATION_OPTIONS`, so that ``affect test --ckpt_path X --model.init_args.test_time_flip
    false`` does what it says) and with the checkpoint's image size in the data: the network was built
    for it."""
    model = config[subcommand].get("model")
    given = {}
    if model is not None and model.get("init_args") is not None:
        named = [a.split("=")[0] for a in argv if a.startswith("--model.")]
        given = {k: model["init_args"][k] for k in EVALUATION_OPTIONS
                 if k in model["init_args"] and any(n.endswith(f".{k}") for n in named)}  # fmt: skip
    hparams = dict(record.hyper_parameters)
    hparams.pop("_instantiator", None)
    if hparams:
        if "_class_path" in hparams:
            hparams = {"class_path": hparams.pop("_class_path"), "dict_kwargs": hparams}
        config = _parse_checkpoint_hparams(parser, config, subcommand, hparams, record)
    for key, value in given.items():
        config[subcommand]["model"]["init_args"][key] = value
    data = config[subcommand].get("data")
    init = data.get("init_args") if data is not None else None
    if record.image_size is not None and init is not None and "image_size" in init:
        init["image_size"] = record.image_size
    return config


def _parse_checkpoint_hparams(parser, config, subcommand: str, hparams: dict, record):
    """The checkpoint's model settings parsed into ``config``; settings that do not fit any class
    (another project's model, a class that is gone) are one :class:`CheckpointError` line, not
    jsonargparse's dump of every candidate class."""
    from jsonargparse import ArgumentError

    from affect.errors import CheckpointError

    parsers = [parser, *getattr(getattr(parser, "_subcommands_action", None), "_name_parser_map", {}).values()]
    saved = [p.exit_on_error for p in parsers]
    for p in parsers:
        p.exit_on_error = False
    try:
        return parser.parse_object({subcommand: {"model": hparams}}, config)
    except ArgumentError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        first = next((i for i, line in enumerate(lines) if line.startswith("- ")), None)
        reason = " ".join(lines[first : first + 2] if first is not None else lines).lstrip("- ")[:200]
        raise CheckpointError(
            f"--ckpt_path {record.path}: its model settings (hyper_parameters, class "
            f"{record.class_path or 'not named'}) do not fit any LightningModule affect knows ({reason}); "
            "pass a checkpoint that `affect fit` wrote"
        ) from None
    finally:
        for p, value in zip(parsers, saved, strict=True):
            p.exit_on_error = value


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

    #: the checked ``--ckpt_path`` (:mod:`affect.models.checkpoint`), read once; ``None`` without one
    checkpoint = None

    def _parse_ckpt_path(self) -> None:
        """With ``--ckpt_path``: read and check the checkpoint once (:func:`read_checkpoint_once`), take
        the model's class and settings from it and the image size into the data
        (:func:`apply_checkpoint`). Runs before any class is built, so a bad file stops the run here."""
        sub = self.config.get("subcommand")
        record = read_checkpoint_once(self.config[sub].get("ckpt_path") if sub else None, sub)
        if record is not None:
            self.config = apply_checkpoint(self.parser, self.config, sub, record, getattr(self, "_argv", []))
            # predict loads the weights from the record; the other subcommands let Lightning restore
            # the whole state (optimizer, loops), so the record keeps no tensors for them
            self.checkpoint = record if sub == "predict" else dataclasses.replace(record, checkpoint={})

    def predict(self, model: LightningModule, ckpt_path: str | None = None, **kwargs):
        """``trainer.predict`` with the weights of the checkpoint read once (:attr:`checkpoint`) loaded
        before Lightning sets anything up; the datamodule gets the checkpoint's record too
        (``use_checkpoint``), so that nothing opens the file again."""
        record = self.checkpoint
        if record is not None:
            record.load_into(model)
            ckpt_path = None
            datamodule = kwargs.get("datamodule")
            if callable(getattr(datamodule, "use_checkpoint", None)):
                datamodule.use_checkpoint(record)
        return self.trainer.predict(model, ckpt_path=ckpt_path, **kwargs)

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


def build_cli(args: Sequence[str] | None = None) -> LightningCLI:
    """The ``AffectCLI`` behind ``affect fit | validate | test | predict``; runs ``args``.

    Returned so that Python callers (``affect.demo``) can read ``cli.trainer`` after the run.
    ``--config`` values may be shipped configs' names (:func:`affect.configs.resolve_config_args`).
    A predict run replaces an earlier run's ``config.yaml`` with the writer's ``overwrite``
    (:meth:`affect.predict.writer.MediaPredictionWriter.prepare_folder`).
    """
    register_classes()
    return AffectCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        parser_kwargs={"prog": "affect", "description": DESCRIPTION, "epilog": _help_epilog()},
        args=None if args is None else resolve_config_args(list(args)),
    )
