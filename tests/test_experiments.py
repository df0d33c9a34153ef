"""Smoke test of every shipped experiment config (every YAML under ``experiments/`` but ``data/``) through the real CLI.

Each YAML is discovered by glob (a new config is tested automatically) and run in-process with
``affect.cli.main`` on tiny fixture corpora (``affect.data.fixtures.write_fixture_tree`` playing
``$AFFECT_DATA``): ``fit`` (``test`` for the zero-shot configs, on the checkpoint of a tiny
FaceBehaviorNet fit) with ``fast_dev_run``, CPU, fp32, no logger. The shipped YAML is parsed
first; a second, generated config shrinks only sizes (tiny timm backbone ``test_resnet``, small
FC / RNN widths, 32x32 images, batches of 2-4, short sequences) and points the A/V configs at a
store prepared with spectrograms from the Aff-Wild2 fixture. A config that cannot run fails.

``experiments/data/*.yaml`` are data-only blocks, tested by the corpus tests.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

import affect.cli

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "experiments"
# experiments/predict/ configs (``affect predict`` on media) are run by tests/predict/test_cli_predict.py
CONFIGS = sorted(p for p in EXPERIMENTS.rglob("*.yaml") if p.relative_to(EXPERIMENTS).parts[0] not in ("data", "predict"))
IMAGE = 32
AUDIO = 32
SEQ = 4
#: Constructor arguments that shrink a model, applied when the model class accepts them.
TINY_MODEL = {"backbone": "test_resnet", "hidden": 16, "fc_units": 16, "rnn_hidden": 8, "fusion_units": 8,
              "image_size": IMAGE, "audio_size": AUDIO, "vggface_checkpoint": None, "log_media": False}  # fmt: skip
#: Extra shrinking per class: the multi-level CNN-RNNs must name two taps of a non-VGG backbone.
TINY_EXTRA = {"CNNRNNModule": {"backbone_nodes": ["layer1", "layer4"], "low_pool_size": 2},
              "ModelLevelFusionModule": {"backbone_nodes": ["layer1", "layer4"], "low_pool_size": 2}}  # fmt: skip
#: Metrics of the package that are better when lower (everything else logged is higher-is-better).
LOWER_IS_BETTER = re.compile(r"(^|/)(loss|mse|mse_v|mse_a)$")
#: Configs that reveal a bug in a module this file does not own (strict xfail: the fix turns them
#: into failures until the entry is removed). None at present.
KNOWN_BUGS: dict[str, str] = {}
COMMAND = re.compile(r"^# affect (fit|test|validate) --config (\S+)")
#: A reported metric named in a config's header comment: ``test/<task>/<metric>``.
REPORTED = re.compile(r"\btest/(\w+)/(\w+)")


def config_id(path: Path) -> str:
    return str(path.relative_to(EXPERIMENTS))


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def header(path: Path) -> str:
    """The leading comment block of a YAML."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return "\n".join(lines)


def subcommand(path: Path) -> str:
    return COMMAND.match(path.read_text().splitlines()[0]).group(1)


def _import(class_path: str) -> type:
    module, _, name = class_path.rpartition(".")
    return getattr(__import__(module, fromlist=[name]), name)


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """Every corpus fixture under one folder (the ``$AFFECT_DATA`` of the shipped configs); Aff-Wild2
    with raw videos (audio) and enough frames for short sequences."""
    from affect.data.fixtures import write_fixture_tree

    root = tmp_path_factory.mktemp("affect_data")
    return write_fixture_tree(root, options={"affwild2": {"with_videos": True, "size": IMAGE}})


@pytest.fixture(scope="session")
def av_store(data_root, tmp_path_factory) -> Path:
    """An ``affect prepare`` store of the Aff-Wild2 fixture with one spectrogram image per frame.

    The corpus manifest lists the ``cropped_aligned`` jpgs; the spectrograms come from the raw
    video of each row (the parser's ``audio_path`` / ``audio_frame``). Faces are taken as already cropped.
    """
    from affect.data.corpora.affwild2 import make_affwild2_manifest
    from affect.data.store import open_store
    from affect.prepare import PrepareOptions, prepare_store

    root = data_root / "Aff-Wild2"
    manifest, _ = make_affwild2_manifest(root)  # with videos/ present it fills audio_path / audio_frame
    out = tmp_path_factory.mktemp("stores") / "Aff-Wild2-av"
    opts = PrepareOptions(image_size=IMAGE, detect="never", audio=True, audio_height=AUDIO, audio_width=AUDIO)
    report = prepare_store(manifest, root, out, options=opts, progress=False)
    assert report["usable_rows"] == len(manifest) and not report.get("audio_unreadable")
    assert not report.get("audio_no_source") and not report.get("audio_frame_out_of_range")
    audio = open_store(out).audio
    assert audio is not None and audio[np.arange(len(audio))].max() > 0, "the store's spectrograms are silent"
    return out


