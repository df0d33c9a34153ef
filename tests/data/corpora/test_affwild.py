"""Aff-Wild (2017): videos -> cached frames, per-frame VA txts, .pts boxes/landmarks, quirks counted."""

from __future__ import annotations

import shutil
from pathlib import Path

import jsonargparse
import numpy as np
import pytest
import torch

from affect.data.corpora import manifest_parser
from affect.data.corpora.affwild import AffWildDataModule, make_affwild_manifest, read_pts, write_pts
from affect.data.datamodule import CorpusDataModule
from affect.data.datasets import FrameDataset, ImageReadError
from affect.data.fixtures import fixture_writer
from affect.data.fixtures.affwild import affwild_videos, write_affwild

REPO = Path(__file__).resolve().parents[3]
N_TRAIN, N_TEST, N_FRAMES, SIZE = 2, 1, 10, 48


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("affwild")
    return write_affwild(root, n_train=N_TRAIN, n_test=N_TEST, n_frames=N_FRAMES, size=SIZE, seed=3)


def test_counts_and_splits(corpus):
    df, report = make_affwild_manifest(corpus)
    assert dict(report.skipped) == {"annotated frame past the end of the video": 1, "malformed valence line": 1}
    assert report.examples["malformed valence line"] == ["valence/105.txt:2: 'n/a'"]
    assert report.kept == len(df) == (N_TRAIN + N_TEST) * N_FRAMES
    assert df.groupby("split")["video"].unique().map(sorted).to_dict() == {"train": ["105", "106"], "test": ["271"]}
    assert df.loc[df["split"] == "test", ["valence", "arousal"]].isna().all().all()
    assert (df["frame"].groupby(df["video"]).agg(list) == [list(range(1, N_FRAMES + 1))] * 3).all()
    assert df["path"].iloc[0] == "frames/105/00001.jpg" and (corpus / df["path"].iloc[0]).is_file()


def test_values_match_annotation_files(corpus):
    df, _ = make_affwild_manifest(corpus)
    for vid in ("105", "106"):
        rows = df[df["video"] == vid].sort_values("frame")
        for dim in ("valence", "arousal"):
            lines = (corpus / "annotations" / "train" / dim / f"{vid}.txt").read_text().split()
            expected = np.array([float(x) if x != "n/a" else np.nan for x in lines[:N_FRAMES]])
            np.testing.assert_allclose(rows[dim].to_numpy(), expected, atol=1e-6)
    row = df[(df["video"] == "105") & (df["frame"] == 2)].iloc[0]
    assert np.isnan(row["valence"]) and np.isfinite(row["arousal"])  # malformed line masks one dimension


def test_boxes_and_landmarks(corpus):
    df, _ = make_affwild_manifest(corpus)
    for _, row in df.iterrows():
        assert row["box_w"] == SIZE and row["box_h"] == SIZE
        lm = row["landmarks"]
        if row["video"] == "105" and row["frame"] == N_FRAMES:
            assert lm is None  # the fixture left this .pts out
            continue
        inside = (lm[:, 0] >= row["box_x"]) & (lm[:, 0] <= row["box_x"] + SIZE)
        inside &= (lm[:, 1] >= row["box_y"]) & (lm[:, 1] <= row["box_y"] + SIZE)
        assert inside.all()
    pts = read_pts(corpus / "landmarks" / "train" / "106" / "3.pts")
    item = FrameDataset(df[(df["video"] == "106") & (df["frame"] == 4)], corpus, image_size=SIZE)[0]
    box = df[(df["video"] == "106")].iloc[0][["box_x", "box_y"]].to_numpy(np.float32)
    np.testing.assert_allclose(item["landmarks"].numpy(), (pts - box) / SIZE, atol=1e-5)  # 3.pts = frame 4
    assert item["landmarks_mask"] and item["image"].shape == (3, SIZE, SIZE)


def test_pts_round_trip_and_errors(tmp_path):
    pts = np.random.default_rng(0).uniform(0, 100, (68, 2)).astype(np.float32)
    np.testing.assert_allclose(read_pts(write_pts(tmp_path / "a.pts", pts)), pts, atol=1e-3)
    (tmp_path / "b.pts").write_text("version: 1\nn_points: 68\n{\n1 2\n}\n")
    with pytest.raises(ValueError, match=r"b\.pts: n_points says 68 but the file holds 1"):
        read_pts(tmp_path / "b.pts")


def test_frames_are_extracted_once(tmp_path):
    root = write_affwild(tmp_path, n_train=1, n_test=0, n_frames=6, size=32, ext=".avi", pts_base=1)
    df, _ = make_affwild_manifest(root, pts_base=1)
    first = root / df["path"].iloc[0]
    stamp = first.stat().st_mtime_ns
    df2, _ = make_affwild_manifest(root, pts_base=1)
    assert first.stat().st_mtime_ns == stamp and df2["path"].tolist() == df["path"].tolist()
    assert df["landmarks"].iloc[0] is not None  # 1.pts = frame 1 with pts_base=1
    # pre-extracted frames elsewhere, no decoding
    other = tmp_path / "elsewhere"
    shutil.copytree(root / "frames", other)
    df3, _ = make_affwild_manifest(root, frames_dir=str(other), extract=False, pts_base=1)
    assert len(df3) == len(df) and df3["path"].iloc[0] == "elsewhere/105/00001.jpg"  # inside root: relative
    df4, report = make_affwild_manifest(root, frames_dir=str(tmp_path / "none"), extract=False)
    assert len(df4) == 0 and report.skipped["video missing or undecodable"] == 7  # 6 annotated lines + 1 extra


