"""``affect.Analyzer`` / ``affect.plot_timeline`` against the real ``affect predict`` command.

Tiny models (test backbone, 32x32 crops, fixed seeds) saved as Lightning checkpoints; generated
media: drawn faces as PNG / JPEG photos and a short H.264 clip, plus the generated bad inputs of
``conftest.py``. The command's ``predictions.csv`` (written with 6 significant digits) is the
reference for :meth:`Analyzer.predict`; :meth:`Analyzer.predict` on the clip is the reference for
:meth:`Analyzer.predict_frames` on its decoded frames.
"""

from __future__ import annotations

import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import affect
from affect.errors import CheckpointError, ConfigError, MissingInputError
from affect.labels import EXPR_CLASSES
from affect.predict.columns import META_COLUMNS, au_columns

IMAGE = 32
NO_PROGRESS = ["--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false", "--data.init_args.progress", "false"]


def save_checkpoint(module, path: Path, class_path: str | None, cli: bool = True) -> Path:
    """``module`` saved as Lightning saves it, with the class path (and, ``cli``, the instantiator) that
    ``affect fit`` records."""
    import lightning as L

    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)  # fmt: skip
    trainer.strategy.connect(module)
    trainer.save_checkpoint(path)
    ckpt = torch.load(path, weights_only=True)
    if class_path is not None:
        ckpt["hyper_parameters"]["_class_path"] = class_path
        if cli:
            ckpt["hyper_parameters"]["_instantiator"] = "lightning.pytorch.cli.instantiate_module"
    torch.save(ckpt, path)
    return path


def frame_model():
    from affect.models.facebehaviornet import FaceBehaviorNetModule

    torch.manual_seed(0)
    return FaceBehaviorNetModule(backbone="test_resnet", hidden=16, image_size=IMAGE).eval()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("analyzer_model") / "fbn.ckpt"
    return save_checkpoint(frame_model(), path, "affect.models.facebehaviornet.FaceBehaviorNetModule")


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    """Two drawn-face photos (PNG, JPEG) in a folder and a 12-frame clip of a drawn face (128 px, 10 fps)."""
    from PIL import Image

    from affect.data.synthetic import face_sequence
    from affect.io import write_video

    folder = tmp_path_factory.mktemp("analyzer_media")
    photos = folder / "photos"
    photos.mkdir()
    for seed, name in ((1, "a.png"), (2, "b.jpg")):
        img, _, _ = face_sequence(np.random.default_rng(seed), 1, size=112)
        Image.fromarray(img[0]).save(photos / name, quality=95)
    frames, _, _ = face_sequence(np.random.default_rng(3), 12, size=128, fps=10)
    return {"photos": photos, "video": write_video(folder / "clip.mp4", frames, fps=10)}


def assert_same_table(ours: pd.DataFrame, theirs: pd.DataFrame, tol: float = 1e-5, px_tol: float | None = None) -> None:
    """Same columns and rows; numbers within ``tol`` (absolute + relative: the CSV keeps 6 digits), the
    box and point columns within ``px_tol`` pixels when given."""
    assert list(ours.columns) == list(theirs.columns)
    assert len(ours) == len(theirs)
    px = {c for c in ours.columns if c.startswith("box_") or c.endswith(("_x", "_y"))}
    for col in ours.columns:
        a, b = ours[col].reset_index(drop=True), theirs[col].reset_index(drop=True)
        if pd.api.types.is_numeric_dtype(b) and pd.api.types.is_numeric_dtype(a):
            t, r = (px_tol, 0.0) if px_tol is not None and col in px else (tol, tol)
            np.testing.assert_allclose(a.to_numpy(float), b.to_numpy(float), rtol=r, atol=t, err_msg=col)
        else:
            assert a.fillna("").astype(str).tolist() == b.fillna("").astype(str).tolist(), col


