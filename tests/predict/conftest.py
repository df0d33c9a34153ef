"""Fixtures of the ``affect predict`` tests: a CPU MTCNN, generated bad inputs, a tiny trained checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from affect.data.video import write_video


@pytest.fixture(scope="session")
def detector():
    import torch

    from affect.data.face import FaceDetector

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
    from affect.data.face import align_face
    from affect.predict.media import POINT_NAMES

    def crops(frames: dict[int, np.ndarray], rows, size: int) -> np.ndarray:
        out = []
        for _, row in rows.iterrows():
            p5 = np.array([[row[f"{n}_x"], row[f"{n}_y"]] for n in POINT_NAMES])
            out.append(align_face(frames[int(row["frame"])], points5=p5, size=size)[0])
        return np.stack(out).transpose(0, 3, 1, 2)

    return crops
