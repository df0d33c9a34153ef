"""Sequences over a store: a frame without a usable face keeps its place in its track, with all labels masked."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from PIL import Image

from affect.store.reader import StoreSequenceDataset
from affect.store.writer import PrepareOptions, prepare_store

N, FACELESS = 10, (3, 4, 8)  # frames of one video; these have no usable face


def _store(tmp_path, videos=("v1",), all_faceless=()):
    rng = np.random.default_rng(0)
    recs = []
    for v in videos:
        (tmp_path / v).mkdir()
        for k in range(N):
            path = tmp_path / v / f"{k:05d}.png"
            if k in FACELESS or v in all_faceless:
                path.write_bytes(b"truncated")  # undecodable: status "corrupt", face_index -1
            else:
                Image.fromarray(rng.integers(1, 256, (16, 16, 3), dtype=np.uint8)).save(path)
            recs.append({"path": f"{v}/{k:05d}.png", "corpus": "toy", "video": v, "frame": k, "split": "train",
                         "valence": k / 10, "arousal": -k / 10, "expr": k % 7, "AU1": float(k % 2)})
    prepare_store(pd.DataFrame.from_records(recs), tmp_path, tmp_path / "st",
                  options=PrepareOptions(detect="never", image_size=16), progress=False)
    return str(tmp_path / "st")


def test_faceless_frames_stay_in_the_track_with_masked_labels(tmp_path, caplog):
    st = _store(tmp_path)
    with caplog.at_level(logging.WARNING, logger="affect.store.reader"):
        ds = StoreSequenceDataset(st, length=N)
    assert len(ds) == 1, "frames without a face must not form a separate (black) track"
    assert ds.n_labelled_without_face == len(FACELESS)
    assert f"{len(FACELESS)} labelled video frames have no usable face" in caplog.text
    b = ds[0]
    assert b["frame"].tolist() == list(range(N))  # the track keeps its timing
    lost = np.isin(np.arange(N), FACELESS)
    assert b["frame_mask"].all()
    assert b["face_mask"].numpy().tolist() == (~lost).tolist()
    assert not b["va_mask"][lost].any() and b["va_mask"][~lost].all()
    assert (b["expr"][lost] == -1).all() and b["expr"][~lost].tolist() == [k % 7 for k in range(N) if k not in FACELESS]
    assert not b["au_mask"][lost].any() and b["au_mask"][~lost, 0].all()
    assert not b["landmarks_mask"][lost].any()
    assert (b["image"][lost] == 0).all() and (b["image"][~lost].flatten(1).amax(1) > 0).all()
    np.testing.assert_allclose(b["va"][~lost, 0].numpy(), np.arange(N)[~lost] / 10, rtol=1e-6)


def test_video_without_any_face_is_one_fully_masked_track(tmp_path):
    st = _store(tmp_path, videos=("v1", "v2"), all_faceless=("v2",))
    ds = StoreSequenceDataset(st, length=N)
    assert len(ds) == 2
    b = ds.__getitems__([0, 1])
    assert b["video"] == ["v1", "v2"]
    assert not b["face_mask"][1].any() and not b["va_mask"][1].any() and (b["expr"][1] == -1).all()
    assert ds.n_labelled_without_face == len(FACELESS) + N
