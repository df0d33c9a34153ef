"""A/V inputs stream in pieces like every other video: each detection batch's faces get their frames'
spectrogram images as the video is read (affect.predict.audio.InputAudio), the same images as the
whole video's (affect.data.audio.video_spectrogram_frames); an input without audio is counted once
over all its pieces."""

from __future__ import annotations

import numpy as np

from affect.data.audio import to_uint8, video_spectrogram_frames
from affect.predict.media import FaceExtractor, FaceOptions

AUDIO = 32  # the side of the av_checkpoint fixture (conftest.py)


def _pieces(detector, path, **options):
    opts = FaceOptions(image_size=32, audio_size=AUDIO, batch_size=4, **options)
    return list(FaceExtractor(detector, opts).stream([str(path)]))


def test_av_video_comes_in_pieces_with_the_whole_video_images(detector, av_media):
    path = av_media["with_audio"]
    pieces = _pieces(detector, path, frame_stride=1)
    assert len([p for p, _ in pieces if p.rows]) == 3  # 12 frames in detection batches of 4
    report = pieces[-1][1]
    assert report.status == "ok" and report.faces == 12
    whole = to_uint8(video_spectrogram_frames(path, AUDIO, AUDIO))
    frames = []
    for piece, _ in pieces:
        for r in piece.rows:
            frames.append(r["frame"])
            assert r["crop"] >= 0 and r["spec"] >= 0
            np.testing.assert_array_equal(piece.audio[r["spec"]], whole[r["frame"]])
    assert frames == list(range(12))
    assert len({whole[k].tobytes() for k in frames}) > 6  # the check can fail: the images differ


def test_no_audio_is_counted_over_all_pieces(detector, av_media):
    pieces = _pieces(detector, av_media["no_audio"], missing_audio="silence")
    report = pieces[-1][1]
    assert report.status == "no_audio" and "has no audio stream" in report.detail
    assert "ran on silence for its 12 faces" in report.detail
    specs = [p.audio[r["spec"]] for p, _ in pieces for r in p.rows]
    assert len(specs) == 12 and not any(s.any() for s in specs)  # uint8 0 == -1 == silence