@pytest.mark.slow
def test_predict_equals_the_command(ckpt, media, bad_inputs, tmp_path):
    """Photos (a folder), a clip and every kind of bad input: the DataFrame is ``predictions.csv`` and
    ``last_inputs`` is ``inputs.csv`` of the real command on the same inputs."""
    from affect.predict import run_predict

    inputs = [media["photos"], media["video"], *bad_inputs.values(), tmp_path / "missing.jpg"]
    run_predict(ckpt, inputs, tmp_path / "cli", NO_PROGRESS)
    csv = pd.read_csv(tmp_path / "cli" / "predictions" / "predictions.csv")
    statuses = pd.read_csv(tmp_path / "cli" / "predictions" / "inputs.csv")

    analyzer = affect.Analyzer(ckpt, device="cpu")
    with pytest.warns(UserWarning, match=r"not ok .*zero_bytes.mp4: empty.*missing.jpg: not_found"):
        df = analyzer.predict([str(i) for i in inputs])
    aus = au_columns(torch.load(ckpt, weights_only=True)["affect"]["au_set"])
    assert list(df.columns) == [*META_COLUMNS, "valence", "arousal", *EXPR_CLASSES, "expression", *aus]
    assert_same_table(df, csv)
    assert df["face_detected"].sum() == 14  # 2 photos + 12 frames of the clip: every drawn face found
    assert analyzer.last_inputs["status"].tolist() == statuses["status"].tolist()
    expected = {"empty": 1, "too_small": 1, "no_face": 1, "truncated": 1, "unreadable": 2, "not_found": 1, "ok": 3}
    assert analyzer.last_inputs["status"].value_counts().to_dict() == expected


@pytest.mark.slow
def test_predict_frames_equals_predict_on_the_file(ckpt, media):
    """The clip's decoded frames in one call, and one frame per call with ``keep_tracks``: the rows of
    ``predict`` on the file (``detect_every 2``: the carried frames too)."""
    from affect.predict.media import iter_video

    decoded = [(rgb, t) for _, t, rgb, _ in iter_video(str(media["video"]), 1)]
    frames, times = [f for f, _ in decoded], [t for _, t in decoded]
    analyzer = affect.Analyzer(ckpt, device="cpu", detect_every=2)
    ref = analyzer.predict(media["video"])
    assert ref["carried"].tolist() == [0, 1] * 6 and (ref["face_detected"] == 1).all()
    ref = ref.assign(input="webcam")

    whole = analyzer.predict_frames(np.stack(frames), times, name="webcam")
    assert_same_table(whole, ref, tol=1e-6)
    assert analyzer.last_inputs[["status", "frames", "faces", "width"]].values.tolist() == [["ok", 12, 12, 128]]

    analyzer.reset()  # else the first call below would continue the stream of the call above (frames 12, 13, ...)
    one_by_one = [analyzer.predict_frames(f, [t], name="webcam", keep_tracks=True) for f, t in decoded]
    live = pd.concat(one_by_one, ignore_index=True)
    assert live["frame"].tolist() == list(range(12)) and live["face_id"].tolist() == [0] * 12
    # MTCNN on one frame at a time instead of batches: the same boxes and outputs up to float noise,
    # which the carried faces' refinement (each frame's from the last one's points) carries along
    # (measured: 0.02 px at most on this clip, outputs 6e-6)
    assert_same_table(live, ref, tol=1e-4, px_tol=0.05)
    fresh = analyzer.predict_frames(frames[0], name="webcam")  # no keep_tracks: a new clip
    assert fresh["frame"].tolist() == [0] and np.isnan(fresh["time_s"]).all()


