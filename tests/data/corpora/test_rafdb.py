"""RAF-DB parser (basic + compound), fixture writer, DataModule, and the real label lists."""

from __future__ import annotations

from pathlib import Path

import jsonargparse
import lightning as L
import numpy as np
import pytest

from affect.data.corpora import manifest_parser
from affect.data.corpora.rafdb import (
    RafDbDataModule,
    box_from_landmarks5,
    make_rafdb_manifest,
    parse_label_list,
    parse_manual_landmarks,
)
from affect.data.datasets import ImageReadError
from affect.data.fixtures import fixture_writer
from affect.data.fixtures.rafdb import write_rafdb
from affect.data.manifest import AU_COLUMNS, LoadReport

# RAF-DB basic id -> canonical index (Neutral, Anger, Disgust, Fear, Happiness, Sadness, Surprise),
# written out by hand from the RAF-DB README (1 Surprise, 2 Fear, 3 Disgust, 4 Happiness,
# 5 Sadness, 6 Anger, 7 Neutral).
HAND_MAP = {1: 6, 2: 3, 3: 2, 4: 4, 5: 5, 6: 1, 7: 0}
# Official RAF-DB basic class counts, ids 1..7 (RAF-DB website; shared MANIFEST.md).
REAL_TRAIN = {1: 1290, 2: 281, 3: 717, 4: 4772, 5: 1982, 6: 705, 7: 2524}
REAL_TEST = {1: 329, 2: 74, 3: 160, 4: 1185, 5: 478, 6: 162, 7: 680}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_rafdb(tmp_path_factory.mktemp("rafdb"))


def test_registries_find_the_module():
    assert manifest_parser("rafdb") is make_rafdb_manifest
    assert fixture_writer("rafdb") is write_rafdb


def test_fixture_line_ends_match_the_real_files(root):
    basic = (root / "basic/EmoLabel/list_patition_label.txt").read_bytes()
    compound = (root / "compound/EmoLabel/list_patition_label.txt").read_bytes()
    assert b"\r" not in basic and not basic.endswith(b"\n")
    assert compound.count(b"\r\n") == compound.count(b"\n") == 14 + 7 + 3


@pytest.mark.parametrize("image", ["aligned", "original"])
def test_basic_counts_and_labels(root, image):
    df, report = make_rafdb_manifest(root, "basic", image)
    assert report.kept == len(df) == 21
    assert dict(report.skipped) == {"malformed line": 2, "missing image": 1}
    assert sorted(e.split(":")[1] for e in report.examples["malformed line"]) == ["22", "23"]
    assert df["split"].value_counts().to_dict() == {"train": 14, "test": 7}
    lines = (root / "basic/EmoLabel/list_patition_label.txt").read_text().split("\n")[:21]
    expected = [HAND_MAP[int(line.split()[1])] for line in lines]
    assert df["expr"].tolist() == expected
    assert (df["compound"] == -1).all()
    assert df[["valence", "arousal", *AU_COLUMNS]].isna().all().all()
    assert df["path"].iloc[0] == (
        "basic/Image/aligned/train_00001_aligned.jpg" if image == "aligned" else "basic/Image/original/train_00001.jpg"
    )


def test_compound_subset(root):
    df, report = make_rafdb_manifest(root, "compound")
    assert len(df) == 21 and dict(report.skipped) == {"malformed line": 2, "missing image": 1}
    assert (df["expr"] == -1).all()
    assert df["compound"].tolist()[:14] == [k % 11 for k in range(14)]  # ids 1..11 cycled, 0-based
    assert df["path"].iloc[-1] == "compound/Image/aligned/test_007_aligned.jpg"
    both, report = make_rafdb_manifest(root, "both")
    assert len(both) == 42 and report.skipped["malformed line"] == 4


def test_original_images_carry_manual_landmarks_and_box(root):
    df, _ = make_rafdb_manifest(root, "basic", "original")
    for _, row in df.head(3).iterrows():
        stem = row["path"].rsplit("/", 1)[1][:-4]
        text = (root / "basic/Annotation/manual" / f"{stem}_manu_attri.txt").read_text()
        points = np.array([[float(v) for v in line.split("\t")] for line in text.splitlines()[:5]])
        np.testing.assert_allclose(row["landmarks5"], points, atol=1e-3)
        # the fixture pastes a 100x100 face; the box framed by the template is about that size
        assert 80 < row["box_w"] == row["box_h"] < 125
    dm = RafDbDataModule(str(root), image="original", image_size=32)
    item = dm.dataset("train")[0]
    assert tuple(item["image"].shape) == (3, 32, 32)


def test_missing_landmark_file_is_counted(tmp_path):
    root = write_rafdb(tmp_path, n_train=3, n_test=1, subsets=("basic",), specials=False)
    (root / "basic/Annotation/manual/train_00002_manu_attri.txt").unlink()
    (root / "basic/Annotation/manual/train_00003_manu_attri.txt").write_text("1\t2\n3\n")
    df, report = make_rafdb_manifest(root, "basic", "original")
    assert len(df) == 2
    assert report.skipped["missing landmark file"] == 1
    assert report.skipped["malformed landmark file"] == 1
    assert "train_00003_manu_attri.txt" in report.examples["malformed landmark file"][0]


def test_box_from_template_points_is_the_whole_crop():
    from affect.face.template import frontal_template

    for size in (96, 200):
        np.testing.assert_allclose(box_from_landmarks5(frontal_template(size)), (0, 0, size, size), atol=1e-6)
    shifted = frontal_template(96) * 0.5 + 10  # half size, shifted by 10 px
    np.testing.assert_allclose(box_from_landmarks5(shifted), (10, 10, 48, 48), atol=1e-6)


