"""Frame extraction of the video corpora (``affect.data.video``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from affect.data.video import (
    INDEX_FILE,
    extract_frames,
    frame_file_name,
    list_frame_files,
    read_frame_index,
    video_frame_paths,
)
from affect.io import MediaReadError, write_video


def _grey_ramp(n: int, size: int = 32) -> np.ndarray:
    """Frame k is flat grey 20 * (k + 1): frame numbering is checkable after lossy coding."""
    return np.stack([np.full((size, size, 3), 20 * (k + 1), np.uint8) for k in range(n)])


@pytest.mark.parametrize("suffix", [".avi", ".mp4"])
def test_extract_round_trip_numbers_frames_from_one(tmp_path, suffix):
    video = write_video(tmp_path / f"v{suffix}", _grey_ramp(6), fps=20)
    index = extract_frames(video, tmp_path / "frames")
    assert index.n_frames == 6
    np.testing.assert_allclose(index.times, np.arange(6) / 20, atol=1e-6)
    assert index.fps == pytest.approx(20)
    assert sorted(list_frame_files(tmp_path / "frames")) == [1, 2, 3, 4, 5, 6]
    for k in range(1, 7):
        mean = np.asarray(Image.open(tmp_path / "frames" / frame_file_name(k))).mean()
        assert abs(mean - 20 * k) < 4, (k, mean)


def test_extraction_is_cached_and_redone_when_the_video_changes(tmp_path):
    video = write_video(tmp_path / "v.avi", _grey_ramp(4), fps=10)
    extract_frames(video, tmp_path / "f")
    (tmp_path / "f" / "00001.jpg").unlink()  # a cached folder is not re-decoded ...
    assert extract_frames(video, tmp_path / "f").n_frames == 4
    assert not (tmp_path / "f" / "00001.jpg").exists()
    write_video(video, _grey_ramp(5), fps=10)  # ... unless the source changed
    assert extract_frames(video, tmp_path / "f").n_frames == 5
    assert (tmp_path / "f" / "00001.jpg").exists()
    assert json.loads((tmp_path / "f" / INDEX_FILE).read_text())["n_frames"] == 5


def test_missing_and_corrupt_videos_raise_with_the_path(tmp_path):
    with pytest.raises(MediaReadError, match="video not found: .*nope.avi"):
        extract_frames(tmp_path / "nope.avi", tmp_path / "f")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    with pytest.raises(MediaReadError, match="bad.mp4"):
        extract_frames(bad, tmp_path / "g")
    assert read_frame_index(tmp_path / "g") is None  # no index = no completed extraction


def test_user_extracted_frames_and_paths_relative_to_root(tmp_path):
    folder = tmp_path / "root" / "frames" / "clip"
    folder.mkdir(parents=True)
    for name in ("7.jpg", "0008.png", "notes.txt", "x9.jpg"):
        (folder / name).write_bytes(b"")
    assert list_frame_files(folder) == {7: "7.jpg", 8: "0008.png"}
    paths, times = video_frame_paths(tmp_path / "none.avi", folder, tmp_path / "root", extract=False)
    assert paths == {7: "frames/clip/7.jpg", 8: "frames/clip/0008.png"} and times is None
    outside = tmp_path / "elsewhere"
    write_video(tmp_path / "v.mp4", _grey_ramp(2), fps=5)
    paths, times = video_frame_paths(tmp_path / "v.mp4", outside, tmp_path / "root")
    assert paths[1] == (outside / "00001.jpg").resolve().as_posix()
    (tmp_path / "v.mp4").unlink()  # a completed extraction survives the video's removal
    assert video_frame_paths(tmp_path / "v.mp4", outside, tmp_path / "root")[0] == paths
    with pytest.raises(MediaReadError, match="no extracted frames"):
        video_frame_paths(tmp_path / "v.mp4", tmp_path / "empty", tmp_path, extract=False)
