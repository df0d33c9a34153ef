"""Checkpoints are read once and checked before anything runs (:mod:`affect.models.checkpoint`).

Through the real CLI (``affect.cli.main``, in-process): every bad ``--ckpt_path`` of ``affect predict``
ends in one ``affect: error:`` line naming the file, exit 2, before a single face is extracted (the
face pipeline is replaced by one that fails the test if called); a good checkpoint is opened once
per run, and its weights are the ones the predictions come from.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import affect.cli
from affect.errors import CheckpointError, MissingCheckpointError
from affect.models.checkpoint import MAX_IMAGE_SIZE, read_checkpoint
from affect.predict import CONFIG

IMAGE = 32
#: the VA output the constant network gives every face (head weights zero, bias these)
VA = (0.375, -0.25)
QUIET = ["--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false", "--data.init_args.progress", "false"]


def _save(module, path: Path, class_path: str | None) -> Path:
    import lightning as L

    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)  # fmt: skip
    trainer.strategy.connect(module)
    trainer.save_checkpoint(path)
    if class_path:  # as LightningCLI records it
        ckpt = torch.load(path, weights_only=True)
        ckpt["hyper_parameters"]["_class_path"] = class_path
        torch.save(ckpt, path)
    return path


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    """A FaceBehaviorNet (test backbone, 32x32) whose VA output is the constant :data:`VA`."""
    from affect.models.facebehaviornet import FaceBehaviorNetModule

    torch.manual_seed(0)
    module = FaceBehaviorNetModule(backbone="test_resnet", hidden=16, image_size=IMAGE)
    with torch.no_grad():
        module.net.head.linear.weight.zero_()
        module.net.head.linear.bias[:2] = torch.tensor(VA)
    path = tmp_path_factory.mktemp("ckpt") / "good.ckpt"
    return _save(module, path, "affect.models.facebehaviornet.FaceBehaviorNetModule")


def _variant(good: Path, tmp_path: Path, name: str, change) -> Path:
    ckpt = torch.load(good, weights_only=True)
    ckpt = change(ckpt)
    path = tmp_path / name
    torch.save(ckpt, path)
    return path


def _affect(**values):
    def change(ckpt):
        ckpt["affect"].update(values)
        return ckpt

    return change


def _drop(key):
    def change(ckpt):
        ckpt.pop(key)
        return ckpt

    return change


#: name -> (how the good checkpoint is changed, fragments of the one-line message)
BAD = {
    "plain_state_dict.pt": (lambda c: c["state_dict"], ["plain state dict", ".ckpt"]),
    "config_dump.ckpt": (lambda c: {"model": {"class_path": "other.Net"}, "trainer": {"max_epochs": 3}},
                         ["not a Lightning checkpoint"]),
    "other_project.ckpt": (lambda c: {**{k: v for k, v in c.items() if k != "affect"},
                                      "hyper_parameters": {"_class_path": "otherproj.models.Net", "width": 3}},
                           ["another project", "otherproj.models.Net", "'affect' entry"]),
    "no_affect_entry.ckpt": (_drop("affect"), ["no 'affect' entry"]),
    "size_huge.ckpt": (_affect(image_size=100000), ["affect.image_size is 100000", f"[8, {MAX_IMAGE_SIZE}]"]),
    "size_text.ckpt": (_affect(image_size="abc"), ["affect.image_size is 'abc'"]),
    "size_negative.ckpt": (_affect(image_size=-5), ["affect.image_size is -5"]),
    "size_bool.ckpt": (_affect(image_size=True), ["affect.image_size is True"]),
    "size_absent.ckpt": (lambda c: {**c, "affect": {k: v for k, v in c["affect"].items() if k != "image_size"}},
                         ["no image_size"]),
    "size_differs.ckpt": (_affect(image_size=64), ["hyper_parameters.image_size is 32", "affect.image_size is 64"]),
    "tasks_unknown.ckpt": (_affect(tasks=["va", "pain"]), ["affect.tasks"]),
    "au_set_forged.ckpt": (_affect(au_set=[1, 2, 99]), ["affect.au_set"]),
    "classes_empty.ckpt": (_affect(expr_classes=[]), ["affect.expr_classes"]),
    "format_future.ckpt": (_affect(format=3), ["affect.format is 3"]),
    "entry_not_a_dict.ckpt": (lambda c: {**c, "affect": [1, 2]}, ["'affect' entry"]),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_checkpoints_are_refused_in_one_line(good, tmp_path, name):
    change, fragments = BAD[name]
    path = _variant(good, tmp_path, name, change)
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    for f in fragments:
        assert f in message, (f, message)


def test_missing_and_non_torch_files(tmp_path):
    with pytest.raises(MissingCheckpointError, match="does not exist") as err:
        read_checkpoint(tmp_path / "absent.ckpt")
    assert isinstance(err.value, FileNotFoundError)
    text = tmp_path / "notes.ckpt"
    text.write_text("not a checkpoint\n")
    with pytest.raises(CheckpointError, match="not a PyTorch weights file"):
        read_checkpoint(text)
    pickled = tmp_path / "objects.ckpt"
    torch.save({"state_dict": {}, "fn": Path("x")}, pickled)  # an object the safe loader refuses
    with pytest.raises(CheckpointError, match="unpickl"):
        read_checkpoint(pickled)


def test_good_checkpoint_record(good):
    from affect.labels import AU_SET, EXPR_CLASSES

    record = read_checkpoint(good)
    assert record.class_path == "affect.models.facebehaviornet.FaceBehaviorNetModule"
    assert (record.image_size, record.tasks, record.au_set) == (IMAGE, ("va", "expr", "au"), AU_SET)
    assert record.expr_classes == EXPR_CLASSES and record.compound_classes == ()
    assert record.hyper_parameters["hidden"] == 16
    assert torch.equal(record.state_dict["net.head.linear.bias"][:2], torch.tensor(VA))


def test_without_affect_entry_only_when_allowed(good, tmp_path):
    """``fit`` / ``test`` accept a Lightning checkpoint of a module of the user's own (no ``affect``
    entry); a tampered entry is refused all the same."""
    path = _variant(good, tmp_path, "own.ckpt", _drop("affect"))
    record = read_checkpoint(path, require_affect=False)
    assert record.image_size is None and record.affect == {}
    forged = _variant(good, tmp_path, "forged.ckpt", _affect(image_size=100000))
    with pytest.raises(CheckpointError, match="100000"):
        read_checkpoint(forged, require_affect=False)


def test_weights_that_do_not_fit_are_one_line(good):
    from affect.models.facebehaviornet import FaceBehaviorNetModule

    record = read_checkpoint(good)
    other = FaceBehaviorNetModule(backbone="test_resnet", hidden=8, image_size=IMAGE)
    with pytest.raises(CheckpointError, match="do not fit FaceBehaviorNetModule"):
        record.load_into(other)


# ---------------------------------------------------------------------- through the CLI


@pytest.fixture
def face_image(tmp_path) -> Path:
    from PIL import Image

    from affect.data.synthetic import face_sequence

    frames, _, _ = face_sequence(np.random.default_rng(0), 1, size=96, fps=10)
    path = tmp_path / "face.png"
    Image.fromarray(frames[0]).save(path)
    return path


@pytest.fixture
def no_extraction(monkeypatch):
    """The face pipeline fails the test when it runs."""
    from affect.predict.datamodule import MediaDataModule

    def face_stream(self, *args, **kwargs):
        raise AssertionError("faces were extracted before the checkpoint was checked")

    monkeypatch.setattr(MediaDataModule, "face_stream", face_stream)


def predict(ckpt: Path, inputs: Path, out: Path, *extra: str) -> list[str]:
    return ["predict", "--config", str(CONFIG), "--ckpt_path", str(ckpt), "--data.init_args.inputs", str(inputs),
            "--trainer.default_root_dir", str(out), *QUIET, *extra]  # fmt: skip


def one_line_error(capsys, code: int, *fragments: str) -> str:
    err = capsys.readouterr().err
    assert code == 2, err[-3000:]
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("affect: error: "), err[-3000:]
    for f in fragments:
        assert f in last, (f, last)
    return last


@pytest.mark.parametrize("name", ["plain_state_dict.pt", "other_project.ckpt", "config_dump.ckpt",
                                  "no_affect_entry.ckpt", "size_huge.ckpt", "size_text.ckpt", "size_negative.ckpt"])  # fmt: skip
def test_predict_refuses_a_bad_checkpoint_before_any_face(good, tmp_path, face_image, no_extraction, capsys, name):
    change, fragments = BAD[name]
    path = _variant(good, tmp_path, name, change)
    code = affect.cli.main(predict(path, face_image, tmp_path / "out"))
    one_line_error(capsys, code, str(path), *fragments)
    assert not (tmp_path / "out" / "predictions").exists()


def test_predict_missing_checkpoint(tmp_path, face_image, no_extraction, capsys):
    code = affect.cli.main(predict(tmp_path / "absent.ckpt", face_image, tmp_path / "out"))
    one_line_error(capsys, code, "absent.ckpt", "does not exist")


def test_predict_opens_the_checkpoint_once_and_uses_its_weights(good, tmp_path, face_image, monkeypatch):
    """One ``torch.load`` of the checkpoint per run (the CLI reads it, the datamodule and the weights
    take the record); the predictions are the checkpoint's network's (a constant VA output)."""
    opened = []
    real_load = torch.load

    def counting_load(f, *args, **kwargs):
        if isinstance(f, (str, Path)) and Path(f).resolve() == good.resolve():
            opened.append(f)
        return real_load(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting_load)
    out = tmp_path / "out"
    assert affect.cli.main(predict(good, face_image, out)) == 0
    assert len(opened) == 1, opened
    rows = pd.read_csv(out / "predictions" / "predictions.csv")
    faces = rows[rows["valence"].notna()]
    assert len(faces) >= 1
    np.testing.assert_allclose(faces[["valence", "arousal"]].to_numpy(), np.tile(VA, (len(faces), 1)), atol=1e-6)
