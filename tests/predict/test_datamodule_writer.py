"""The face stream's batches and the writer's rows, without a detector (hand-built face tables)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from affect.labels import EXPR_CLASSES
from affect.predict.datamodule import input_spec, track_windows
from affect.predict.media import FaceTable, InputReport, _row
from affect.predict.stream import FaceStream
from affect.predict.writer import MediaPredictionWriter, safe_names


def table_of(n_frames: int, faces_per_frame: list[int], name: str = "v.mp4", frame0: int = 0) -> FaceTable:
    from affect.face import Face

    t = FaceTable()
    for k in range(frame0, frame0 + n_frames):
        n = faces_per_frame[k - frame0]
        if not n:
            t.rows.append(_row(name, "video", k, k / 10, None, -1, False, -1))
        for f in range(n):
            box = np.array([10 + 40 * f, 10, 40 + 40 * f, 40], np.float32)
            face = Face(box=box, score=0.99, points=np.full((5, 2), 20 + f, np.float32))
            t.rows.append(_row(name, "video", k, k / 10, face, f, False, len(t.crops)))
            t.crops.append(np.full((8, 8, 3), len(t.crops), np.uint8))
    return t


class Pieces:
    """An extractor that hands out prepared pieces: ``[(table, report or None), ...]``."""

    def __init__(self, pieces):
        self.pieces = pieces

    def stream(self, inputs, progress=None):
        yield from self.pieces


class Sink:
    def __init__(self):
        self.rows, self.preds, self.finished = [], [], []

    def write_rows(self, rows, preds, crops):
        self.rows += [(r["input"], r["frame"], r["face_id"]) for r in rows]
        self.preds += preds

    def finish_input(self, report):
        self.finished.append((report.input, len(self.rows)))


def split(t: FaceTable, n: int) -> tuple[FaceTable, FaceTable]:
    """The first ``n`` rows and the rest, as two pieces (crop indices per piece)."""
    k = sum(r["crop"] >= 0 for r in t.rows[:n])
    rest = [dict(r, crop=r["crop"] - k if r["crop"] >= 0 else -1) for r in t.rows[n:]]
    return FaceTable(rows=t.rows[:n], crops=t.crops[:k]), FaceTable(rows=rest, crops=t.crops[k:])


def report(name: str, t: FaceTable, frames: int) -> InputReport:
    return InputReport(name, "video", frames=frames, faces=len(t.crops))


def test_frame_batches_rows_out_in_order_once_predicted():
    t = table_of(4, [1, 2, 0, 1])  # rows: 0 f0, 1 f0, 2 f1, 3 none, 4 f0
    sink = Sink()
    stream = FaceStream(Pieces([(t, report("v.mp4", t, 4))]), ["v.mp4"], sink, batch_size=3)
    batches = list(stream)
    assert [b["row"].tolist() for b in batches] == [[0, 1, 2], [4]]  # a video's last partial batch is sent at its end
    b = batches[0]
    assert b["image"].shape == (3, 3, 8, 8) and b["image"].dtype == torch.uint8 and b["image"][:, 0, 0, 0].tolist() == [0, 1, 2]
    assert b["landmarks"].shape == (3, 68, 2) and not b["landmarks_mask"].any()
    assert sink.rows == [] and stream.arrays == {}  # nothing is out before its prediction; crops left with their batch
    stream.receive(torch.tensor([4]), {"va": torch.tensor([[0.4, -0.4]])})
    assert sink.rows == []  # row 4 waits for rows 0-2
    stream.receive(torch.tensor([0, 1, 2]), {"va": torch.tensor([[0.0, 0.0], [0.1, 0.1], [0.2, 0.2]])})
    assert [r[1] for r in sink.rows] == [0, 1, 1, 2, 3] and sink.finished == [("v.mp4", 5)]
    assert sink.preds[3] is None and sink.preds[4]["va"].tolist() == pytest.approx([0.4, -0.4])
    assert stream.rows == {} and stream.pending == 0


def test_windows_are_track_windows_and_close_when_a_track_ends():
    """Windows over pieces equal ``track_windows`` over the whole table; a track the tracker has
    ended (unseen for more than max_gap frames) is sent before its input ends."""
    t = table_of(4, [1, 2, 0, 1])
    sink = Sink()
    first, rest = split(t, 3)
    stream = FaceStream(Pieces([(first, None), (rest, report("v.mp4", t, 4))]), ["v.mp4"], sink,
                        batch_size=8, window_length=2)  # fmt: skip
    windows = [w for b in stream for w in b["row"].tolist()]
    assert sorted(sorted(i for i in w if i >= 0) for w in windows) == sorted(track_windows(t.rows, 2))
    b = next(iter(FaceStream(Pieces([(table_of(4, [1, 2, 0, 1]), report("v.mp4", t, 4))]), ["v.mp4"], Sink(),
                             batch_size=8, window_length=2)))  # fmt: skip
    assert b["image"].shape == (3, 2, 3, 8, 8) and b["frame_mask"].tolist() == [[True, True], [True, False], [True, False]]

    # face 1 seen at frame 0 only; with max_gap 2 its window is sent once frame 3 is in
    early = table_of(4, [2, 1, 1, 1])
    stream = FaceStream(Pieces([(p, None) for p in split(early, 4)]), ["v.mp4"], Sink(), batch_size=1, window_length=5, max_gap_frames=2)  # fmt: skip
    first_batch = next(iter(stream))
    assert first_batch["row"].tolist() == [[1, -1, -1, -1, -1]]  # face 1's window, before the input ends


def test_writer_rows_frame_empties_non_finite_outputs(tmp_path):
    t = table_of(3, [1, 0, 1])  # rows: 0 face, 1 no face, 2 face
    writer = MediaPredictionWriter(plots=False)
    writer.start(["v.mp4"], {"au_set": [4, 12]}, None)
    writer.layout = [("va", ["valence", "arousal"], None, []), ("expr", list(EXPR_CLASSES), "expression", list(EXPR_CLASSES)),
                     ("au", ["AU04", "AU12"], None, [])]  # fmt: skip
    expr = torch.softmax(torch.arange(14.0).reshape(2, 7), -1).numpy()
    preds = [{"va": np.array([0.5, -0.5]), "expr": expr[0], "au": np.array([0.7, 0.7])}, None,
             {"va": np.array([np.nan, 0.2]), "expr": np.full(7, np.nan), "au": np.array([0.1, np.inf])}]  # fmt: skip
    df, bad = writer.rows_frame(t.rows, preds)
    assert bad == 1
    np.testing.assert_allclose(df[["valence", "arousal"]].to_numpy(float), [[0.5, -0.5], [np.nan, np.nan], [np.nan, np.nan]])
    np.testing.assert_allclose(df.loc[0, list(EXPR_CLASSES)].to_numpy(float), expr[0], rtol=1e-6)
    assert df["expression"].tolist() == ["Surprise", "", ""]  # never the argmax of NaN
    assert df.loc[[1, 2], ["AU04", "AU12"]].isna().all().all() and df.loc[0, "AU12"] == pytest.approx(0.7)
    assert "crop" not in df and df["face_detected"].tolist() == [1, 0, 1]


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


def test_safe_names_are_unique_bounded_and_safe():
    names = safe_names(["/a/x/v.mp4", "/b/x/v.mp4", "/c/y.jpg", "/d/y.jpg"])
    assert names == {"/a/x/v.mp4": "a__x__v.mp4", "/b/x/v.mp4": "b__x__v.mp4", "/c/y.jpg": "c__y.jpg", "/d/y.jpg": "d__y.jpg"}
    clash = safe_names(["/d/x/L.jpg", "/d/x__L.jpg", "/e/L.JPG", "/e/l.jpg"])  # flattened alike; alike but for case
    assert len({n.casefold() for n in clash.values()}) == 4 and all(n.lower().endswith(".jpg") for n in clash.values())
    long = safe_names(["/d/" + "é" * 200 + ".mp4", "/d/.hidden\n.png", "/d/caf\udce9.png"])
    assert all(len(n.encode()) <= 200 for n in long.values()) and long["/d/" + "é" * 200 + ".mp4"].endswith(".mp4")
    assert long["/d/.hidden\n.png"] == "_hidden_.png" and long["/d/caf\udce9.png"] == "caf%E9.png"


def test_windows_carry_each_faces_spectrogram_and_skip_faces_without_one():
    t = table_of(4, [1, 2, 0, 1])  # rows: 0 f0, 1 f0, 2 f1, 3 none, 4 f0
    t.audio = [np.full((1, 4, 4), k, np.uint8) for k in range(3)]  # image k is all k
    for r, spec in zip(t.rows, [0, 1, -1, -1, 2], strict=True):  # frame 1's second face has no audio image
        r["spec"] = spec
    stream = FaceStream(Pieces([(t, report("v.mp4", t, 4))]), ["v.mp4"], Sink(), batch_size=4, window_length=3, audio=True)
    (b,) = list(stream)
    assert b["row"].tolist() == [[0, 1, 4]]
    assert b["audio"].shape == (1, 3, 1, 4, 4) and b["audio"].dtype == torch.uint8
    assert b["audio"][0, :, 0, 0, 0].tolist() == [0, 1, 2] and b["image"][0, :, 0, 0, 0].tolist() == [0, 1, 3]
    (one,) = list(FaceStream(Pieces([(t, report("v.mp4", t, 4))]), ["v.mp4"], Sink(), batch_size=4, audio=True))
    assert one["audio"].shape == (3, 1, 4, 4) and one["row"].tolist() == [0, 1, 4]
