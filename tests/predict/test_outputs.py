"""What ``affect predict`` writes, through the real CLI: names, streaming, non-finite outputs, reruns.

A FaceBehaviorNet (test backbone, 32x32, VA + EXPR + AU) saved as Lightning saves it is run on
procedural faces (``affect.data.synthetic``) stored under awkward file names.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import affect.cli
import affect.predict.media as media_module
from affect.labels import EXPR_CLASSES
from affect.predict import CONFIG, run_predict

IMAGE = 32
NO_PROGRESS = ["--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false", "--data.init_args.progress", "false"]


def save_module(module, path: Path) -> Path:
    import lightning as L

    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)  # fmt: skip
    trainer.strategy.connect(module)
    trainer.save_checkpoint(path)
    ckpt = torch.load(path, weights_only=True)
    ckpt["hyper_parameters"]["_class_path"] = f"{type(module).__module__}.{type(module).__name__}"
    torch.save(ckpt, path)
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """``frame``: an untrained FaceBehaviorNet; ``nan``: the same with every weight NaN."""
    from affect.models.facebehaviornet import FaceBehaviorNetModule

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("models")
    module = FaceBehaviorNetModule(backbone="test_resnet", hidden=16, image_size=IMAGE).eval()
    out = {"frame": save_module(module, folder / "frame.ckpt")}
    with torch.no_grad():
        for p in module.parameters():
            p.fill_(float("nan"))
    out["nan"] = save_module(module, folder / "nan.ckpt")
    return out


@pytest.fixture(scope="module")
def faces(tmp_path_factory) -> dict:
    """12 procedural face frames (96x96) as a video and one frame as PNG bytes."""
    import io

    from PIL import Image

    from affect.data.synthetic import face_sequence
    from affect.io import write_video

    folder = tmp_path_factory.mktemp("faces")
    frames, _, _ = face_sequence(np.random.default_rng(0), 12, size=96, fps=10)
    video = write_video(folder / "clip.mp4", np.asarray(frames), fps=10)
    buf = io.BytesIO()
    Image.fromarray(np.asarray(frames[0])).save(buf, format="PNG")
    return {"video": video.read_bytes(), "png": buf.getvalue(), "frames": len(frames)}


def cli(*args: str) -> int:
    return affect.cli.main(["predict", "--config", str(CONFIG), *args, *NO_PROGRESS])


def predict_args(ckpt: Path, inputs, out: Path) -> list[str]:
    return ["--ckpt_path", str(ckpt), "--data.init_args.inputs", json.dumps([str(i) for i in inputs]),
            "--trainer.default_root_dir", str(out)]  # fmt: skip


def test_awkward_names_are_safe_bounded_unique_and_encodable(checkpoints, faces, tmp_path):
    """Math text, a name near the 255-byte limit, a non-UTF-8 name, names that flatten alike, a symlink
    loop, a symlinked folder and a literal ``$HOME`` name: every input once, every output written."""
    data = tmp_path / "data"
    (data / "x").mkdir(parents=True)
    (data / "e").mkdir()
    (data / "sub").mkdir()
    long_name = "v" * 240 + ".mp4"
    (data / long_name).write_bytes(faces["video"])
    (data / "price $5 and $x^$.mp4").write_bytes(faces["video"])
    (data / "x" / "L.png").write_bytes(faces["png"])
    (data / "x__L.png").write_bytes(faces["png"])
    (data / "e" / "L.png").write_bytes(faces["png"])
    with open(os.path.join(os.fsencode(data), b"caf\xe9.png"), "wb") as f:  # a Latin-1 name: not UTF-8
        f.write(faces["png"])
    (data / "sub" / "loop").symlink_to("..")  # a folder scan must not walk it twice
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "linked.png").write_bytes(faces["png"])
    (data / "linked").symlink_to(other)  # a symlinked folder: followed once
    literal = tmp_path / "$HOME [1].png"  # an existing file: taken literally, not expanded
    literal.write_bytes(faces["png"])

    out = tmp_path / "out"
    assert cli(*predict_args(checkpoints["frame"], [data, literal, data / "x" / "L.png"], out)) == 0
    pred = out / "predictions"
    summary = json.loads((pred / "summary.json").read_text())
    assert summary["inputs"] == 8 and summary["status_counts"] == {"ok": 8}, summary["status_counts"]
    inputs = pd.read_csv(pred / "inputs.csv")
    assert len(inputs) == 8 and inputs["input"].is_unique
    assert any("caf\\xe9.png" in i for i in inputs["input"])  # the undecodable byte, written as an escape
    assert any(i.endswith("$HOME [1].png") for i in inputs["input"])
    per_input = list((pred / "csv").iterdir())
    assert len(per_input) == 8 and all(p.suffix == ".csv" for p in per_input)
    for path in [*per_input, *(pred / "plots").iterdir()]:
        assert len(os.fsencode(path.name)) <= 255, path.name
        path.name.encode("utf-8")  # every output name is valid text
    rows = pd.concat(pd.read_csv(p) for p in per_input)
    combined = pd.read_csv(pred / "predictions.csv")
    assert len(rows) == len(combined) == 2 * faces["frames"] + 6 and (combined["face_detected"] == 1).all()
    assert sorted(p.name for p in (pred / "plots").iterdir() if p.name.endswith("_timeline.png")).__len__() == 2


def test_rows_are_on_disk_before_the_run_ends(checkpoints, faces, tmp_path, monkeypatch):
    """A crash in the middle of the second video keeps the first video's CSV and the second's first
    frames on disk (rows are written as each window of frames is predicted); no summary is written."""
    data = tmp_path / "data"
    data.mkdir()
    for name in ("a.mp4", "b.mp4"):
        (data / name).write_bytes(faces["video"])
    real = media_module.iter_video

    def crashing(path, *args, **kwargs):
        for k, item in enumerate(real(path, *args, **kwargs)):
            if path.endswith("b.mp4") and k == 10:
                raise RuntimeError("power cut")
            yield item

    monkeypatch.setattr(media_module, "iter_video", crashing)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="power cut"):
        run_predict(checkpoints["frame"], [data / "a.mp4", data / "b.mp4"], out,
                    [*NO_PROGRESS, "--data.init_args.detect_batch_size", "4", "--data.init_args.batch_size", "4"])  # fmt: skip
    pred = out / "predictions"
    done = pd.read_csv(pred / "csv" / "a.mp4.csv")
    assert done["frame"].tolist() == list(range(faces["frames"])) and done["valence"].notna().all()
    (partial,) = (pred / "csv").glob(".part-*b.mp4.csv")  # the input in progress: a temporary name
    rows = pd.read_csv(partial)
    assert 4 <= len(rows) < 10 and rows["frame"].tolist() == list(range(len(rows))) and rows["valence"].notna().all()
    assert not (pred / "summary.json").exists() and not (pred / "csv" / "b.mp4.csv").exists()


def test_non_finite_outputs_are_counted_never_labelled(checkpoints, faces, tmp_path, capsys):
    """NaN weights: no expression label, empty probabilities, status ``non_finite``; no input ``ok``
    -> exit 2 with one line; every input has a status and every status is counted."""
    (tmp_path / "face.png").write_bytes(faces["png"])
    out = tmp_path / "out"
    code = cli(*predict_args(checkpoints["nan"], [tmp_path / "face.png", tmp_path / "missing.jpg"], out))
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    (line,) = [e for e in err.splitlines() if e.startswith("affect: error:")]
    assert "no input" in line and "non_finite" in line, line
    pred = out / "predictions"
    df = pd.read_csv(pred / "predictions.csv", keep_default_na=False)
    assert len(df) == 1 and df.loc[0, "expression"] == "" and df.loc[0, "face_detected"] == 1
    assert (df.loc[0, ["valence", *EXPR_CLASSES]] == "").all()  # empty, never a value
    summary = json.loads((pred / "summary.json").read_text())
    assert summary["status_counts"] == {"non_finite": 1, "not_found": 1} and summary["non_finite_faces"] == 1
    inputs = pd.read_csv(pred / "inputs.csv")
    assert inputs["status"].tolist() == ["non_finite", "not_found"] and inputs["non_finite_faces"].tolist() == [1, 0]


def test_rerun_is_refused_or_a_clean_replacement(checkpoints, faces, tmp_path, capsys):
    (tmp_path / "one.png").write_bytes(faces["png"])
    (tmp_path / "two.png").write_bytes(faces["png"])
    out = tmp_path / "out"
    assert cli(*predict_args(checkpoints["frame"], [tmp_path / "one.png"], out)) == 0
    pred = out / "predictions"
    (pred / "csv" / "stale.csv.part").write_text("left by a crashed run\n")
    capsys.readouterr()
    assert cli(*predict_args(checkpoints["frame"], [tmp_path / "two.png"], out)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "SaveConfigCallback" not in err
    (line,) = [e for e in err.splitlines() if e.startswith("affect: error:")]
    assert "--overwrite" in line and str(out) in line, line
    assert (pred / "csv" / "one.png.csv").exists()  # the refused run touched nothing

    args = predict_args(checkpoints["frame"], [tmp_path / "two.png"], out)
    assert cli(*args, "--trainer.callbacks.init_args.overwrite", "true") == 0
    assert sorted(p.name for p in (pred / "csv").iterdir()) == ["two.png.csv"]
    assert sorted(p.name for p in (pred / "plots").iterdir()) == ["contact_sheet.png"]
    assert sorted(p.name for p in pred.iterdir()) == ["csv", "inputs.csv", "plots", "predictions.csv", "summary.json"]
    assert pd.read_csv(pred / "predictions.csv")["input"].tolist() == [str(tmp_path / "two.png")]
    assert "two.png" in (out / "config.yaml").read_text()


def test_a_run_with_no_usable_input_exits_non_zero(checkpoints, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli(*predict_args(checkpoints["frame"], [tmp_path / "a.jpg", tmp_path / "b.mp4"], out)) == 2
    (line,) = [e for e in capsys.readouterr().err.splitlines() if e.startswith("affect: error:")]
    assert "no input" in line and "not_found" in line
    summary = json.loads((out / "predictions" / "summary.json").read_text())
    assert summary["status_counts"] == {"not_found": 2} and summary["bad_inputs"]["not_found"][1]["input"].endswith("b.mp4")
