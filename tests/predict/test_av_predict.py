"""A/V models in ``affect predict`` (A/V-MT-VGG-GRU, paper Sec. VI-A.3): each face window gets its
frames' spectrogram images, made as ``affect prepare --audio`` makes them.

A tiny A/V-MT-VGG-GRU is trained here until its valence follows the loudness of its spectrogram
images, then run through the real CLI (``run_predict``) on procedural face videos with and without
audio, a still image and a real GRID clip. Predictions are checked against the network run by hand on
faces aligned from the CSV's own points and on spectrograms from ``affect.data.audio`` decoding the
whole video independently (so the frame-stride / timestamp matching is checked too).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from affect.data.audio import to_uint8, video_spectrogram_frames
from affect.errors import InputFileError
from affect.face import iter_video_frames
from affect.predict import run_predict

pytestmark = [pytest.mark.slow]
IMAGE = AUDIO = 32  # the sizes of the av_checkpoint fixture (conftest.py)
NO_PROGRESS = ["--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false", "--data.init_args.progress", "false"]


def by_hand(model, frames: dict, rows: pd.DataFrame, spectrograms: np.ndarray, window: int, crops_from_csv) -> np.ndarray:
    """VA of the trained module (in memory) run by hand on the rows' faces (aligned from the CSV's points)
    and ``spectrograms`` (uint8 [len(rows), 1, A, A]), in windows of ``window`` consecutive frames."""
    module = model[1]
    images = torch.from_numpy(crops_from_csv(frames, rows, IMAGE))
    audio = torch.from_numpy(spectrograms)
    with torch.no_grad():
        return torch.cat([module(images[None, s : s + window], audio[None, s : s + window])["va"][0]
                          for s in range(0, len(images), window)]).numpy()  # fmt: skip


def test_av_model_reads_each_frames_spectrogram(av_checkpoint, av_media, tmp_path, crops_from_csv):
    """Stride 2 and windows of 4: frames 0, 2, ..., 10 in windows [0-6] and [8, 10]; each frame's audio is
    the store's image of that frame (computed over every decoded frame, by timestamp)."""
    inputs = [av_media[k] for k in ("with_audio", "other_audio", "no_audio", "image")]
    summary = run_predict(av_checkpoint[0], inputs, tmp_path / "out", [*NO_PROGRESS, "--data.init_args.frame_stride", "2",
                                                                    "--data.init_args.sequence_length", "4"])  # fmt: skip
    assert summary["status_counts"] == {"no_audio": 2, "ok": 2}
    named = {b["input"]: b["detail"] for b in summary["bad_inputs"]["no_audio"]}
    assert set(named) == {str(av_media["no_audio"]), str(av_media["image"])}
    assert "has no audio stream" in named[str(av_media["no_audio"])] and "not run on its 6 faces" in named[str(av_media["no_audio"])]
    assert "an image has no audio track" in named[str(av_media["image"])]
    df = pd.read_csv(tmp_path / "out" / "predictions" / "predictions.csv")
    assert (df["face_detected"] == 1).all() and len(df) == 6 + 6 + 6 + 1
    silent = df[df["input"].isin(named)]
    assert silent["valence"].isna().all() and silent["box_w"].notna().all()  # rows kept, no predictions

    va = {}
    for key in ("with_audio", "other_audio"):
        rows = df[df["input"] == str(av_media[key])]
        assert rows["frame"].tolist() == [0, 2, 4, 6, 8, 10]
        frames = dict(iter_video_frames(av_media[key], indices=rows["frame"].tolist()))
        spec = to_uint8(video_spectrogram_frames(av_media[key], AUDIO, AUDIO))[rows["frame"].to_numpy()]
        va[key] = rows[["valence", "arousal"]].to_numpy()
        np.testing.assert_allclose(va[key], by_hand(av_checkpoint, frames, rows, spec, 4, crops_from_csv), atol=2e-3)
        if key == "with_audio":  # the check can fail: the same faces with silence, or the images one kept frame late
            for wrong in (np.zeros_like(spec), np.roll(spec, 1, axis=0)):
                assert np.abs(by_hand(av_checkpoint, frames, rows, wrong, 4, crops_from_csv) - va[key]).max() > 0.02
    # the same faces with other sounds give other predictions
    assert np.abs(va["with_audio"] - va["other_audio"]).max() > 0.1