def test_quirks_counted(tmp_path):
    root = write_affwild(tmp_path, n_train=2, n_test=0, n_frames=6, size=32)
    (root / "annotations" / "train" / "arousal" / "106.txt").write_text("0.1\n0.2\n")  # shorter than valence
    (root / "annotations" / "train" / "valence" / "999.txt").write_text("0.1\n")  # no video
    (root / "landmarks" / "train" / "106" / "0.pts").write_text("garbage")
    df, report = make_affwild_manifest(root)
    assert report.skipped["valence/arousal files differ in length (extra lines masked)"] == 4
    assert report.skipped["annotation file without a video"] == 1
    assert report.skipped["unreadable landmark file"] == 1
    rows = df[df["video"] == "106"].sort_values("frame")
    assert rows["arousal"].notna().sum() == 2 and rows["valence"].notna().sum() == 6
    assert rows["landmarks"].iloc[0] is None


def test_test_labels_when_present(tmp_path):
    root = write_affwild(tmp_path, n_train=1, n_test=1, n_frames=5, size=32, test_labels=True)
    df, report = make_affwild_manifest(root)
    test = df[df["split"] == "test"]
    assert len(test) == 5 and test[["valence", "arousal"]].notna().all().all()
    lines = (root / "annotations" / "test" / "arousal" / "271.txt").read_text().split()
    np.testing.assert_allclose(test.sort_values("frame")["arousal"], [float(x) for x in lines], atol=1e-6)


def test_missing_folders_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"videos/\{train,test\}/<id>\.mp4\|avi"):
        make_affwild_manifest(tmp_path)
    root = write_affwild(tmp_path, n_train=1, n_test=0, n_frames=4, size=32)
    shutil.rmtree(root / "annotations")
    with pytest.raises(FileNotFoundError, match=r"annotations/train/valence/<id>\.txt"):
        make_affwild_manifest(root)


def test_corrupt_frame_raises(corpus, tmp_path):
    df, _ = make_affwild_manifest(corpus)
    row = df[df["video"] == "106"].head(1)
    target = tmp_path / row["path"].iloc[0]
    target.parent.mkdir(parents=True)
    target.write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(ImageReadError, match=r"frames/106/00001\.jpg"):
        FrameDataset(row, tmp_path, image_size=SIZE)[0]


def test_datamodule_frames_and_sequences(corpus):
    dm = AffWildDataModule(root=str(corpus), task="va", val_fraction=0.5, batch_size=4, image_size=SIZE)
    assert set(dm.manifest["split"]) == {"train", "val"}  # test rows have no VA
    assert dm.manifest.groupby("subject")["split"].nunique().max() == 1
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, SIZE, SIZE) and batch["image"].dtype == torch.uint8
    assert batch["va"].dtype == torch.float32 and batch["va_mask"].shape == (4, 2)
    assert batch["landmarks"].shape == (4, 68, 2) and batch["landmarks_mask"].dtype == torch.bool
    assert batch["expr"].eq(-1).all() and not batch["au_mask"].any()

    seq = AffWildDataModule(root=str(corpus), sequence_length=8, sequence_stride=4, batch_size=2, image_size=SIZE)
    ds = seq.dataset("train")
    assert len(ds) == 2 * 2  # per 10-frame video: windows at 0 (8 frames) and 4 (6 real + 2 padding)
    masks = sorted(int(ds[i]["frame_mask"].sum()) for i in range(len(ds)))
    assert masks == [6, 6, 8, 8]
    item = next(ds[i] for i in range(len(ds)) if int(ds[i]["frame_mask"].sum()) == 6)
    assert item["frame_mask"].tolist() == [True] * 6 + [False] * 2
    assert item["image"].shape == (8, 3, SIZE, SIZE)


def test_cli_arguments_and_registries():
    parser = jsonargparse.ArgumentParser()
    parser.add_class_arguments(AffWildDataModule, "data")
    cfg = parser.parse_args(["--data.root", "/x", "--data.pts_base", "1", "--data.val_fraction", "0.2"])
    assert cfg.data.pts_base == 1 and cfg.data.val_fraction == 0.2 and cfg.data.extract is True
    assert manifest_parser("affwild") is make_affwild_manifest
    assert fixture_writer("affwild") is write_affwild
    assert affwild_videos(1, 1) == {"train": ["105"], "test": ["271"]}


def test_yaml_with_env_root(tmp_path, monkeypatch):
    write_affwild(tmp_path / "Aff-Wild", n_train=2, n_test=1, n_frames=4, size=32)
    monkeypatch.setenv("AFFECT_DATA", str(tmp_path))
    parser = jsonargparse.ArgumentParser()
    parser.add_argument("--config", action=jsonargparse.ActionConfigFile)
    parser.add_subclass_arguments(CorpusDataModule, "data")
    cfg = parser.parse_args(["--config", str(REPO / "experiments/data/affwild.yaml")])
    dm = parser.instantiate(cfg).data
    assert isinstance(dm, AffWildDataModule) and dm.root == str(tmp_path / "Aff-Wild")
    dm.prepare_data()
    assert (tmp_path / "Aff-Wild" / "frames" / "105" / "00001.jpg").is_file()
    assert set(dm.manifest["split"]) == {"train", "val"} and len(dm.manifest) == 8  # task va: test dropped