@pytest.mark.slow
def test_sequence_model_windows_and_av_model_refused(media):
    """A sequence model (AffWildNet) gets the call's track windows: as on the file; an A/V model is refused
    by ``predict_frames`` (frames in memory have no audio)."""
    from affect.models.affwildnet import AffWildNetModule
    from affect.models.mt_vgg_gru import AVMTVGGGRUModule
    from affect.predict.media import iter_video

    torch.manual_seed(0)
    seq = AffWildNetModule(backbone="test_resnet", fc_units=16, rnn_hidden=8, image_size=IMAGE)
    analyzer = affect.Analyzer(model=seq, device="cpu", sequence_length=5)
    ref = analyzer.predict(media["video"])
    assert ref["valence"].notna().all() and "Neutral" not in ref
    decoded = list(iter_video(str(media["video"]), 1))
    got = analyzer.predict_frames([f for _, _, f, _ in decoded], [t for _, t, _, _ in decoded], name=str(media["video"]))
    assert_same_table(got, ref, tol=1e-6)

    av = AVMTVGGGRUModule(backbone="test_resnet", hidden=16, rnn_hidden=8, dropout=0.0, image_size=IMAGE, audio_size=32)
    with pytest.raises(ConfigError, match="reads the audio of a video"):
        affect.Analyzer(model=av, device="cpu").predict_frames(decoded[0][2])


def test_bad_frames_and_arguments():
    analyzer = affect.Analyzer(model=frame_model(), device="cpu")
    rgb = np.zeros((64, 64, 3), np.uint8)
    cases = [
        (rgb.astype(np.float32), r"frame 0 is a float32 array of shape \(64, 64, 3\); expected RGB uint8"),
        ([rgb, rgb[..., 0]], r"frame 1 is a uint8 array of shape \(64, 64\)"),
        (np.zeros((2, 3)), r"frames of shape \(2, 3\)"),
        ("clip.mp4", r"frame 0 is a str"),
        (7, "frames must be RGB arrays"),
    ]
    for frames, message in cases:
        with pytest.raises(ConfigError, match=message):
            analyzer.predict_frames(frames)
    with pytest.raises(ConfigError, match="2 times for 1 frames"):
        analyzer.predict_frames(rgb, times=[0.0, 0.1])
    with pytest.raises(ConfigError, match="1 times for more frames"):
        analyzer.predict_frames([rgb, rgb], times=[0.0])
    empty = analyzer.predict_frames([])
    assert analyzer.last_inputs["status"].tolist() == ["empty"]
    columns = [*META_COLUMNS, "valence", "arousal", *EXPR_CLASSES, "expression", *au_columns(analyzer.spaces["au_set"])]
    assert empty.empty and list(empty.columns) == columns
    blank = analyzer.predict_frames([rgb, rgb])  # frames without a face are rows, never dropped
    assert analyzer.last_inputs[["status", "frames", "frames_without_face"]].values.tolist() == [["no_face", 2, 2]]
    assert blank["face_detected"].tolist() == [0, 0] and blank["face_id"].tolist() == [-1, -1]
    assert list(blank.columns) == columns and blank[columns[len(META_COLUMNS):]].replace("", np.nan).isna().all().all()
    with pytest.raises(ConfigError, match="not an option here"):
        affect.Analyzer(model=frame_model(), device="cpu", inputs=["x.jpg"])
    with pytest.raises(ConfigError, match="select is .biggest.; it takes"):
        affect.Analyzer(model=frame_model(), device="cpu", select="biggest")
    with pytest.raises(TypeError, match="detect_evry"):
        affect.Analyzer(model=frame_model(), device="cpu", detect_evry=2)
    with pytest.raises(ConfigError, match="not a torch device"):
        affect.Analyzer(model=frame_model(), device="gpu0")


def test_predict_without_any_media(tmp_path):
    analyzer = affect.Analyzer(model=frame_model(), device="cpu")
    (tmp_path / "notes.txt").write_text("no media here")
    with pytest.raises(MissingInputError, match="no image or video found"):
        analyzer.predict(tmp_path)


