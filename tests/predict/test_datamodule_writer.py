"""Batches of the media datamodule and the writer's table, without a detector (hand-built face tables)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from affect.labels import EXPR_CLASSES
from affect.predict.datamodule import _Faces, _Windows, input_spec, track_windows
from affect.predict.media import FaceTable, InputReport, _row
from affect.predict.writer import MediaPredictionWriter, safe_names, summarise


def table_of(n_frames: int, faces_per_frame: list[int]) -> FaceTable:
    from affect.face import Face

    t = FaceTable()
    for k in range(n_frames):
        n = faces_per_frame[k]
        if not n:
            t.rows.append(_row("v.mp4", "video", k, k / 10, None, -1, False, -1))
        for f in range(n):
            box = np.array([10 + 40 * f, 10, 40 + 40 * f, 40], np.float32)
            face = Face(box=box, score=0.99, points=np.full((5, 2), 20 + f, np.float32))
            t.rows.append(_row("v.mp4", "video", k, k / 10, face, f, False, len(t.crops)))
            t.crops.append(np.full((8, 8, 3), len(t.crops), np.uint8))
    t.reports.append(InputReport("v.mp4", "video", frames=n_frames, faces=len(t.crops),
                                 frames_without_face=faces_per_frame.count(0)))  # fmt: skip
    return t


def test_frame_and_window_items():
    t = table_of(4, [1, 2, 0, 1])
    crops = np.stack(t.crops)
    crop_of = np.array([r["crop"] for r in t.rows])
    faces = _Faces(crops, np.array([i for i, r in enumerate(t.rows) if r["crop"] >= 0]), crop_of)
    item = faces[1]
    assert item["image"].shape == (3, 8, 8) and item["image"].dtype == torch.uint8 and int(item["image"][0, 0, 0]) == 1
    assert int(item["row"]) == 1 and item["landmarks"].shape == (68, 2) and not item["landmarks_mask"]
    windows = track_windows(t.rows, 2)
    assert windows == [[0, 1], [4], [2]]  # face 0: frames 0, 1, 3; face 1: frame 1; the no-face row 3 is in none
    ds = _Windows(crops, windows, 2, crop_of)
    w = ds[1]
    assert w["image"].shape == (2, 3, 8, 8) and w["row"].tolist() == [4, -1] and w["frame_mask"].tolist() == [True, False]
    one = _Windows(crops, [[0]], 1, crop_of)[0]
    assert one["image"].shape == (1, 3, 8, 8) and one["row"].tolist() == [0]


def test_modules_declare_what_predict_feeds_them():
    """Sequence or frame, image side and spectrogram side come from the module's ``input_spec``
    (declared by its network), never from its class name: a subclass with a new name keeps them."""
    from affect.models.affwildnet import AffWildNetModule
    from affect.models.batching import InputSpec
    from affect.models.facebehaviornet import FaceBehaviorNetModule
    from affect.models.mt_vgg_gru import AVMTVGGGRUModule, MTVGGGRUModule

    class Renamed(AffWildNetModule):
        pass

    assert input_spec(Renamed(backbone="test_resnet", fc_units=8, rnn_hidden=4, image_size=32), 96) == InputSpec(32, True)
    assert input_spec(FaceBehaviorNetModule(backbone="test_resnet", hidden=8, image_size=40), 96) == InputSpec(40, False)
    av = AVMTVGGGRUModule(backbone="test_resnet", hidden=8, rnn_hidden=4, image_size=32, audio_size=24)
    assert input_spec(av, 96) == InputSpec(32, True, 24)
    audio_only = MTVGGGRUModule(backbone="test_resnet", hidden=8, rnn_hidden=4, image_size=24, input_key="audio")
    assert input_spec(audio_only, 96) == InputSpec(24, True, 24)
    assert input_spec(object(), 48) == InputSpec(48)  # a module that declares nothing: frames of the data's side


def test_writer_scatters_sequence_predictions_by_row(tmp_path):
    t = table_of(3, [1, 0, 1])  # rows: 0 face, 1 no face, 2 face
    writer = MediaPredictionWriter(plots=False)
    writer.on_predict_start(None, None)
    va = torch.tensor([[[0.5, -0.5], [0.1, 0.2], [9.0, 9.0]]])  # [B=1, T=3, 2]; the last step is padding
    expr = torch.softmax(torch.arange(21.0).reshape(1, 3, 7), -1)
    au = torch.full((1, 3, 2), 0.7)
    batch = {"row": torch.tensor([[0, 2, -1]])}
    writer.write_on_batch_end(None, None, {"va": va, "expr": expr, "au": au}, None, batch, 0)
    df = writer.predictions_frame(t, {"au_set": [4, 12]})
    np.testing.assert_allclose(df[["valence", "arousal"]].to_numpy(), [[0.5, -0.5], [np.nan, np.nan], [0.1, 0.2]])
    np.testing.assert_allclose(df.loc[2, list(EXPR_CLASSES)].to_numpy(float), expr[0, 1].numpy(), rtol=1e-6)
    assert df["expression"].tolist() == ["Surprise", "", "Surprise"]
    assert df.loc[1, ["AU04", "AU12"]].isna().all()
    np.testing.assert_allclose(df.loc[[0, 2], ["AU04", "AU12"]].to_numpy(float), 0.7, rtol=1e-6)
    assert "crop" not in df and df["face_detected"].tolist() == [1, 0, 1]
    summary = summarise(t.reports, {}, tmp_path)
    assert (summary["frames"], summary["faces"], summary["frames_without_face"]) == (3, 2, 1)
    with pytest.raises(KeyError, match="'row'"):
        writer.write_on_batch_end(None, None, {"va": va}, None, {"image": va}, 0)


def test_safe_names_are_unique():
    names = safe_names(["/a/x/v.mp4", "/b/x/v.mp4", "/c/y.jpg", "/d/y.jpg"])
    assert names == {"/a/x/v.mp4": "a__x__v.mp4", "/b/x/v.mp4": "b__x__v.mp4", "/c/y.jpg": "c__y.jpg", "/d/y.jpg": "d__y.jpg"}
    assert len(set(names.values())) == 4


def test_windows_carry_each_faces_spectrogram_and_skip_faces_without_one():
    t = table_of(4, [1, 2, 0, 1])  # rows: 0 f0, 1 f0, 2 f1, 3 none, 4 f0
    crops = np.stack(t.crops)
    crop_of = np.array([r["crop"] for r in t.rows])
    audio = np.arange(3, dtype=np.uint8)[:, None, None, None] * np.ones((1, 1, 4, 4), np.uint8)  # image k is all k
    spec_of = np.array([0, 1, -1, -1, 2])  # frame 1's second face has no audio image
    usable = (crop_of >= 0) & (spec_of >= 0)
    windows = track_windows(t.rows, 3, usable)
    assert windows == [[0, 1, 4]]
    w = _Windows(crops, windows, 3, crop_of, audio, spec_of)[0]
    assert w["audio"].shape == (3, 1, 4, 4) and w["audio"].dtype == torch.uint8
    assert w["audio"][:, 0, 0, 0].tolist() == [0, 1, 2] and w["image"][:, 0, 0, 0].tolist() == [0, 1, 3]
    one = _Faces(crops, np.array([4]), crop_of, audio, spec_of)[0]
    assert one["audio"].shape == (1, 4, 4) and int(one["audio"][0, 0, 0]) == 2