def test_errors_name_what_is_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="basic/EmoLabel/list_patition_label.txt"):
        make_rafdb_manifest(tmp_path)
    with pytest.raises(ValueError, match="subset must be one of"):
        make_rafdb_manifest(tmp_path, subset="extra")
    with pytest.raises(ValueError, match="image must be one of"):
        RafDbDataModule(str(tmp_path), image="cropped")


def test_val_fraction_is_per_image_and_seeded(root):
    a = RafDbDataModule(str(root), val_fraction=0.3, split_seed=0).manifest
    b = RafDbDataModule(str(root), val_fraction=0.3, split_seed=0).manifest
    c = RafDbDataModule(str(root), val_fraction=0.3, split_seed=5).manifest
    assert (a["split"] == "val").sum() == 5  # ceil(0.3 * 14) images of train
    assert (a["split"] == "test").sum() == 7  # the official test split is untouched
    assert a["split"].tolist() == b["split"].tolist()
    assert a["split"].tolist() != c["split"].tolist()


def test_datamodule_batch_and_arguments(root):
    dm = RafDbDataModule(str(root), subset="both", batch_size=5)
    batch = next(iter(dm.dataloader("test", shuffle=False)))
    assert tuple(batch["image"].shape) == (5, 3, 96, 96)
    assert batch["expr"].tolist() == [HAND_MAP[k] for k in range(1, 6)]
    parser = jsonargparse.ArgumentParser()
    parser.add_class_arguments(RafDbDataModule, "data")
    assert {"data.subset", "data.image", "data.require_images", "data.val_fraction"} <= {a.dest for a in parser._actions}


def test_corrupt_image_raises(root, tmp_path):
    small = write_rafdb(tmp_path, n_train=2, n_test=1, subsets=("basic",), specials=False)
    (small / "basic/Image/aligned/train_00001_aligned.jpg").write_bytes(b"\x00" * 10)
    with pytest.raises(ImageReadError, match="train_00001_aligned.jpg"):
        RafDbDataModule(str(small)).dataset("train")[0]


# ---- the real RAF-DB label files in ../shared/data/corpora/rafdb (labels only, no images) ----


@pytest.mark.shared
def test_real_basic_list_counts(shared_data):
    root = shared_data / "corpora" / "rafdb"
    df, report = make_rafdb_manifest(root, "basic", require_images=False)
    assert report.kept == len(df) == 15339 and not report.skipped
    for split, counts in (("train", REAL_TRAIN), ("test", REAL_TEST)):
        got = df[df["split"] == split]["expr"].value_counts().to_dict()
        assert got == {HAND_MAP[k]: v for k, v in counts.items()}
    assert df["path"].iloc[0] == "basic/Image/aligned/train_00001_aligned.jpg"
    assert df["path"].iloc[-1] == "basic/Image/aligned/test_3068_aligned.jpg"  # last line has no newline


@pytest.mark.shared
def test_real_basic_list_without_images_counts_every_row_missing(shared_data):
    df, report = make_rafdb_manifest(shared_data / "corpora" / "rafdb", "basic")
    assert len(df) == 0 and report.kept == 0
    assert dict(report.skipped) == {"missing image": 15339}
    assert report.examples["missing image"][0] == "basic/Image/aligned/train_00001_aligned.jpg"


@pytest.mark.shared
def test_real_compound_excerpt_with_crlf(shared_data):
    root = shared_data / "corpora" / "rafdb" / "compound"
    assert b"\r\n" in (root / "EmoLabel/list_patition_label.EXCERPT.txt").read_bytes()
    report = LoadReport("rafdb")
    rows = parse_label_list(root / "EmoLabel/list_patition_label.EXCERPT.txt", "compound", report)
    assert len(rows) == 200 and not report.skipped
    names = [name for _, name, _ in rows]
    assert names[0] == "train_0001.jpg" and names[99] == "train_0100.jpg"
    assert names[100] == "test_693.jpg" and names[-1] == "test_792.jpg"
    assert rows[0][2] == 6 and rows[2][2] == 10 and rows[-1][2] == 6
    assert all(1 <= label <= 11 for _, _, label in rows)
    # the shared folder has only the excerpt, so the full parser names the file it expects
    with pytest.raises(FileNotFoundError, match="compound/EmoLabel/list_patition_label.txt"):
        make_rafdb_manifest(shared_data / "corpora" / "rafdb", "compound", require_images=False)


@pytest.mark.shared
def test_real_manual_landmark_file(shared_data):
    path = shared_data / "corpora" / "rafdb" / "compound" / "Annotation" / "manual" / "test_001_manu_attri.txt"
    points = parse_manual_landmarks(path.read_text())
    np.testing.assert_allclose(
        points,
        [[308.347, 317.778], [406.938, 329.780], [319.492, 382.933], [335.353, 436.087], [405.652, 442.088]],
        atol=1e-3,
    )
    x, y, w, h = box_from_landmarks5(points)
    assert w == h and x < points[:, 0].min() and x + w > points[:, 0].max() and y < points[:, 1].min()


def test_shipped_yaml_instantiates_on_the_fixture(root):
    repo = Path(__file__).resolve().parents[3]
    parser = jsonargparse.ArgumentParser()
    parser.add_argument("--config", action="config")
    parser.add_subclass_arguments(L.LightningDataModule, "data")
    cfg = parser.parse_args(
        ["--config", str(repo / "experiments/data/rafdb.yaml"), "--data.init_args.root", str(root)]
    )
    dm = parser.instantiate(cfg).data
    assert type(dm) is RafDbDataModule
    assert len(dm.manifest) == 21
