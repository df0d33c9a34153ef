"""The ``affect`` command (affect/cli.py): LightningCLI through ``python -m affect``, the extra
subcommands, config errors, and a real 2-process DDP run checked against a 1-process validation."""

from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

import affect.cli

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent

CONFIG = """\
# python -m affect fit --config cfg.yaml  (tiny MT-VGG on synthetic frames)
model:
  class_path: affect.models.{model}
  init_args:
    backbone: test_resnet
    {hidden_key}: 16
data:
  class_path: helpers.toy_datamodule.ToyDataModule
  init_args:
    image_size: 32
    num_aus: {num_aus}
    multi_domain: {multi_domain}
    num_train: 16
    num_val: 16
    batch_size: 4
trainer:
  enable_progress_bar: false
  enable_model_summary: false
  num_sanity_val_steps: 0
  log_every_n_steps: 1
"""


def write_config(tmp_path: Path, model: str = "mt_vgg.MTVGGModule", hidden_key: str = "hidden", num_aus: int = 8,
                 multi_domain: bool = False) -> Path:  # fmt: skip
    path = tmp_path / "cfg.yaml"
    path.write_text(
        CONFIG.format(
            model=model, hidden_key=hidden_key, num_aus=num_aus, multi_domain=str(multi_domain).lower()
        )
    )
    return path


def affect_cmd(
    *args: str, cwd: Path, timeout: float = 120, script: bool = False
) -> subprocess.CompletedProcess:
    """``python -m affect ARGS`` (or the installed ``affect`` console script) in a subprocess."""
    cmd = [str(Path(sys.executable).parent / "affect")] if script else [sys.executable, "-m", "affect"]
    return subprocess.run([*cmd, *args], cwd=cwd, env=affect_env(), capture_output=True, text=True, timeout=timeout)


def affect_env() -> dict[str, str]:
    """The environment of a CLI subprocess: offline, and importing this checkout and ``tests/helpers``."""
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1", NO_ALBUMENTATIONS_UPDATE="1", WANDB_MODE="offline", PYTHONWARNINGS="ignore"
    )
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(REPO), env.get("PYTHONPATH", "")])
    return env


def read_metrics(run: Path) -> dict[str, float]:
    """The last logged value of every column of the run's CSVLogger ``metrics.csv``."""
    (path,) = run.glob("lightning_logs/version_*/metrics.csv")
    last: dict[str, float] = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            last.update({k: float(v) for k, v in row.items() if v != ""})
    return last


def test_help_lists_subcommands(tmp_path):
    if not (Path(sys.executable).parent / "affect").is_file():
        pytest.skip("the `affect` console script is not installed next to this Python (pip install -e .)")
    out = affect_cmd("--help", cwd=tmp_path, script=True)
    assert out.returncode == 0, out.stderr
    assert "usage: affect" in out.stdout
    for word in ("fit", "validate", "test", "predict", "prepare", "relatedness"):
        assert word in out.stdout


