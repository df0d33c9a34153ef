"""AffectNet parser (both releases), fixture writer and DataModule."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import jsonargparse
import lightning as L
import numpy as np
import pytest

from affect.data.corpora import manifest_parser
from affect.data.corpora.affectnet import AffectNetDataModule, detect_release, make_affectnet_manifest
from affect.data.datasets import ImageReadError
from affect.data.fixtures import fixture_writer
from affect.data.fixtures.affectnet import write_affectnet
from affect.data.manifest import AU_COLUMNS
from affect.errors import ConfigError

# AffectNet id -> canonical index (Neutral, Anger, Disgust, Fear, Happiness, Sadness, Surprise),
# written out by hand from the AffectNet README order.
HAND_MAP = {0: 0, 1: 4, 2: 5, 3: 6, 4: 3, 5: 2, 6: 1}
HEADER = "subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,expression,valence,arousal"
LMS = ";".join(["10.5"] * 136)


@pytest.fixture(scope="module")
def csv_root(tmp_path_factory):
    return write_affectnet(tmp_path_factory.mktemp("affectnet_csv"), release="csv")


@pytest.fixture(scope="module")
def npy_root(tmp_path_factory):
    return write_affectnet(tmp_path_factory.mktemp("affectnet_npy"), release="npy")


def _expected_skips():
    return {
        "expression 7 Contempt (EXPR label dropped, row kept for VA)": 2,
        "arousal -2 invalid (dimension masked, row kept)": 2,
        "expression 9 Uncertain without valid VA (row dropped)": 2,
        "expression 10 No-Face (row dropped)": 2,
        "missing image": 2,
    }


def test_registries_find_the_module():
    assert manifest_parser("affectnet") is make_affectnet_manifest
    assert fixture_writer("affectnet") is write_affectnet


def test_csv_release_counts(csv_root):
    assert detect_release(csv_root) == "csv"
    df, report = make_affectnet_manifest(csv_root)
    assert report.kept == len(df) == 2 * (14 + 2)
    assert dict(report.skipped) == {**_expected_skips(), "malformed line": 2}
    assert df["split"].value_counts().to_dict() == {"train": 16, "val": 16}
    # the malformed example names the file and the line (header = line 1, 14 regular rows, 6 specials)
    assert report.examples["malformed line"][0].startswith("Manually_Annotated_file_lists/training.csv:21:")
    assert "136 landmark values" in report.examples["malformed line"][0]


def test_csv_labels_match_an_independent_read(csv_root):
    df, _ = make_affectnet_manifest(csv_root)
    by_path = df.set_index("path")
    n_checked = 0
    for split_file in ("training.csv", "validation.csv"):
        with open(csv_root / "Manually_Annotated_file_lists" / split_file, newline="") as f:
            for row in csv.DictReader(f):
                path = "Manually_Annotated_Images/" + row["subDirectory_filePath"]
                expression = int(row["expression"])
                if path not in by_path.index:
                    continue
                got = by_path.loc[path]
                assert got["expr"] == HAND_MAP.get(expression, -1)
                for dim in ("valence", "arousal"):
                    value = float(row[dim])
                    if value == -2:
                        assert math.isnan(got[dim])
                    else:
                        assert got[dim] == pytest.approx(value, abs=1e-6)
                box = [float(row[k]) for k in ("face_x", "face_y", "face_width", "face_height")]
                assert [got["box_x"], got["box_y"], got["box_w"], got["box_h"]] == box
                lms = np.array([float(v) for v in row["facial_landmarks"].split(";")]).reshape(68, 2)
                np.testing.assert_allclose(got["landmarks"], lms, atol=1e-4)
                n_checked += 1
    assert n_checked == 32
    assert df[list(AU_COLUMNS)].isna().all().all()  # AffectNet has no AU annotation
    contempt = df[df["expr"] == -1]
    assert len(contempt) == 2 and np.isfinite(contempt[["valence", "arousal"]].to_numpy()).all()
    assert df["arousal"].isna().sum() == 2 and df["valence"].isna().sum() == 0


def test_require_images_false_keeps_rows_without_files(csv_root):
    df, report = make_affectnet_manifest(csv_root, require_images=False)
    assert len(df) == 34 and "missing image" not in report.skipped


def test_npy_release(npy_root):
    assert detect_release(npy_root) == "npy"
    df, report = make_affectnet_manifest(npy_root)
    assert report.kept == len(df) == 32
    assert dict(report.skipped) == {**_expected_skips(), "missing annotation file": 2}
    assert report.examples["missing annotation file"][0] == "train_set/annotations/19_aro.npy"
    # labels read back independently from the .npy files
    for _, row in df.iterrows():
        folder, _, name = row["path"].split("/")
        n = name[:-4]
        ann = npy_root / folder / "annotations"
        expression = int(str(np.load(ann / f"{n}_exp.npy")))
        assert row["expr"] == HAND_MAP.get(expression, -1)
        valence = float(str(np.load(ann / f"{n}_val.npy")))
        assert row["valence"] == pytest.approx(valence, abs=1e-6)
        np.testing.assert_allclose(row["landmarks"], np.load(ann / f"{n}_lnd.npy").reshape(68, 2), atol=1e-4)
    assert "box_x" not in df.columns


def test_hand_built_csv_edge_cases(tmp_path):
    lists = tmp_path / "Manually_Annotated_file_lists"
    lists.mkdir()
    (lists / "training.csv").write_text(
        "\n".join([
            HEADER,
            f"1/a.jpg,0,0,10,10,{LMS},1,0.5,-0.25",  # kept: Happiness
            f"1/b.jpg,0,0,10,10,{LMS},11,0.5,0.5",  # expression outside 0..10
            f"1/c.jpg,0,0,10,10,{LMS},1,1.5,0.5",  # valence outside [-1, 1]
            f"1/d.jpg,0,0,10,10,{LMS},1,0.5",  # 8 fields
            f"1/e.jpg,0,0,10,10,{LMS},x,0.5,0.5",  # non-integer expression
            "1/f.jpg,0,0,10,10,,6,-2,-2",  # kept: Anger, VA masked, no landmarks
        ]) + "\n"
    )
    # a validation file without its header line (as in some copies)
    (lists / "validation.csv").write_text(f"2/g.jpg,1,2,3,4,{LMS},8,0.1,0.2\n")
    df, report = make_affectnet_manifest(tmp_path, require_images=False)
    assert df["path"].tolist() == [
        "Manually_Annotated_Images/1/a.jpg", "Manually_Annotated_Images/1/f.jpg", "Manually_Annotated_Images/2/g.jpg",
    ]
    assert df["expr"].tolist() == [4, 1, -1]
    assert df["split"].tolist() == ["train", "train", "val"]
    assert report.skipped["malformed line"] == 4
    lines = sorted(e.split(":")[1] for e in report.examples["malformed line"])
    assert lines == ["3", "4", "5"]  # examples keep the first three
    assert df.loc[1, "landmarks"] is None
    assert df.loc[1, ["valence", "arousal"]].isna().all()
    assert report.skipped["expression 8 None (EXPR label dropped, row kept for VA)"] == 1


def test_missing_files_raise_with_the_expected_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="Manually_Annotated_file_lists.*train_set"):
        make_affectnet_manifest(tmp_path)
    (tmp_path / "Manually_Annotated_file_lists").mkdir()
    (tmp_path / "Manually_Annotated_file_lists" / "training.csv").write_text(HEADER + "\n")
    with pytest.raises(FileNotFoundError, match="validation.csv"):
        make_affectnet_manifest(tmp_path)
    (tmp_path / "train_set").mkdir()
    with pytest.raises(FileNotFoundError, match="train_set/annotations"):
        make_affectnet_manifest(tmp_path, release="npy")
    with pytest.raises(ValueError, match="release must be"):
        make_affectnet_manifest(tmp_path, release="zip")


def test_datamodule_crops_the_box(csv_root):
    dm = AffectNetDataModule(str(csv_root), batch_size=4)
    batch = next(iter(dm.dataloader("train", shuffle=False)))
    assert batch["image"].dtype.__str__() == "torch.uint8" and tuple(batch["image"].shape) == (4, 3, 96, 96)
    assert batch["landmarks_mask"].all()
    lm = batch["landmarks"]
    assert lm.min() >= 0.0 and lm.max() <= 1.0  # landmarks lie inside the cropped box
    # the crop is the pasted face, not the grey (127) canvas around it
    border = batch["image"][:, :, :, :2].float()
    assert (border - 127).abs().mean() > 5
    # no public test set: `affect test` refuses unless val is named as the test split on purpose
    with pytest.raises(ConfigError, match="test_split: val"):
        dm.test_dataloader()
    on_val = AffectNetDataModule(str(csv_root), batch_size=4, test_split="val")
    assert on_val.test_dataloader().dataset is on_val.dataset("val")


def test_datamodule_arguments_reach_jsonargparse():
    parser = jsonargparse.ArgumentParser()
    parser.add_class_arguments(AffectNetDataModule, "data")
    dests = {a.dest for a in parser._actions}
    assert {"data.root", "data.release", "data.require_images", "data.val_fraction", "data.task"} <= dests


def test_task_filter_and_val_fraction(csv_root):
    dm = AffectNetDataModule(str(csv_root), task="expr", val_fraction=0.25, split_seed=1)
    m = dm.manifest
    assert (m["expr"] >= 0).all() and len(m) == 30
    assert dm.report.skipped["not annotated for task expr"] == 2
    assert (m["split"] == "val").sum() == 15 + 4  # official val + 4 of the 15 train images (>= 25 %)


def test_corrupt_image_raises(tmp_path):
    root = write_affectnet(tmp_path, n_per_split=2, specials=False)
    df, _ = make_affectnet_manifest(root)
    (root / df.loc[0, "path"]).write_bytes(b"not a jpeg")
    dm = AffectNetDataModule(str(root))
    with pytest.raises(ImageReadError, match="corrupt or unreadable image"):
        dm.dataset("train")[0]


def test_shipped_yaml_instantiates_on_the_fixture(csv_root):
    repo = Path(__file__).resolve().parents[3]
    parser = jsonargparse.ArgumentParser()
    parser.add_argument("--config", action="config")
    parser.add_subclass_arguments(L.LightningDataModule, "data")
    cfg = parser.parse_args(
        ["--config", str(repo / "experiments/data/affectnet.yaml"), "--data.init_args.root", str(csv_root)]
    )
    dm = parser.instantiate(cfg).data
    assert type(dm) is AffectNetDataModule
    assert len(dm.manifest) == 32


def test_val_as_test_with_val_fraction(csv_root):
    dm = AffectNetDataModule(str(csv_root), val_as_test=True, val_fraction=0.25, split_seed=0)
    counts = dm.manifest["split"].value_counts().to_dict()
    assert counts == {"train": 12, "val": 4, "test": 16}
    assert dm.test_dataloader().dataset is dm.dataset("test")