def test_checkpoint_errors(tmp_path):
    text = tmp_path / "notes.ckpt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="is not a PyTorch checkpoint"):
        affect.Analyzer(text, device="cpu")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        affect.Analyzer(tmp_path / "missing.ckpt", device="cpu")
    weights = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2)}, weights)
    with pytest.raises(CheckpointError, match="not a Lightning checkpoint"):
        affect.Analyzer(weights, device="cpu")
    unnamed = save_checkpoint(frame_model(), tmp_path / "unnamed.ckpt", None)
    with pytest.raises(CheckpointError, match="names no model class.*pass model_class"):
        affect.Analyzer(unnamed, device="cpu")
    from affect.models.facebehaviornet import FaceBehaviorNetModule

    loaded = affect.Analyzer(unnamed, device="cpu", model_class=FaceBehaviorNetModule)
    ref = frame_model()
    assert same_weights(loaded.model, ref)
    assert loaded.spaces["image_size"] == IMAGE and loaded.spaces["tasks"] == ["va", "expr", "au"]
    plain = save_checkpoint(frame_model(), tmp_path / "plain.ckpt", "affect.models.facebehaviornet.FaceBehaviorNetModule",
                            cli=False)  # fmt: skip
    assert same_weights(affect.Analyzer(plain, device="cpu").model, ref)
    foreign = save_checkpoint(frame_model(), tmp_path / "foreign.ckpt", "some_plugin.models.Net")
    with pytest.raises(CheckpointError, match="outside the affect package"):
        affect.Analyzer(foreign, device="cpu")
    assert "some_plugin" not in sys.modules


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_default_model_contract(monkeypatch):
    """``checkpoint=None``: ``affect.models.default.load_default_model(device)``'s module and entry; a
    clear error when this affect has no such module."""
    monkeypatch.setitem(sys.modules, "affect.models.default", None)  # not importable
    with pytest.raises(ConfigError, match="no default model"):
        affect.Analyzer(device="cpu")
    calls = []
    entry = {"image_size": 40, "expr_classes": list(EXPR_CLASSES), "tasks": ["expr"], "format": 2}

    def load_default_model(device="cpu"):
        calls.append(device)
        return frame_model(), dict(entry)

    fake = types.ModuleType("affect.models.default")
    fake.load_default_model = load_default_model
    monkeypatch.setitem(sys.modules, "affect.models.default", fake)
    analyzer = affect.Analyzer(device="cpu")
    assert calls == ["cpu"] and analyzer.checkpoint is None
    assert analyzer.spaces["image_size"] == 40 and analyzer.spaces["tasks"] == ["expr"]  # the entry wins


@pytest.mark.slow
def test_plot_timeline(ckpt, media, tmp_path):
    analyzer = affect.Analyzer(ckpt, device="cpu")
    df = analyzer.predict([media["video"], media["photos"]])
    png = tmp_path / "timeline.png"
    fig = affect.plot_timeline(df, path=png)  # the one video among the rows
    assert [ax.get_ylabel() for ax in fig.axes[:3]] == ["VA", "EXPR p", ""] and fig.axes[0].get_title() == str(
        media["video"])  # fmt: skip
    from PIL import Image

    with Image.open(png) as im:
        assert im.size[0] > 300 and im.size[1] > 200
    # the figure of predictions.csv read back is the same figure
    reread = affect.plot_timeline(pd.read_csv(_written(df, tmp_path)), input=media["video"])
    assert [len(ax.lines) + len(ax.collections) for ax in reread.axes] == [
        len(ax.lines) + len(ax.collections) for ax in fig.axes]  # fmt: skip
    two = pd.concat([df, df.assign(input="other.mp4")])
    with pytest.raises(ConfigError, match="2 videos"):
        affect.plot_timeline(two)
    with pytest.raises(ConfigError, match="no rows of input 'nope.mp4'"):
        affect.plot_timeline(df, input="nope.mp4")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        affect.plot_timeline(two, input="other.mp4")


def _written(df: pd.DataFrame, folder: Path) -> Path:
    path = folder / "predictions.csv"
    df.to_csv(path, index=False, float_format="%.6g")
    return path


def test_import_affect_stays_light():
    import subprocess

    code = "import sys, affect; print('torch' in sys.modules, 'pandas' in sys.modules, callable(affect.plot_timeline))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False", "True"]
