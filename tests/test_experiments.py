"""Smoke test of every shipped experiment through the real CLI, with the exact command its YAML starts with.

A run config (every YAML under ``experiments/`` outside the ``model/``, ``data/`` and ``trainer/``
pieces) begins with ``# affect <fit|test> --config piece.yaml ... --config <itself> [--key value ...]``.
The test runs that command in-process (``affect.cli.main``) on tiny fixture corpora
(``affect.data.fixtures.write_fixture_tree`` playing ``$AFFECT_DATA``) with ``fast_dev_run``, CPU, fp32,
no logger, plus one overriding config that only shrinks the data (32x32 images, batches of 2-4, short
sequences). The networks are shrunk by one substitution, not a per-class table: ``timm.create_model``
builds the VGG-16 layout ("D", same node names, so the paper's multi-level taps resolve) with 1/64 of its
channels, and ``resnet50`` as timm's ``test_resnet``. ``backbone: vggface`` rows load a converted
VGG-Face file of that tiny layout through ``$VGGFACE_WEIGHTS``, exactly as a user's run would. Checkpoint
paths in a command are replaced by a tiny FaceBehaviorNet's checkpoint (zero-/few-shot rows) or dropped
(earlier stages of a pipeline, tested in tests/models). A config that cannot run fails.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import yaml

import affect.cli
import affect.lightning_cli
from affect.models.backbones import VGGFACE_CONV_INDEX

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "experiments"
# pieces are composed by the rows; experiments/predict/ (``affect predict`` on media) is run by
# tests/predict/test_cli_predict.py
PIECES = ("model", "data", "trainer", "predict")
CONFIGS = sorted(p for p in EXPERIMENTS.rglob("*.yaml") if p.relative_to(EXPERIMENTS).parts[0] not in PIECES)
IMAGE = 32
AUDIO = 32
SEQ = 4
#: VGG-16 ("D") with 1/64 of the channels: the same ``features.N`` layout and taps at a tiny size.
TINY_VGG_CFG = [1, 1, "M", 2, 2, "M", 4, 4, 4, "M", 8, 8, 8, "M", 8, 8, 8, "M"]
#: Metrics of the package that are better when lower (everything else logged is higher-is-better).
LOWER_IS_BETTER = re.compile(r"(^|/)(loss|mse|mse_v|mse_a)$")
COMMAND = re.compile(r"^# affect (fit|test|validate) (.+)$")
#: A reported metric named in a config's header comment: ``test/<task>/<metric>``.
REPORTED = re.compile(r"\btest/(\w+)/(\w+)")


def config_id(path: Path) -> str:
    return str(path.relative_to(EXPERIMENTS))


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def header(path: Path) -> str:
    """The leading comment block of a YAML."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return "\n".join(lines)


def command(path: Path) -> tuple[str, list[Path], list[str]]:
    """``(subcommand, configs in order, extra arguments)`` of a run config's first line."""
    m = COMMAND.match(path.read_text().splitlines()[0])
    assert m, f"{path}: the first line must be '# affect <fit|test> --config ...'"
    words = shlex.split(m.group(2))
    configs, extra = [], []
    i = 0
    while i < len(words):
        if words[i] == "--config":
            configs.append(REPO / words[i + 1])
            i += 2
        else:
            extra.append(words[i])
            i += 1
    return m.group(1), configs, extra


def merged(path: Path) -> dict:
    """The run's configs merged left to right (dicts deeply, lists replaced), as jsonargparse does."""
    out: dict = {}
    for cfg in command(path)[1]:
        out = _merge(out, load(cfg))
    return out


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


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
    """An ``affect prepare`` store of the Aff-Wild2 fixture with one spectrogram image per frame."""
    from affect.data.corpora.affwild2 import make_affwild2_manifest
    from affect.store.reader import open_store
    from affect.store.writer import PrepareOptions, prepare_store

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