def test_inputs_without_audio_skip_or_run_on_silence(av_checkpoint, av_media, tmp_path, crops_from_csv):
    inputs = [av_media["no_audio"], av_media["image"]]
    # skip (default): no face can be run; every output is still written, and as no input is ok the
    # run ends in a one-line error
    with pytest.raises(InputFileError, match="no input could be analysed .*no_audio: no_audio.mp4, face.png"):
        run_predict(av_checkpoint[0], inputs, tmp_path / "skip", NO_PROGRESS)
    skipped = json.loads((tmp_path / "skip" / "predictions" / "summary.json").read_text())
    assert skipped["status_counts"] == {"no_audio": 2} and skipped["faces"] == 13
    df = pd.read_csv(tmp_path / "skip" / "predictions" / "predictions.csv")
    assert len(df) == 13 and df["valence"].isna().all()
    assert len(pd.read_csv(tmp_path / "skip" / "predictions" / "inputs.csv")) == 2

    silence = run_predict(av_checkpoint[0], [*inputs, av_media["with_audio"]], tmp_path / "silence",
                          [*NO_PROGRESS, "--data.init_args.missing_audio", "silence", "--data.init_args.sequence_length", "12"])  # fmt: skip
    assert silence["status_counts"] == {"no_audio": 2, "ok": 1}
    assert "ran on silence for its 12 faces" in silence["bad_inputs"]["no_audio"][0]["detail"]
    df = pd.read_csv(tmp_path / "silence" / "predictions" / "predictions.csv")
    video = df[df["input"] == str(av_media["no_audio"])]
    frames = dict(iter_video_frames(av_media["no_audio"]))
    quiet = np.zeros((len(video), 1, AUDIO, AUDIO), np.uint8)  # uint8 0 == -1 == silence, as affect prepare stores it
    np.testing.assert_allclose(video[["valence", "arousal"]].to_numpy(),
                               by_hand(av_checkpoint, frames, video, quiet, 12, crops_from_csv), atol=2e-3)  # fmt: skip
    assert df["valence"].notna().all()


@pytest.mark.shared
def test_av_model_on_a_real_clip_with_audio(av_checkpoint, shared_data, tmp_path, crops_from_csv):
    """A GRID sentence (MPEG-1 video, 25 fps, stereo MP2 audio at 44.1 kHz): every 5th frame."""
    import av

    clip = shared_data / "videos" / "grid" / "GRID" / "bbaf2n.mpg"
    if not clip.is_file():
        pytest.skip(f"{clip} is absent")
    with av.open(str(clip)) as container:
        assert container.streams.audio, f"{clip} should have an audio stream"
    summary = run_predict(av_checkpoint[0], clip, tmp_path / "grid", [*NO_PROGRESS, "--data.init_args.frame_stride", "5",
                                                                  "--data.init_args.select", "largest"])  # fmt: skip
    assert summary["status_counts"] == {"ok": 1}
    df = pd.read_csv(tmp_path / "grid" / "predictions" / "predictions.csv")
    assert df["frame"].tolist() == list(range(0, 75, 5)) and (df["face_detected"] == 1).all() and (df["face_id"] == 0).all()
    frames = dict(iter_video_frames(clip, indices=df["frame"].tolist()))
    spec = to_uint8(video_spectrogram_frames(clip, AUDIO, AUDIO))[df["frame"].to_numpy()]
    np.testing.assert_allclose(df[["valence", "arousal"]].to_numpy(),
                               by_hand(av_checkpoint, frames, df, spec, 80, crops_from_csv), atol=2e-3)  # fmt: skip
