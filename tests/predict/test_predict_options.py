"""Bad ``affect predict`` options end in one line through the real CLI (``affect.cli.main``), naming the
``data.init_args`` key, the value and what it takes: a glob or path that matches nothing, ``select``,
``frame_stride``, ``detect_every`` and the other counts; before the checkpoint's model runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import affect.cli
from affect.errors import ConfigError
from affect.predict import CONFIG
from affect.predict.datamodule import MediaDataModule

QUIET = ["--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false", "--data.init_args.progress", "false"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    import lightning as L

    from affect.models.facebehaviornet import FaceBehaviorNetModule

    module = FaceBehaviorNetModule(backbone="test_resnet", hidden=8, image_size=32)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)  # fmt: skip
    trainer.strategy.connect(module)
    path = tmp_path_factory.mktemp("options") / "model.ckpt"
    trainer.save_checkpoint(path)
    saved = torch.load(path, weights_only=True)
    saved["hyper_parameters"]["_class_path"] = "affect.models.facebehaviornet.FaceBehaviorNetModule"
    torch.save(saved, path)
    return path


@pytest.fixture
def image(tmp_path) -> Path:
    from PIL import Image

    path = tmp_path / "grey.png"
    Image.new("RGB", (64, 64), (128, 128, 128)).save(path)
    return path


def run(capsys, ckpt: Path, inputs: str, out: Path, *extra: str) -> str:
    code = affect.cli.main(["predict", "--config", str(CONFIG), "--ckpt_path", str(ckpt), "--data.init_args.inputs",
                            inputs, "--trainer.default_root_dir", str(out), *QUIET, *extra])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("affect: error: "), err[-3000:]
    return last


def test_a_glob_that_matches_nothing(ckpt, tmp_path, capsys):
    pattern = str(tmp_path / "holiday_*.jpg")
    last = run(capsys, ckpt, pattern, tmp_path / "out")
    assert "data.init_args.inputs" in last and "holiday_*.jpg" in last and "no image or video" in last


@pytest.mark.parametrize(("key", "value", "want"), [
    ("select", "biggest", "'all' or 'largest' or 'central'"),
    ("frame_stride", "0", "an integer >= 1"),
    ("frame_stride", "-2", "an integer >= 1"),
    ("detect_every", "0", "an integer >= 1"),
    ("batch_size", "0", "an integer >= 1"),
    ("missing_audio", "ignore", "'skip' or 'silence'"),
    ("audio_context_s", "0", "a number of seconds > 0"),
    ("sequence_length", "-1", "0 (frames)"),
])  # fmt: skip
def test_bad_option_values(ckpt, image, tmp_path, capsys, key, value, want):
    last = run(capsys, ckpt, str(image), tmp_path / "out", f"--data.init_args.{key}", value)
    assert f"data.init_args.{key} is " in last and value in last and want in last, last


def test_options_are_checked_in_python_too(image):
    with pytest.raises(ConfigError, match="detect_every is 0"):
        MediaDataModule(str(image), detect_every=0)
    with pytest.raises(ConfigError, match="frame_stride is 1.5"):
        MediaDataModule(str(image), frame_stride=1.5)
    assert MediaDataModule(str(image), frame_stride=2, detect_every=3).frame_stride == 2