@pytest.fixture(scope="session")
def fer_store(data_root, tmp_path_factory) -> Path:
    """An ``affect prepare`` store of the FER2013 fixture (images resized as crops: a config smoke test)."""
    from affect.data.corpora.fer2013 import make_fer2013_manifest
    from affect.store.writer import PrepareOptions, prepare_store

    root = data_root / "fer2013"
    manifest, _ = make_fer2013_manifest(root)
    out = tmp_path_factory.mktemp("stores") / "fer2013"
    report = prepare_store(manifest, root, out, options=PrepareOptions(image_size=IMAGE, detect="never"), progress=False)
    assert report["usable_rows"] == len(manifest)
    return out


#: The fixture store each store-reading corpus gets (by its datamodule's class path).
STORE_FIXTURES = {"fer2013": "fer_store"}


def store_fixture(class_path: str) -> str:
    return next((f for corpus, f in STORE_FIXTURES.items() if f".{corpus}." in class_path), "av_store")


def tiny_create_model(real):
    """``timm.create_model`` with the paper's big backbones swapped for tiny ones of the same layout."""

    def create(name, *args, **kwargs):
        if name in ("vgg16", "vggface"):
            from timm.models.vgg import VGG

            kwargs.pop("pretrained", None)
            return VGG(TINY_VGG_CFG, mlp_ratio=1 / 1024, **kwargs)
        if name == "resnet50":
            return real("test_resnet", *args, **kwargs)
        return real(name, *args, **kwargs)

    return create


@pytest.fixture(scope="session")
def vggface_file(tmp_path_factory) -> Path:
    """A converted VGG-Face state dict (Oxford names) of the tiny VGG-16 layout."""
    from timm.models.vgg import VGG

    net = VGG(TINY_VGG_CFG, num_classes=0, mlp_ratio=1 / 1024)
    names = {i: n for n, i in VGGFACE_CONV_INDEX.items()}
    state = {f"{names[int(k.split('.')[1])]}.{k.split('.')[2]}": v
             for k, v in net.state_dict().items() if k.startswith("features.")}  # fmt: skip
    state["fc8.weight"] = torch.zeros(3, 3)  # dropped by the loader, as in a real converted file
    path = tmp_path_factory.mktemp("vggface") / "vggface.pth"
    torch.save(state, path)
    return path


@pytest.fixture
def env(data_root, vggface_file, tmp_path, monkeypatch) -> Path:
    """``AFFECT_DATA`` -> the fixture tree; ``VGGFACE_WEIGHTS`` -> the tiny converted file; tiny
    backbones; cwd -> a fresh tmp dir (relative ``runs/...`` paths land there)."""
    monkeypatch.setenv("AFFECT_DATA", str(data_root))
    monkeypatch.setenv("VGGFACE_WEIGHTS", str(vggface_file))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setattr(timm, "create_model", tiny_create_model(timm.create_model))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="session")
def fbn_checkpoint(data_root, vggface_file, tmp_path_factory) -> Path:
    """A tiny FaceBehaviorNet trained for one step by the shipped ``fbn_no_coupling.yaml`` (its
    ``last.ckpt``): the input of the zero-shot / fine-tuning configs."""
    work = tmp_path_factory.mktemp("fbn_ckpt")
    mp = pytest.MonkeyPatch()
    try:
        mp.setenv("AFFECT_DATA", str(data_root))
        mp.setenv("VGGFACE_WEIGHTS", str(vggface_file))
        mp.setattr(timm, "create_model", tiny_create_model(timm.create_model))
        mp.chdir(work)
        path = EXPERIMENTS / "table6" / "fbn_no_coupling.yaml"
        run(path, work, None, None, ["--trainer.max_steps", "1", "--trainer.limit_val_batches", "1",
                                     "--trainer.num_sanity_val_steps", "0", "--trainer.logger", "false"])  # fmt: skip
    finally:
        mp.undo()
    (ckpt,) = work.rglob("last.ckpt")
    return ckpt


# --------------------------------------------------------------------------- shrinking
def shrink_corpus(dm: dict, store: Path | None, batch: int) -> dict:
    init = dict(dm.get("init_args") or {})
    args = {"num_workers": 0, "batch_size": batch, "image_size": IMAGE}
    if init.get("sequence_length"):
        args["sequence_length"] = SEQ
    if init.get("test_fraction"):
        args["test_fraction"] = 0.0  # the fixture corpora ship their own test split
    if init.get("store"):
        if store is None:
            raise AssertionError(f"{dm['class_path']} reads a prepared store: the test needs {store_fixture(dm['class_path'])}")
        args["store"] = str(store)
    return {"init_args": args}