@pytest.fixture
def env(data_root, tmp_path, monkeypatch) -> Path:
    """``AFFECT_DATA`` -> the fixture tree; cwd -> a fresh tmp dir (relative ``runs/...`` paths land there)."""
    monkeypatch.setenv("AFFECT_DATA", str(data_root))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def fbn_checkpoint(data_root, tmp_path_factory) -> Path:
    """A tiny FaceBehaviorNet trained for one step by the shipped ``fbn_no_coupling.yaml`` (its
    ModelCheckpoint's ``last.ckpt``): the input of the zero-shot / fine-tuning configs."""
    work = tmp_path_factory.mktemp("fbn_ckpt")
    mp = pytest.MonkeyPatch()
    try:
        mp.setenv("AFFECT_DATA", str(data_root))
        mp.chdir(work)
        cfg = EXPERIMENTS / "table6" / "fbn_no_coupling.yaml"
        run_cli("fit", cfg, work, shrink_config(load(cfg), work, None, None),
                ["--trainer.max_steps", "1", "--trainer.limit_val_batches", "1", "--trainer.num_sanity_val_steps", "0",
             "--trainer.logger", "false"])  # fmt: skip
    finally:
        mp.undo()
    (ckpt,) = work.rglob("last.ckpt")
    return ckpt


# --------------------------------------------------------------------------- shrinking
def shrink_model(model: dict, ckpt: Path | None) -> dict:
    cls = _import(model["class_path"])
    params = inspect.signature(cls.__init__).parameters
    args = {k: v for k, v in TINY_MODEL.items() if k in params}
    args.update(TINY_EXTRA.get(cls.__name__, {}))
    if "checkpoint" in params:  # ZeroShotCompound: eq. 10 on a trained FaceBehaviorNet
        args["checkpoint"] = str(ckpt)
    if "init_checkpoint" in params and cls.__name__ == "CompoundFineTune":
        args["init_checkpoint"] = str(ckpt)
    return {"class_path": model["class_path"], "init_args": args}


def shrink_corpus(dm: dict, store: Path | None, batch: int) -> dict:
    init = dict(dm.get("init_args") or {})
    args = {"image_size": IMAGE, "num_workers": 0, "batch_size": batch}
    if init.get("sequence_length"):
        args["sequence_length"] = SEQ
    if init.get("store"):
        if store is None:
            raise AssertionError(f"{dm['class_path']} reads a prepared store: the test needs av_store")
        args["store"] = str(store)
    return {"class_path": dm["class_path"], "init_args": {**init, **args}}


def shrink_data(data: dict, store: Path | None) -> dict:
    init = data.get("init_args") or {}
    if data["class_path"].endswith("MultiDomainDataModule"):
        out = {d: [shrink_corpus(m, store, 2) for m in init[d]] for d in ("va", "au", "expr") if init.get(d)}
        out.update(batch_sizes="fixed", va_batch_size=4, au_batch_size=4, expr_batch_size=4, num_workers=0)
        return {"class_path": data["class_path"], "init_args": out}
    return shrink_corpus(data, store, 2)


def shrink_config(cfg: dict, tmp: Path, ckpt: Path | None, store: Path | None) -> dict:
    """The overriding config: the same keys as the shipped one, only sizes (and fixture paths) changed."""
    out = {"model": shrink_model(cfg["model"], ckpt), "data": shrink_data(cfg["data"], store)}
    # the ModelCheckpoint of the fbn_checkpoint fixture writes into tmp (cwd is tmp as well)
    callbacks = (cfg.get("trainer") or {}).get("callbacks") or []
    out["trainer"] = {"callbacks": [
        {**cb, "init_args": {**cb.get("init_args", {}), "dirpath": str(tmp / "checkpoints")}}
        if cb["class_path"].endswith("ModelCheckpoint") else cb for cb in callbacks
    ]}  # fmt: skip
    return out


class _Recorder:
    """Keeps the LightningCLI instance that :func:`affect.cli.main` creates."""

    last = None


def _recording_cli():
    from lightning.pytorch.cli import LightningCLI

    class RecordingCLI(LightningCLI):
        def __init__(self, *args, **kwargs):
            _Recorder.last = self
            super().__init__(*args, **kwargs)

    return RecordingCLI


def run_cli(command: str, cfg_path: Path, tmp: Path, overrides: dict, extra: list[str]):
    """``affect <command> --config <shipped> --config <overrides> ...`` in-process; returns the CLI."""
    over = tmp / "overrides.yaml"
    over.write_text(yaml.safe_dump(overrides, sort_keys=False))
    argv = [command, "--config", str(cfg_path), "--config", str(over),
            "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.precision", "32",
            "--trainer.default_root_dir", str(tmp / "run"), "--trainer.enable_progress_bar", "false",
            "--trainer.enable_model_summary", "false", *extra]  # fmt: skip
    mp = pytest.MonkeyPatch()
    mp.setattr(affect.cli, "LightningCLI", _recording_cli())
    try:
        affect.cli.main(argv)
    except SystemExit as e:  # jsonargparse reports parse errors by exiting
        raise AssertionError(f"affect {' '.join(argv)} exited with {e.code} (see the captured stderr)") from e
    finally:
        mp.undo()
    return _Recorder.last


