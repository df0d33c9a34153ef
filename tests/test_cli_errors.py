"""Mistakes a user makes end in one line through the real CLI (``python -m affect``): what is wrong,
which file or config key, and the fix; ``--debug`` / ``AFFECT_DEBUG=1`` shows the traceback instead.

Each subprocess run imports Lightning afresh (~15 s on a quiet 2-core machine, minutes when it is
loaded), so those tests are ``slow``; the timeout is only a hang guard."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from affect.cli import main
from affect.data.fixtures import fixture_writer
from affect.errors import find_affect_error

REPO = Path(__file__).resolve().parents[1]

CONFIG = """\
model:
  class_path: affect.models.mt_vgg.MTVGGModule
  init_args: {backbone: test_resnet, hidden: 16}
data:
  class_path: affect.data.corpora.fer2013.Fer2013DataModule
  init_args: {root: "${AFFECT_DATA}/fer2013", val_fraction: 0.25, batch_size: 4, image_size: 32}
trainer:
  accelerator: cpu
  enable_progress_bar: false
  enable_model_summary: false
  logger: false
  enable_checkpointing: false
"""


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("corpora")
    fixture_writer("fer2013")(root / "fer2013")
    return root


def run_affect(*args: str, cwd: Path, env: dict[str, str | None]) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("AFFECT_DATA", "AFFECT_DEBUG")}
    full.update({k: v for k, v in env.items() if v is not None})
    full.update(HF_HUB_OFFLINE="1", NO_ALBUMENTATIONS_UPDATE="1", PYTHONWARNINGS="ignore",
                PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "affect", *args], cwd=cwd, env=full, capture_output=True,
                          text=True, timeout=600)  # timeout: a hang guard only


def assert_one_line(out: subprocess.CompletedProcess, *fragments: str) -> str:
    assert out.returncode == 2, (out.returncode, out.stderr[-3000:])
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("affect: error: "), out.stderr[-3000:]
    for f in fragments:
        assert f in last, (f, last)
    return last


@pytest.fixture
def cfg(tmp_path) -> Path:
    (tmp_path / "cfg.yaml").write_text(CONFIG)
    return tmp_path / "cfg.yaml"


@pytest.mark.slow  # a real `python -m affect` subprocess each
def test_unset_affect_data(cfg, tmp_path):
    out = run_affect("fit", "--config", str(cfg), cwd=tmp_path, env={})
    assert_one_line(out, "${AFFECT_DATA}/fer2013", "names an unset environment variable", "set AFFECT_DATA")


def test_debug_flag_and_env_show_the_traceback(cfg, tmp_path, monkeypatch, capsys):
    """In-process (the subprocess tests above show the one-line path): the error propagates instead."""
    monkeypatch.delenv("AFFECT_DATA", raising=False)
    monkeypatch.setenv("AFFECT_DEBUG", "0")  # "0" = off; teardown also undoes what --debug sets below
    assert main(["fit", "--config", str(cfg)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("affect: error: corpus root")
    with pytest.raises(ValueError) as err:
        main(["fit", "--config", str(cfg), "--debug"])
    assert find_affect_error(err.value) is not None
    monkeypatch.setenv("AFFECT_DEBUG", "1")
    with pytest.raises(ValueError):
        main(["fit", "--config", str(cfg)])


@pytest.mark.slow  # a real `python -m affect` subprocess each
def test_wrong_root(cfg, tmp_path):
    out = run_affect("fit", "--config", str(cfg), "--trainer.fast_dev_run=true", cwd=tmp_path,
                     env={"AFFECT_DATA": str(tmp_path / "nowhere")})
    assert_one_line(out, f"{tmp_path / 'nowhere' / 'fer2013'} does not exist", "data.init_args.root")


@pytest.mark.slow  # a real `python -m affect` subprocess each
def test_text_file_as_checkpoint(cfg, tmp_path, data_root):
    notes = tmp_path / "notes.txt"
    notes.write_text("this is not a checkpoint\n")
    out = run_affect("validate", "--config", str(cfg), "--ckpt_path", str(notes), cwd=tmp_path,
                     env={"AFFECT_DATA": str(data_root)})
    last = assert_one_line(out, str(notes), "is not a PyTorch checkpoint", ".ckpt")
    assert "weights_only" not in last


@pytest.mark.slow  # a real `python -m affect` subprocess each
def test_model_follows_the_data_image_size(cfg, tmp_path, data_root):
    """The model's image_size is linked to the data's (stated once), so the CLI cannot build a model
    for other images than the data delivers (the mismatch error of Python callers is tested in
    tests/data); the run at 48x48 goes through."""
    out = run_affect("fit", "--config", str(cfg), "--data.init_args.image_size=48", "--trainer.fast_dev_run=true",
                     cwd=tmp_path, env={"AFFECT_DATA": str(data_root)})
    assert out.returncode == 0, out.stderr[-2000:]


@pytest.mark.slow  # a real `python -m affect` subprocess each
def test_batch_size_zero(cfg, tmp_path, data_root):
    out = run_affect("fit", "--config", str(cfg), "--data.init_args.batch_size=0", cwd=tmp_path,
                     env={"AFFECT_DATA": str(data_root)})
    assert_one_line(out, "data.init_args.batch_size must be an integer >= 1; got 0")


def test_prepare_option_error(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("AFFECT_DEBUG", raising=False)
    (tmp_path / "m.csv").write_text("path,corpus\na.png,toy\n")
    code = main(["prepare", "csv", "--manifest", str(tmp_path / "m.csv"), "--root", str(tmp_path),
                 "--out", str(tmp_path / "st"), "--batch-size", "0"])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
        "affect: error: --batch-size must be an integer >= 1; got 0")
    assert not (tmp_path / "st" / "job.json").exists()