def shrink_data(data: dict, store: Path | None) -> dict:
    """Only sizes change: every corpus of the run keeps its class and paths."""
    init = data.get("init_args") or {}
    if data["class_path"].endswith("MultiDomainDataModule"):
        out: dict = {d: [{"class_path": m["class_path"], **shrink_corpus(m, store, 2)} for m in init[d]]
                     for d in ("va", "au", "expr") if init.get(d)}  # fmt: skip
        for domain in out.values():
            for m in domain:
                m["init_args"].pop("image_size")
        out.update(batch_sizes="fixed", va_batch_size=4, au_batch_size=4, expr_batch_size=4, num_workers=0,
                   image_size=IMAGE)  # fmt: skip
        return {"init_args": out}
    return shrink_corpus(data, store, 2)


def checkpoint_args(extra: list[str], ckpt: Path | None) -> list[str]:
    """The command's extra arguments with checkpoint paths of earlier pipeline stages resolved."""
    out, i = [], 0
    while i < len(extra):
        key, value = extra[i], extra[i + 1]
        i += 2
        if key in ("--model.init_args.checkpoint",) or (key == "--model.init_args.init_checkpoint" and ckpt is not None):
            out += [key, str(ckpt)]
        elif not key.endswith("checkpoint"):
            out += [key, value]
    return out


def run(path: Path, tmp: Path, ckpt: Path | None, store: Path | None, extra: list[str]):
    """The row's own command, in-process, with the data shrunk; returns the CLI."""
    sub, configs, cmd_extra = command(path)
    cfg = merged(path)
    over = tmp / "shrink.yaml"
    shrink = {"data": shrink_data(cfg["data"], store), "checkpoint": {"dirpath": str(tmp / "checkpoints")}}
    if "audio_size" in (cfg["model"].get("init_args") or {}):  # the store's spectrogram images
        shrink["model"] = {"init_args": {"audio_size": AUDIO}}
    over.write_text(yaml.safe_dump(shrink, sort_keys=False))
    needs_ckpt = cfg["model"]["class_path"].endswith(("ZeroShotCompound", "CompoundFineTune"))
    argv = [sub, *[a for c in configs for a in ("--config", str(c))], "--config", str(over),
            *checkpoint_args(cmd_extra, ckpt if needs_ckpt else None),
            "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.precision", "32",
            "--trainer.default_root_dir", str(tmp / "run"), "--trainer.enable_progress_bar", "false",
            "--trainer.enable_model_summary", "false", *extra]  # fmt: skip
    mp = pytest.MonkeyPatch()
    mp.setattr(affect.lightning_cli, "AffectCLI", _recording_cli())
    try:
        affect.cli.main(argv)
    except SystemExit as e:  # jsonargparse reports parse errors by exiting
        raise AssertionError(f"affect {' '.join(argv)} exited with {e.code} (see the captured stderr)") from e
    finally:
        mp.undo()
    return _Recorder.last


class _Recorder:
    """Keeps the CLI instance that :func:`affect.cli.main` creates."""

    last = None


def _recording_cli():
    base = affect.lightning_cli.AffectCLI

    class RecordingCLI(base):
        def __init__(self, *args, **kwargs):
            _Recorder.last = self
            super().__init__(*args, **kwargs)

    return RecordingCLI


def needs_store(cfg: dict) -> str | None:
    """The store fixture the config's store-reading corpora need (None: no store)."""
    init = cfg["data"].get("init_args") or {}
    corpora = [m for d in ("va", "au", "expr") for m in init.get(d) or []] or [cfg["data"]]
    return next((store_fixture(m["class_path"]) for m in corpora if (m.get("init_args") or {}).get("store")), None)


# --------------------------------------------------------------------------- tests
def test_configs_are_found():
    tables = {p.parent.name for p in CONFIGS}
    assert {"table2", "table3", "table4", "table6"} <= tables
    assert len(CONFIGS) >= 26


