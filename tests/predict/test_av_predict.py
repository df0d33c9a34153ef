"""A/V models in ``affect predict`` (A/V-MT-VGG-GRU, paper Sec. VI-A.3): each face window gets its
frames' spectrogram images, made as ``affect prepare --audio`` makes them.

A tiny A/V-MT-VGG-GRU is trained here until its valence follows the loudness of its spectrogram
images, then run through the real CLI (``run_predict``) on procedural face videos with and without
audio, a still image and a real GRID clip. Predictions are checked against the network run by hand on
faces aligned from the CSV's own points and on spectrograms from ``affect.data.audio`` decoding the
whole video independently (so the frame-stride / timestamp matching is checked too).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from affect.data.audio import SAMPLE_RATE, to_uint8, video_spectrogram_frames
from affect.data.face import iter_video_frames
from affect.predict import run_predict

pytestmark = [pytest.mark.slow]
IMAGE = 32
AUDIO = 32
FPS = 10
NO_PROGRESS = ["--trainer.accelerator", "cpu", "--trainer.enable_progress_bar", "false", "--data.init_args.progress", "false"]


@pytest.fixture(scope="session")
def av_checkpoint(tmp_path_factory):
    """A/V-MT-VGG-GRU (test backbone) trained for 40 steps to read valence from the audio images'
    level, saved as Lightning saves it (plus the class path LightningCLI records for ``--ckpt_path``);
    ``(path, the module in eval mode)``."""
    import lightning as L

    from affect.models.mt_vgg_gru import AVMTVGGGRUModule

    torch.manual_seed(0)
    module = AVMTVGGGRUModule(backbone="test_resnet", hidden=16, rnn_hidden=8, dropout=0.0, image_size=IMAGE,
                              audio_size=AUDIO)  # fmt: skip
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(module.parameters(), lr=1e-2)
    for _ in range(40):
        level = torch.rand(8, 4, 1, 1, 1, generator=g) * 2 - 1
        audio = (level + 0.1 * torch.randn(8, 4, 1, AUDIO, AUDIO, generator=g)).clamp(-1, 1)
        image = torch.randint(0, 256, (8, 4, 3, IMAGE, IMAGE), generator=g, dtype=torch.uint8)
        loss = ((module(image, audio)["va"] - level.reshape(8, 4, 1)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    path = tmp_path_factory.mktemp("av_model") / "av.ckpt"
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)  # fmt: skip
    trainer.strategy.connect(module)
    trainer.save_checkpoint(path)
    ckpt = torch.load(path, weights_only=True)
    ckpt["hyper_parameters"]["_class_path"] = "affect.models.mt_vgg_gru.AVMTVGGGRUModule"
    torch.save(ckpt, path)
    return path, module.eval()


@pytest.fixture(scope="session")
def av_media(tmp_path_factory) -> dict:
    """One procedural face clip (12 frames at 10 fps) muxed with noise swelling from loud to quiet
    (``with_audio``), with faint noise (``other_audio``) and without an audio stream (``no_audio``); one
    of its frames as a PNG."""
    from PIL import Image

    from affect.data.fixtures.affwild2 import write_av_video
    from affect.data.synthetic import face_sequence

    folder = tmp_path_factory.mktemp("av_media")
    rng = np.random.default_rng(0)
    frames, _, _ = face_sequence(rng, 12, size=96, fps=FPS)
    t = np.arange(round(len(frames) / FPS * SAMPLE_RATE)) / SAMPLE_RATE
    swell = (0.02 + 0.6 * (0.5 + 0.5 * np.sin(2 * np.pi * 0.5 * t))) * rng.uniform(-1, 1, len(t))  # loud <-> quiet
    faint = 0.01 * rng.uniform(-1, 1, len(t))
    out = {
        "with_audio": write_av_video(folder / "with_audio.mp4", frames, FPS, swell.astype(np.float32)),
        "other_audio": write_av_video(folder / "other_audio.mp4", frames, FPS, faint.astype(np.float32)),
        "no_audio": write_av_video(folder / "no_audio.mp4", frames, FPS, None),
        "image": folder / "face.png",
    }
    Image.fromarray(frames[0]).save(out["image"])
    return out


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
    # skip (default): no face can be run -> Lightning skips the loop; every output is still written
    skipped = run_predict(av_checkpoint[0], inputs, tmp_path / "skip", NO_PROGRESS)
    assert skipped["status_counts"] == {"no_audio": 2} and skipped["faces"] == 13
    df = pd.read_csv(tmp_path / "skip" / "predictions" / "predictions.csv")
    assert len(df) == 13 and "valence" not in df
    assert len(pd.read_csv(tmp_path / "skip" / "predictions" / "inputs.csv")) == 2

    silence = run_predict(av_checkpoint[0], inputs, tmp_path / "silence",
                          [*NO_PROGRESS, "--data.init_args.missing_audio", "silence", "--data.init_args.sequence_length", "12"])  # fmt: skip
    assert silence["status_counts"] == {"no_audio": 2}
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
