"""``affect predict --config experiments/predict/media.yaml`` end to end through the real CLI.

Tiny models are trained first through the real ``affect fit`` on the Aff-Wild2 fixture (a frame model,
FaceBehaviorNet with VA + EXPR + AU at 32x32, and a sequence model, AffWildNet), then run on a real
video, real photos and generated bad inputs. Predictions are checked against the model applied to
crops aligned independently from the CSV's own 5 points.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import affect.cli
from affect.face import align_face, iter_video_frames
from affect.labels import EXPR_CLASSES
from affect.predict import CONFIG, run_predict
from affect.predict.columns import META_COLUMNS, au_columns

pytestmark = [pytest.mark.slow]
IMAGE = 32
MODELS = {
    "frames": {"class_path": "affect.models.facebehaviornet.FaceBehaviorNetModule",
               "init_args": {"backbone": "test_resnet", "hidden": 16}},
    "sequence": {"class_path": "affect.models.affwildnet.AffWildNetModule",
                 "init_args": {"backbone": "test_resnet", "fc_units": 16, "rnn_hidden": 8}},
}  # fmt: skip
NO_PROGRESS = ["--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false", "--data.init_args.progress", "false"]


def train(kind: str, data: Path, work: Path) -> Path:
    cfg = {
        "seed_everything": 0,
        "model": MODELS[kind],
        "data": {"class_path": "affect.data.corpora.affwild2.AffWild2DataModule",
                 "init_args": {"root": str(data / "Aff-Wild2"), "batch_size": 4, "num_workers": 0, "image_size": IMAGE,
                               "sequence_length": 4 if kind == "sequence" else None}},
        "trainer": {"accelerator": "cpu", "max_steps": 2, "limit_val_batches": 1, "num_sanity_val_steps": 0,
                    "logger": False, "enable_progress_bar": False, "enable_model_summary": False,
                    "default_root_dir": str(work / kind)},
    }  # fmt: skip
    path = work / f"{kind}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    affect.cli.main(["fit", "--config", str(path)])
    (ckpt,) = (work / kind).rglob("last.ckpt")
    return ckpt


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    from affect.data.fixtures import write_fixture_tree

    work = tmp_path_factory.mktemp("predict_models")
    data = write_fixture_tree(work / "data", ["affwild2"], {"affwild2": {"size": IMAGE}})
    return {kind: train(kind, data, work) for kind in MODELS}


@pytest.fixture
def media(shared_data, bad_inputs, tmp_path) -> dict[str, Path]:
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("0-f1-su-ph.jpg", "img1.png", "free-mountain-vector-01.jpg"):
        shutil.copy(shared_data / "faces" / "pyfeat" / name, photos / name)
    return {"video": shared_data / "videos" / "pyfeat" / "single_face.mp4", "photos": photos, **bad_inputs}


def reference(module, frame_rgb: np.ndarray, row: pd.Series) -> dict[str, np.ndarray]:
    points = np.array([[row[f"{n}_x"], row[f"{n}_y"]] for n in ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")])
    crop, _, _ = align_face(frame_rgb, points5=points, size=IMAGE)
    with torch.no_grad():
        out = module(torch.from_numpy(crop).permute(2, 0, 1)[None])
    return {"va": out["va"][0].numpy(), "expr": out["expr"].softmax(-1)[0].numpy(), "au": out["au"].sigmoid()[0].numpy()}


def test_predict_on_video_photos_and_bad_inputs(checkpoints, media, tmp_path, capsys):
    from affect.models.facebehaviornet import FaceBehaviorNetModule

    ckpt = checkpoints["frames"]
    out = tmp_path / "out"
    inputs = [media["video"], media["photos"], *(media[k] for k in ("empty", "unreadable", "unreadable_image", "too_small",
                                                                  "no_face", "truncated"))]  # fmt: skip
    summary = run_predict(ckpt, inputs, out, [*NO_PROGRESS, "--data.init_args.frame_stride", "8",
                                              "--trainer.callbacks.init_args.annotate_video", "true"])  # fmt: skip
    line = capsys.readouterr().out
    assert "affect predict: 10 inputs (5 images, 5 videos)" in line and "empty: zero_bytes.mp4" in line, line
    assert summary["status_counts"] == {"empty": 1, "no_face": 2, "ok": 3, "too_small": 1, "truncated": 1, "unreadable": 2}
    named = {b["input"] for items in summary["bad_inputs"].values() for b in items}
    assert str(media["photos"] / "free-mountain-vector-01.jpg") in named

    pred_dir = out / "predictions"
    df = pd.read_csv(pred_dir / "predictions.csv", keep_default_na=True)
    spaces = torch.load(ckpt, weights_only=True)["affect"]
    aus = au_columns(spaces["au_set"])
    assert list(df.columns) == [*META_COLUMNS, "valence", "arousal", *EXPR_CLASSES, "expression", *aus]

    video = df[df["input"] == str(media["video"])]
    assert video["frame"].tolist() == list(range(0, 72, 8)) and (video["face_detected"] == 1).all()
    assert (video["face_id"] == 0).all() and (np.diff(video["time_s"]) > 0).all()
    faces = df[df["face_detected"] == 1]
    np.testing.assert_allclose(faces[list(EXPR_CLASSES)].sum(1), 1.0, atol=1e-4)
    assert (faces["expression"] == faces[list(EXPR_CLASSES)].idxmax(axis=1)).all()
    assert ((faces[aus] >= 0) & (faces[aus] <= 1)).all().all()
    no_face = df[df["face_detected"] == 0]
    assert no_face[["valence", *EXPR_CLASSES, *aus]].isna().all().all()
    assert set(no_face["input"]) == {str(media[k]) for k in ("too_small", "no_face", "truncated")} | {
        str(media["photos"] / "free-mountain-vector-01.jpg")}  # fmt: skip

    # the predictions are the model's on crops aligned from the CSV's own points (source pixels)
    module = FaceBehaviorNetModule.load_from_checkpoint(ckpt, map_location="cpu").eval()
    frames = dict(iter_video_frames(media["video"], indices=[0, 32]))
    for k, rgb in frames.items():
        row = video[video["frame"] == k].iloc[0]
        ref = reference(module, rgb, row)
        np.testing.assert_allclose(row[["valence", "arousal"]].to_numpy(float), ref["va"], atol=2e-3)
        np.testing.assert_allclose(row[list(EXPR_CLASSES)].to_numpy(float), ref["expr"], atol=2e-3)
        np.testing.assert_allclose(row[aus].to_numpy(float), ref["au"], atol=2e-3)

    # per-input files, plots, annotated video, summary
    per_input = sorted(p.name for p in (pred_dir / "csv").glob("*.csv"))
    assert "single_face.mp4.csv" in per_input and "img1.png.csv" in per_input
    assert pd.read_csv(pred_dir / "csv" / "single_face.mp4.csv").equals(video.reset_index(drop=True))
    from PIL import Image

    for png in ("single_face.mp4_timeline.png", "contact_sheet.png"):
        with Image.open(pred_dir / "plots" / png) as im:
            assert im.size[0] > 300 and im.size[1] > 200
    assert len(summary["outputs"]["videos"]) == 3  # every decodable video, with or without faces
    (mp4,) = [v for v in summary["outputs"]["videos"] if Path(v).name == "single_face.mp4_annotated.mp4"]
    annotated = [f for _, f in iter_video_frames(mp4)]
    assert len(annotated) == 72 and annotated[0].shape == (360, 640, 3)
    row = video.iloc[0]
    x, y = int(row["box_x"]), int(row["box_y"] + row["box_h"] / 2)  # left edge of the box: drawn green
    edge = annotated[0][y, x - 1 : x + 2].astype(int)
    assert (edge[:, 1] - edge[:, 0] > 80).any(), edge
    saved = json.loads((pred_dir / "summary.json").read_text())
    assert saved["faces"] == summary["faces"] == int(df["face_detected"].sum())
    inputs = pd.read_csv(pred_dir / "inputs.csv")
    assert len(inputs) == 10 and set(inputs["status"]) == set(summary["status_counts"])


def test_sequence_model_runs_over_tracks(checkpoints, shared_data, tmp_path, crops_from_csv):
    """AffWildNet (a GRU over frames) gets each face track as sequences: its per-frame VA equals the model
    run on the track's crops in order."""
    from affect.models.affwildnet import AffWildNetModule

    video = shared_data / "videos" / "pyfeat" / "single_face.mp4"
    out = tmp_path / "seq"
    summary = run_predict(checkpoints["sequence"], video, out, [*NO_PROGRESS, "--data.init_args.frame_stride", "8",
                                                                "--data.init_args.sequence_length", "5"])  # fmt: skip
    assert summary["faces"] == 9
    df = pd.read_csv(out / "predictions" / "predictions.csv")
    assert "valence" in df and "Neutral" not in df and df["valence"].notna().all()
    module = AffWildNetModule.load_from_checkpoint(checkpoints["sequence"], map_location="cpu").eval()
    frames = dict(iter_video_frames(video, indices=df["frame"].tolist()))
    images = torch.from_numpy(crops_from_csv(frames, df, IMAGE))
    def run(x):  # MTCNN gives 5 points, not 68: landmarks are absent (mask False)
        return module(x[None], torch.zeros(1, len(x), 68, 2), torch.zeros(1, len(x), dtype=torch.bool))["va"][0]

    with torch.no_grad():  # windows of 5: frames 0-4 and 5-8 (+ one padded frame)
        va = torch.cat([run(images[:5]), run(images[5:])]).numpy()
    np.testing.assert_allclose(df[["valence", "arousal"]].to_numpy(), va, atol=2e-3)


def test_predict_config_header_is_the_command():
    first = CONFIG.read_text().splitlines()[0]
    assert first.startswith("# affect predict --config experiments/predict/media.yaml --ckpt_path")