@pytest.mark.parametrize("path", CONFIGS, ids=config_id)
def test_first_line_is_the_command(path):
    _, configs, _ = command(path)
    assert configs and configs[-1] == path, f"{path}: the command's last --config must be the row itself"
    missing = [str(c) for c in configs if not c.is_file()]
    assert not missing, f"{path}: the command names configs that do not exist: {missing}"


@pytest.mark.parametrize("path", [p for p in CONFIGS if p.parent.name.startswith("table")], ids=config_id)
def test_rows_are_a_few_lines_on_shared_pieces(path):
    body = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert len(body) <= 14, f"{path}: {len(body)} lines of settings; a row should be a few lines on the shared pieces"
    assert len(command(path)[1]) >= 3, f"{path}: a row composes a model, a data and a trainer piece"


@pytest.mark.parametrize("path", CONFIGS, ids=config_id)
def test_checkpoint_mode_follows_the_metric(path):
    ckpt = merged(path).get("checkpoint") or {}
    if "monitor" in ckpt:
        want = "min" if LOWER_IS_BETTER.search(ckpt["monitor"]) else "max"
        assert ckpt.get("mode") == want, f"{path}: {ckpt['monitor']} wants mode {want}"
        assert ckpt["monitor"].startswith("val/")


@pytest.mark.parametrize("path", CONFIGS, ids=config_id)
def test_image_size_is_stated_once(path):
    text = "\n".join(c.read_text() for c in command(path)[1])
    assert len(re.findall(r"\bimage_size:", text)) <= 1, f"{path}: image_size is stated more than once"


@pytest.mark.filterwarnings("ignore:LightningCLI's args parameter")
@pytest.mark.parametrize("path", CONFIGS, ids=config_id)
def test_config_runs(path, env, request):
    cfg = merged(path)
    sub = command(path)[0]
    needs_ckpt = cfg["model"]["class_path"].endswith(("ZeroShotCompound", "CompoundFineTune"))
    ckpt = request.getfixturevalue("fbn_checkpoint") if needs_ckpt else None
    store = request.getfixturevalue(needs_store(cfg)) if needs_store(cfg) else None
    cli = run(path, env, ckpt, store, ["--trainer.fast_dev_run", "true", "--trainer.logger", "false"])
    trainer = cli.trainer
    assert trainer.state.finished, trainer.state
    metrics = trainer.callback_metrics
    assert metrics, f"{path}: nothing was logged"
    # the metric names the header promises for the table ("Reports: test/va/ccc_v, ...") are logged
    stage = "val" if sub == "fit" else "test"
    promised = {f"{stage}/{task}/{name}" for task, name in REPORTED.findall(header(path))}
    missing = sorted(promised - set(metrics))
    assert not missing, f"{path}: header names metrics that are not logged: {missing}; logged: {sorted(metrics)}"
    if sub == "fit":
        for monitor in [cb.monitor for cb in trainer.checkpoint_callbacks if getattr(cb, "monitor", None)]:
            assert monitor in metrics, f"{path}: ModelCheckpoint monitors {monitor!r}, logged: {sorted(metrics)}"


@pytest.mark.filterwarnings("ignore:LightningCLI's args parameter")
def test_wandb_offline_run(env):
    """One row with the trainer piece's WandbLogger, offline: the run folder appears under the row's
    save_dir (one real step, not fast_dev_run, which swaps every logger for a dummy)."""
    import wandb

    path = EXPERIMENTS / "table6" / "single_task_expr.yaml"
    try:
        cli = run(path, env, None, None, ["--trainer.max_steps", "1", "--trainer.limit_val_batches", "1",
                                          "--trainer.num_sanity_val_steps", "0"])  # fmt: skip
        assert cli.trainer.logger.experiment.name == "table6-single_task_expr"
    finally:
        wandb.finish()  # an unfinished run would be reused by the next WandbLogger of this process
    runs = list((env / "runs" / "table6" / "single_task_expr" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, f"no offline W&B run under {env / 'runs'}"
    assert list(runs[0].glob("run-*.wandb")), f"{runs[0]} holds no run log"