def needs(cfg: dict) -> tuple[bool, bool]:
    """(needs the FaceBehaviorNet checkpoint, needs the A/V store)."""
    model_cls = cfg["model"]["class_path"].rsplit(".", 1)[-1]
    init = cfg["data"].get("init_args") or {}
    corpora = [m for d in ("va", "au", "expr") for m in init.get(d) or []] or [cfg["data"]]
    return model_cls in ("ZeroShotCompound", "CompoundFineTune"), any(
        (m.get("init_args") or {}).get("store") for m in corpora
    )


# --------------------------------------------------------------------------- tests
def test_configs_are_found():
    tables = {p.parent.name for p in CONFIGS}
    assert {"table2", "table3", "table4", "table6"} <= tables
    assert len(CONFIGS) >= 22


@pytest.mark.parametrize("path", CONFIGS, ids=config_id)
def test_first_line_is_the_command(path):
    first = path.read_text().splitlines()[0]
    m = COMMAND.match(first)
    assert m, (
        f"{path}: the first line must be '# affect <fit|test> --config {path.relative_to(REPO)} ...', found {first!r}"
    )
    assert m.group(2) == str(path.relative_to(REPO))


@pytest.mark.parametrize("path", CONFIGS, ids=config_id)
def test_checkpoint_mode_follows_the_metric(path):
    cfg = load(path)
    for cb in (cfg.get("trainer") or {}).get("callbacks") or []:
        if cb["class_path"].endswith("ModelCheckpoint"):
            monitor = cb["init_args"]["monitor"]
            want = "min" if LOWER_IS_BETTER.search(monitor) else "max"
            assert cb["init_args"]["mode"] == want, f"{path}: {monitor} wants mode {want}"
            assert monitor.startswith("val/")


def _run_params():
    for p in CONFIGS:
        reason = KNOWN_BUGS.get(config_id(p))
        marks = [pytest.mark.xfail(strict=True, raises=ValueError, reason=reason)] if reason else []
        yield pytest.param(p, id=config_id(p), marks=marks)


@pytest.mark.filterwarnings("ignore:LightningCLI's args parameter")
@pytest.mark.parametrize("path", _run_params())
def test_config_runs(path, env, request):
    cfg = load(path)
    need_ckpt, need_store = needs(cfg)
    ckpt = request.getfixturevalue("fbn_checkpoint") if need_ckpt else None
    store = request.getfixturevalue("av_store") if need_store else None
    command = subcommand(path)
    extra = ["--trainer.fast_dev_run", "true", "--trainer.logger", "false"]
    cli = run_cli(command, path, env, shrink_config(cfg, env, ckpt, store), extra)
    trainer = cli.trainer
    assert trainer.state.finished, trainer.state
    metrics = trainer.callback_metrics
    assert metrics, f"{path}: nothing was logged"
    # the metric names the header promises for the table ("Reports: test/va/ccc_v, ...") are logged
    stage = "val" if command == "fit" else "test"
    promised = {f"{stage}/{task}/{name}" for task, name in REPORTED.findall(header(path))}
    missing = sorted(promised - set(metrics))
    assert not missing, (
        f"{path}: header names metrics that are not logged: {missing}; logged: {sorted(metrics)}"
    )
    if command == "fit":
        monitors = [cb.monitor for cb in trainer.checkpoint_callbacks if getattr(cb, "monitor", None)]
        for monitor in monitors:  # fast_dev_run skips checkpointing: check the name here instead
            assert monitor in metrics, (
                f"{path}: ModelCheckpoint monitors {monitor!r}, logged: {sorted(metrics)}"
            )


@pytest.mark.filterwarnings("ignore:LightningCLI's args parameter")
def test_wandb_offline_run(env):
    """One config with its own WandbLogger, offline: the run folder appears under save_dir (one real
    step, not fast_dev_run, which swaps every logger for a dummy)."""
    path = EXPERIMENTS / "table6" / "single_task_expr.yaml"
    cfg = load(path)
    save = env / "wandb_runs"
    import wandb

    try:
        cli = run_cli("fit", path, env, shrink_config(cfg, env, None, None),
                      ["--trainer.max_steps", "1", "--trainer.limit_val_batches", "1", "--trainer.num_sanity_val_steps", "0",
                       "--trainer.logger.init_args.save_dir", str(save)])  # fmt: skip
        assert cli.trainer.logger.experiment.name == "table6-single_task_expr"
    finally:
        wandb.finish()  # an unfinished run would be reused by the next WandbLogger of this process
    runs = list((save / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, f"no offline W&B run under {save}: {list(save.rglob('*'))[:10]}"
    assert list(runs[0].glob("run-*.wandb")), f"{runs[0]} holds no run log"
