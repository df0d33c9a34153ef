"""Fixtures of the ``affect predict`` tests: a CPU MTCNN, generated bad inputs, a tiny trained checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from affect.io import write_video

#: the A/V fixtures: face and spectrogram image side of ``av_checkpoint``, frame rate of ``av_media``
AV_IMAGE, AV_AUDIO, AV_FPS = 32, 32, 10


@pytest.fixture(scope="session")
def detector():
    import torch

    from affect.face import FaceDetector

    torch.set_num_threads(1)  # MTCNN on a shared 2-core machine: more threads only contend
    return FaceDetector(device="cpu", batch_size=8)


@pytest.fixture
def bad_inputs(tmp_path) -> dict[str, Path]:
    """Generated bad inputs, by the status each must get."""
    from PIL import Image

    folder = tmp_path / "bad"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    out = {}
    out["empty"] = folder / "zero_bytes.mp4"
    out["empty"].write_bytes(b"")
    out["too_small"] = folder / "tiny.png"
    Image.fromarray(rng.integers(0, 256, (12, 15, 3), dtype=np.uint8)).save(out["too_small"])
    # a flat grey clip with a moving dark square: decodable, no face
    frames = np.full((6, 64, 80, 3), 128, np.uint8)
    for k in range(6):
        frames[k, 10:30, 5 + 5 * k : 25 + 5 * k] = 20
    out["no_face"] = write_video(folder / "no_face_generated.mp4", frames, fps=10)
    # truncated: the first 40% of a longer clip; Matroska keeps the header (duration), so the part decodes;
    # an MP4 cut short loses its index (moov at the end) and cannot be opened at all
    long = np.repeat(frames, 8, axis=0)
    for suffix, status in ((".mkv", "truncated"), (".mp4", "unreadable")):
        full = write_video(folder / f"full{suffix}", long, fps=10, codec="mpeg4")
        out[status] = folder / f"cut{suffix}"
        out[status].write_bytes(full.read_bytes()[: int(full.stat().st_size * 0.4)])
        full.unlink()
    out["unreadable_image"] = folder / "not_an_image.jpg"
    out["unreadable_image"].write_bytes(rng.integers(0, 256, 2000, dtype=np.uint8).tobytes())
    return out


@pytest.fixture(scope="session")
def crops_from_csv():
    """``crops_from_csv(frames, rows, size)``: the faces of ``rows`` (a predictions.csv slice) aligned
    independently from the CSV's own 5 points on the decoded ``frames`` (by frame index): uint8
    ``[N, 3, size, size]``."""
    from affect.face import align_face
    from affect.predict.media import POINT_NAMES

    def crops(frames: dict[int, np.ndarray], rows, size: int) -> np.ndarray:
        out = []
        for _, row in rows.iterrows():
            p5 = np.array([[row[f"{n}_x"], row[f"{n}_y"]] for n in POINT_NAMES])
            out.append(align_face(frames[int(row["frame"])], points5=p5, size=size)[0])
        return np.stack(out).transpose(0, 3, 1, 2)

    return crops


@pytest.fixture(scope="session")
def av_checkpoint(tmp_path_factory):
    """A/V-MT-VGG-GRU (test backbone) trained for 40 steps to read valence from the audio images'
    level, saved as Lightning saves it (plus the class path LightningCLI records for ``--ckpt_path``);
    ``(path, the module in eval mode)``."""
    import lightning as L
    import torch

    from affect.models.mt_vgg_gru import AVMTVGGGRUModule

    torch.manual_seed(0)
    module = AVMTVGGGRUModule(backbone="test_resnet", hidden=16, rnn_hidden=8, dropout=0.0, image_size=AV_IMAGE,
                              audio_size=AV_AUDIO)  # fmt: skip
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(module.parameters(), lr=1e-2)
    for _ in range(40):
        level = torch.rand(8, 4, 1, 1, 1, generator=g) * 2 - 1
        audio = (level + 0.1 * torch.randn(8, 4, 1, AV_AUDIO, AV_AUDIO, generator=g)).clamp(-1, 1)
        image = torch.randint(0, 256, (8, 4, 3, AV_IMAGE, AV_IMAGE), generator=g, dtype=torch.uint8)
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

    from affect.data.audio import SAMPLE_RATE
    from affect.data.synthetic import face_sequence

    folder = tmp_path_factory.mktemp("av_media")
    rng = np.random.default_rng(0)
    frames, _, _ = face_sequence(rng, 12, size=96, fps=AV_FPS)
    t = np.arange(round(len(frames) / AV_FPS * SAMPLE_RATE)) / SAMPLE_RATE
    swell = (0.02 + 0.6 * (0.5 + 0.5 * np.sin(2 * np.pi * 0.5 * t))) * rng.uniform(-1, 1, len(t))  # loud <-> quiet
    faint = 0.01 * rng.uniform(-1, 1, len(t))
    out = {
        "with_audio": write_video(folder / "with_audio.mp4", frames, AV_FPS, audio=swell.astype(np.float32)),
        "other_audio": write_video(folder / "other_audio.mp4", frames, AV_FPS, audio=faint.astype(np.float32)),
        "no_audio": write_video(folder / "no_audio.mp4", frames, AV_FPS),
        "image": folder / "face.png",
    }
    Image.fromarray(frames[0]).save(out["image"])
    return out
