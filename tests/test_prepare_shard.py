"""`affect prepare --shard I/N` + `affect prepare merge`: parts of whole videos merge into the one-machine store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from test_prepare import SHARED, tree_bytes

from affect.store.cli import main
from affect.store.merge import merge_parts
from affect.store.parts import Part, assign_parts, group_keys
from affect.store.writer import PrepareOptions, prepare_store

OPTS = PrepareOptions(detect="never", image_size=16)


def write_video_corpus(root: Path) -> pd.DataFrame:
    """Frame folders of 5 videos (7, 5, 4, 3, 2 frames, one corrupt frame) and 4 still images."""
    rng = np.random.default_rng(0)
    recs = []
    for v, n in zip("abcde", (7, 5, 4, 3, 2), strict=True):
        (root / v).mkdir()
        for f in range(n):
            Image.fromarray(rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)).save(root / v / f"{f:05d}.png")
            recs.append({"path": f"{v}/{f:05d}.png", "corpus": "toy", "video": v, "frame": f,
                         "split": "val" if v == "e" else "train", "valence": f / 10, "expr": f % 7})
    (root / "c" / "00002.png").write_bytes(b"not a png")
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)).save(root / f"still{i}.png")
        recs.append({"path": f"still{i}.png", "corpus": "toy", "video": "", "frame": -1, "AU12": float(i % 2), "subject": "s, with a comma"})
    # interleave the videos in the manifest, so that store shards mix rows of several parts
    return pd.DataFrame.from_records(recs).sample(frac=1.0, random_state=1).reset_index(drop=True)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    df = write_video_corpus(root)
    ref = tmp_path_factory.mktemp("ref") / "store"
    prepare_store(df, root, ref, shard_size=4, options=OPTS, progress=False)
    return df, root, ref


def test_parts_hold_whole_videos_and_balance_frames():
    df = pd.DataFrame({"corpus": "c", "path": [f"p{i}" for i in range(40)],
                       "video": [f"v{i % 7}" if i < 33 else "" for i in range(40)]})
    for n in (1, 2, 3, 5):
        part = assign_parts(df, n)
        assert np.array_equal(part, assign_parts(df, n)) and set(part) == set(range(n))
        by_group = pd.Series(part).groupby(group_keys(df).to_numpy()).nunique()
        assert (by_group == 1).all()  # a video (or a still image) never spans two parts
        loads = np.bincount(part, minlength=n)
        assert loads.max() - loads.min() <= group_keys(df).value_counts().max()


def test_two_parts_merge_to_the_one_machine_store(corpus, tmp_path):
    df, root, ref = corpus
    parts = [tmp_path / "p0", tmp_path / "p1"]
    rep0 = prepare_store(df, root, parts[0], shard_size=4, options=OPTS, progress=False, part=Part(0, 2))
    manifest = tmp_path / "m.csv"
    df.to_csv(manifest, index=False)
    assert main(["csv", "--manifest", str(manifest), "--root", str(root), "--out", str(parts[1]), "--shard", "1/2",
                 "--shard-size", "4", "--no-detect", "--image-size", "16", "--workers", "2", "--no-progress"]) == 0
    rep1 = json.loads((parts[1] / "part.json").read_text())
    assert rep0["counts"]["frames_in"] + rep1["counts"]["frames_in"] == len(df)
    # each part's rows are whole videos, and no video is in both
    videos = [set(pd.concat([pd.read_csv(f, keep_default_na=False) for f in sorted((p / "shards").glob("*.csv"))])["video"])
              for p in parts]  # fmt: skip
    assert not (videos[0] & videos[1]) - {""} and videos[0] | videos[1] == set(df["video"])
    assert main(["merge", str(tmp_path / "merged"), str(parts[1]), str(parts[0]), "--no-progress"]) == 0
    assert tree_bytes(tmp_path / "merged") == tree_bytes(ref)


def test_merge_refuses_incomplete_missing_foreign_or_damaged_parts(corpus, tmp_path):
    df, root, _ = corpus
    p = [tmp_path / f"p{i}" for i in range(3)]
    for i in range(3):
        prepare_store(df, root, p[i], shard_size=4, options=OPTS, progress=False, part=Part(i, 3))
    with pytest.raises(ValueError, match=r"parts \[2\] of 3 are missing"):
        merge_parts(tmp_path / "m", p[:2], progress=False)
    with pytest.raises(ValueError, match="given twice"):
        merge_parts(tmp_path / "m", [p[0], p[0], p[1]], progress=False)
    other = tmp_path / "other"
    prepare_store(df, root, other, shard_size=5, options=OPTS, progress=False, part=Part(2, 3))
    with pytest.raises(ValueError, match=r"different jobs \(they differ in \['shard_size'\]\)"):
        merge_parts(tmp_path / "m", [p[0], p[1], other], progress=False)
    whole = tmp_path / "whole"
    prepare_store(df.head(3), root, whole, shard_size=4, options=OPTS, progress=False)
    with pytest.raises(ValueError, match="not a part of a sharded run"):
        merge_parts(tmp_path / "m", [whole], progress=False)
    (p[2] / "part.json").unlink()  # as if killed before the end
    with pytest.raises(ValueError, match=r"incomplete: re-run .* --shard 2/3"):
        merge_parts(tmp_path / "m", p, progress=False)
    prepare_store(df, root, p[2], shard_size=4, options=OPTS, progress=False, part=Part(2, 3))  # resumes
    u8 = sorted((p[1] / "shards").glob("*.u8"))[0]
    u8.write_bytes(u8.read_bytes()[:-1] + b"\x01")
    with pytest.raises(ValueError, match=f"{u8.name} does not match its checksum"):
        merge_parts(tmp_path / "m", p, progress=False)


def test_shard_option_is_checked():
    from affect.errors import ConfigError

    assert Part.parse("3/4") == Part(3, 4)
    for bad in ("4/4", "1", "a/b", "-1/2"):
        with pytest.raises(ConfigError, match="--shard"):
            Part.parse(bad)


@pytest.mark.shared
def test_video_parts_with_detection_and_audio_merge_to_the_one_machine_store(tmp_path):
    """Real videos through MTCNN and spectrograms. The one-machine run's detection batches (of 2)
    mix frames of videos that the parts hold apart, and MTCNN's batched arithmetic rounds
    differently with other batch-mates: the 5 points move by < 1e-2 px (after refinement) and a crop pixel by at most
    one grey level; everything else (rows, statuses, faces, labels, spectrograms, report) is identical."""
    from affect.store.reader import open_store

    vids = SHARED / "videos" / "pyfeat"
    if not vids.is_dir():
        pytest.skip(f"real videos not found at {vids} (set AFFECT_SHARED)")
    rows = [{"path": "single_face.mp4", "video": "single", "frame": f} for f in (0, 5, 9, 30)]
    rows += [{"path": "no_face.mp4", "video": "none", "frame": f} for f in (0, 3)]
    rows += [{"path": "face_noface.mov", "video": "fnf", "frame": f} for f in (0, 1, 2)]
    df = pd.DataFrame.from_records(rows).assign(corpus="pyfeat", expr=0)
    df = df.iloc[[0, 4, 6, 1, 5, 7, 2, 8, 3]].reset_index(drop=True)
    opts = PrepareOptions(audio=True, audio_height=16, audio_width=8, batch_size=2, image_size=32)
    prepare_store(df, vids, tmp_path / "ref", shard_size=3, options=opts, progress=False)
    parts = [tmp_path / f"p{i}" for i in range(2)]
    for i, p in enumerate(parts):
        prepare_store(df, vids, p, shard_size=3, options=opts, progress=False, part=Part(i, 2))
    merge_parts(tmp_path / "merged", parts, progress=False)
    ref, got = open_store(tmp_path / "ref"), open_store(tmp_path / "merged")
    assert got.report == ref.report and (got.manifest["status"] == "ok").sum() == 7
    floats = [c for c in ref.manifest.columns if c.startswith("p5_") or c == "det_score"]
    pd.testing.assert_frame_equal(got.manifest.drop(columns=floats), ref.manifest.drop(columns=floats))
    # float noise of batches of other sizes, carried through the points' refinement: measured 3e-3 px
    np.testing.assert_allclose(got.manifest[floats].to_numpy(), ref.manifest[floats].to_numpy(), atol=1e-2)
    every = np.arange(len(ref.images))
    assert np.abs(got.images[every].astype(int) - ref.images[every]).max() <= 1
    assert np.array_equal(got.audio[every], ref.audio[every])
    assert tree_bytes(tmp_path / "merged")["job.json"] == tree_bytes(tmp_path / "ref")["job.json"]