def test_fit_fast_dev_run(tmp_path):
    cfg = write_config(tmp_path)
    out = affect_cmd(
        "fit", "--config", str(cfg), "--trainer.fast_dev_run=true", "--trainer.accelerator=cpu", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "`Trainer.fit` stopped: `max_steps=1` reached." in out.stderr + out.stdout


def test_invalid_config_key_is_a_clear_error(tmp_path):
    cfg = write_config(tmp_path, hidden_key="hiddn")
    out = affect_cmd("fit", "--config", str(cfg), "--trainer.fast_dev_run=true", cwd=tmp_path)
    assert out.returncode != 0
    assert "Option 'hiddn' is not accepted" in out.stderr
    assert "affect.models.mt_vgg.MTVGGModule" in out.stderr


def test_extra_subcommands_dispatch(monkeypatch):
    calls = []
    prepare = types.ModuleType("affect.prepare")
    prepare.main = lambda argv: calls.append(("prepare", argv)) or 0
    estimate = types.ModuleType("affect.relatedness.estimate")
    estimate.main = lambda argv: calls.append(("relatedness", argv)) or 3
    monkeypatch.setitem(sys.modules, "affect.prepare", prepare)
    monkeypatch.setitem(sys.modules, "affect.relatedness.estimate", estimate)
    assert affect.cli.main(["prepare", "--root", "x"]) == 0
    assert affect.cli.main(["relatedness", "a.csv"]) == 3
    assert calls == [("prepare", ["--root", "x"]), ("relatedness", ["a.csv"])]


@pytest.mark.slow
@pytest.mark.ddp
def test_ddp_validation_metrics_equal_one_process(tmp_path):
    """FaceBehaviorNet on multi-domain toy data: ``fit`` on 2 gloo processes, then a 1-process
    ``validate`` of the saved checkpoint must report the same validation metrics."""
    cfg = write_config(tmp_path, model="facebehaviornet.FaceBehaviorNetModule", num_aus=17, multi_domain=True)
    fit = affect_cmd("fit", "--config", str(cfg), "--trainer.accelerator", "cpu", "--trainer.devices", "2",
                     "--trainer.strategy", "ddp", "--trainer.max_epochs", "1",
                     "--trainer.default_root_dir", str(tmp_path / "ddp"), cwd=tmp_path, timeout=240)  # fmt: skip
    assert fit.returncode == 0, fit.stderr[-3000:]
    (ckpt,) = (tmp_path / "ddp").glob("lightning_logs/version_0/checkpoints/last.ckpt")
    assert (tmp_path / "ddp" / "lightning_logs" / "version_0" / "config.yaml").is_file()
    one = affect_cmd("validate", "--config", str(cfg), "--trainer.accelerator", "cpu", "--trainer.devices", "1",
                     "--ckpt_path", str(ckpt), "--trainer.default_root_dir", str(tmp_path / "one"), cwd=tmp_path)  # fmt: skip
    assert one.returncode == 0, one.stderr[-3000:]
    ddp, single = read_metrics(tmp_path / "ddp"), read_metrics(tmp_path / "one")
    # every epoch-level metric (losses excluded: the CCC loss depends on how frames form batches)
    keys = sorted(k for k in single if k.startswith("val/") and not k.endswith("loss"))
    assert len(keys) > 30 and "val/p_mtl" in keys and "val/au/f1_AU12" in keys
    for k in keys:
        if math.isnan(single[k]):
            assert math.isnan(ddp[k]), k
        else:
            assert ddp[k] == pytest.approx(single[k], abs=1e-5), k


@pytest.mark.slow
def test_a_run_directory_is_never_overwritten(tmp_path):
    """``save_config_kwargs={"overwrite": False}``: a second run logging into the same directory stops."""
    cfg = write_config(tmp_path)
    args = ("fit", "--config", str(cfg), "--trainer.accelerator=cpu", "--trainer.max_steps=1", "--trainer.limit_val_batches=1",
            "--trainer.logger.class_path=lightning.pytorch.loggers.CSVLogger", f"--trainer.logger.init_args.save_dir={tmp_path}",
            "--trainer.logger.init_args.version=fixed")  # fmt: skip
    first = affect_cmd(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert (tmp_path / "lightning_logs" / "fixed" / "config.yaml").is_file()
    second = affect_cmd(*args, cwd=tmp_path)
    assert second.returncode != 0
    assert "config.yaml to NOT exist" in second.stderr


@pytest.mark.parametrize("command", ["prepare", "relatedness"])
def test_extra_subcommands_real_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        affect.cli.main([command, "--help"])
    assert info.value.code == 0
    assert f"affect {command}" in capsys.readouterr().out


@pytest.mark.slow
def test_fer2013_checkpoint_scores_another_fer_layout_folder(tmp_path, monkeypatch):
    """experiments/fer2013.yaml: fit, then ``affect test --ckpt_path`` on any FER2013-layout folder."""
    import glob

    import yaml

    from affect.cli import build_cli
    from affect.data.fixtures import write_fixture_tree

    repo = Path(__file__).resolve().parents[1]
    write_fixture_tree(tmp_path / "data", ["fer2013"], options={"fer2013": {"n_train": 8, "seed": 1}})
    other = write_fixture_tree(tmp_path / "other", ["fer2013"], options={"fer2013": {"n_train": 2, "n_test": 4, "seed": 2}})
    monkeypatch.setenv("AFFECT_DATA", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    small = tmp_path / "small.yaml"
    small.write_text(yaml.safe_dump({
        "model": {"init_args": {"backbone": "test_resnet", "hidden": 16}},
        "data": {"init_args": {"image_size": 32, "batch_size": 8, "num_workers": 0}},
        "trainer": {"max_epochs": 1, "max_time": None, "default_root_dir": str(tmp_path / "run"),
                    "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger",
                               "init_args": {"save_dir": str(tmp_path / "run"), "name": "csv"}}},
    }))
    config = str(repo / "experiments" / "fer2013.yaml")
    build_cli(["fit", "--config", config, "--config", str(small)])
    ckpt = sorted(glob.glob(str(tmp_path / "run" / "csv" / "version_0" / "checkpoints" / "*.ckpt")))[0]
    cli = build_cli(["test", "--config", config, "--config", str(small), "--ckpt_path", ckpt,
                     "--data.init_args.root", str(other / "fer2013"),
                     "--trainer.logger.init_args.save_dir", str(tmp_path / "scored")])
    metrics = cli.trainer.callback_metrics
    assert {"test/expr/acc", "test/expr/f1"} <= set(metrics)
    assert 0.0 <= float(metrics["test/expr/acc"]) <= 1.0
    assert len(cli.datamodule.dataset("test")) == 7 * 4  # the other folder's test split, every image
    assert cli.model.test_time_flip  # the recipe's setting, from the checkpoint
    # an evaluation-only option named on the command line wins over the checkpoint's hyper-parameter
    off = build_cli(["validate", "--config", config, "--config", str(small), "--ckpt_path", ckpt,
                     "--model.init_args.test_time_flip=false", "--trainer.logger=false"])  # fmt: skip
    assert off.model.test_time_flip is False


# --------------------------------------------------------------------------- composition (issue 9)
#: A non-default value for every MultiTaskLoss option (a new option fails the test until listed here).
LOSS_VALUES = {
    "lambda_au": 0.7, "lambda_va": 0.3, "relatedness": "affwild2", "co_annotation": True,
    "distribution_matching": True, "soft_co_annotation": True, "lambda_dm": 0.2, "lambda_soft": 0.4,
    "reweight": False, "au_set": [1, 2, 4, 6, 12, 15, 20, 25], "dm_grad": "au", "dm_form": "printed",
    "weighted_dm": True, "neutral_score": 0.25, "soft_temperature": 2.0, "expr_label_smoothing": 0.1,
    "ccc_eps": 1e-6,
    "dm_eps": 1e-5,
}  # fmt: skip
#: Where MultiTaskLoss keeps an option under another attribute name.
LOSS_ATTRIBUTES = {"relatedness": "relatedness_name"}


def run_in_process(args: list[str]):
    from affect.cli import build_cli

    return build_cli([*args, "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false",
                      "--trainer.enable_model_summary=false"])  # fmt: skip


def test_every_loss_option_is_settable_from_yaml(tmp_path, monkeypatch):
    import inspect

    import yaml

    from affect.losses import MultiTaskLoss

    options = [p for p in inspect.signature(MultiTaskLoss.__init__).parameters if p != "self"]
    assert sorted(options) == sorted(LOSS_VALUES), "list a non-default value for each MultiTaskLoss option"
    defaults = {p.name: p.default for p in inspect.signature(MultiTaskLoss.__init__).parameters.values()}
    assert all(LOSS_VALUES[k] != defaults[k] for k in options), "each value must differ from the default"
    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.chdir(tmp_path)
    cfg = write_config(tmp_path)
    loss = tmp_path / "loss.yaml"
    loss.write_text(yaml.safe_dump({"model": {"init_args": {"loss": {
        "class_path": "affect.losses.MultiTaskLoss", "init_args": LOSS_VALUES}}}}))  # fmt: skip
    cli = run_in_process(["fit", "--config", str(cfg), "--config", str(loss), "--trainer.fast_dev_run=true"])
    built = cli.model.loss_fn
    for name, value in LOSS_VALUES.items():
        got = getattr(built, LOSS_ATTRIBUTES.get(name, name))
        assert (list(got) if isinstance(got, tuple) else got) == value, name
    assert cli.trainer.state.finished


def test_short_class_names_and_help_list_the_package(tmp_path, monkeypatch):
    out = affect_cmd("fit", "--help", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    for name in ("FaceBehaviorNetModule", "AffWildNetModule", "MTVGGGRUModule", "AffWild2DataModule",
                 "MultiDomainDataModule"):  # fmt: skip
        assert name in out.stdout, f"affect fit --help does not list {name}"
    monkeypatch.syspath_prepend(str(TESTS))
    monkeypatch.chdir(tmp_path)
    cli = run_in_process(["fit", "--model", "MTVGGModule", "--model.backbone", "test_resnet", "--model.hidden", "16",
                          "--data", "helpers.toy_datamodule.ToyDataModule", "--data.image_size", "32",
                          "--trainer.fast_dev_run=true"])  # fmt: skip
    assert type(cli.model).__name__ == "MTVGGModule" and cli.model.hparams.image_size == 32  # linked from data


def test_fit_prints_a_run_summary(tmp_path):
    cfg = write_config(tmp_path)
    out = affect_cmd("fit", "--config", str(cfg), "--trainer.max_epochs=1", "--trainer.accelerator=cpu",
                     f"--trainer.default_root_dir={tmp_path / 'run'}", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "affect run summary:" in out.stderr and "val/va/ccc" in out.stderr
    assert "checkpoint" in out.stderr and ".ckpt" in out.stderr


@pytest.mark.slow
def test_test_runs_after_the_initial_weights_file_is_deleted(tmp_path):
    """``affect test --ckpt_path`` of a run started from another run's checkpoint never opens that file."""
    cfg = write_config(tmp_path)
    first = affect_cmd("fit", "--config", str(cfg), "--trainer.max_steps=2", "--trainer.accelerator=cpu",
                       f"--trainer.default_root_dir={tmp_path / 'a'}", f"--checkpoint.dirpath={tmp_path / 'a_ckpt'}",
                       cwd=tmp_path)  # fmt: skip
    assert first.returncode == 0, first.stderr[-3000:]
    init = tmp_path / "a_ckpt" / "last.ckpt"
    second = affect_cmd("fit", "--config", str(cfg), "--trainer.max_steps=2", "--trainer.accelerator=cpu",
                        f"--model.init_args.init_checkpoint={init}", f"--trainer.default_root_dir={tmp_path / 'b'}",
                        f"--checkpoint.dirpath={tmp_path / 'b_ckpt'}", cwd=tmp_path)  # fmt: skip
    assert second.returncode == 0, second.stderr[-3000:]
    init.unlink()
    test = affect_cmd("test", "--config", str(cfg), "--trainer.accelerator=cpu",
                      f"--ckpt_path={tmp_path / 'b_ckpt' / 'last.ckpt'}", f"--trainer.default_root_dir={tmp_path / 'c'}",
                      cwd=tmp_path)  # fmt: skip
    assert test.returncode == 0, test.stderr[-3000:]
    assert "test/va/ccc" in test.stdout + test.stderr


@pytest.mark.slow
def test_old_checkpoint_is_refused_in_one_line_and_upgraded(tmp_path):
    """A checkpoint of the earlier format (loss options and media switches as module arguments; same
    weights layout) is refused by ``affect test`` with one line naming the converter, which fixes it."""
    import torch

    cfg = write_config(tmp_path)
    fit = affect_cmd("fit", "--config", str(cfg), "--trainer.max_steps=1", "--trainer.accelerator=cpu",
                     f"--trainer.default_root_dir={tmp_path / 'a'}", f"--checkpoint.dirpath={tmp_path / 'ck'}",
                     cwd=tmp_path)  # fmt: skip
    assert fit.returncode == 0, fit.stderr[-3000:]
    ckpt = torch.load(tmp_path / "ck" / "last.ckpt", weights_only=True)
    hp = dict(ckpt["hyper_parameters"])
    hp.pop("loss", None)
    hp.update(relatedness="du2014", co_annotation=True, distribution_matching=False, soft_co_annotation=False,
              lambda_dm=1.0, lambda_soft=1.0, reweight=True, lambda_au=1.0, lambda_va=1.0, log_media=False,
              media_samples=5000, vggface_checkpoint=None)  # fmt: skip
    ckpt["hyper_parameters"] = hp
    ckpt["affect"].pop("format")
    old = tmp_path / "old.ckpt"
    torch.save(ckpt, old)
    refused = affect_cmd("test", "--config", str(cfg), f"--ckpt_path={old}", "--trainer.accelerator=cpu", cwd=tmp_path)
    assert refused.returncode != 0
    last = refused.stderr.strip().splitlines()[-1]
    assert "affect upgrade-checkpoint" in last and str(old) in last and "Traceback" not in refused.stderr
    new = tmp_path / "new.ckpt"
    up = affect_cmd("upgrade-checkpoint", str(old), str(new), cwd=tmp_path)
    assert up.returncode == 0, up.stderr[-2000:]
    assert torch.load(new, weights_only=True)["hyper_parameters"]["loss"]["init_args"]["co_annotation"] is True
    test = affect_cmd("test", "--config", str(cfg), f"--ckpt_path={new}", "--trainer.accelerator=cpu",
                      f"--trainer.default_root_dir={tmp_path / 'c'}", cwd=tmp_path)  # fmt: skip
    assert test.returncode == 0, test.stderr[-3000:]
