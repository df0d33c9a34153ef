"""FER2013 image-folder parser, fixture writer, DataModule, and the real training split."""

from __future__ import annotations

from pathlib import Path

import jsonargparse
import lightning as L
import pytest

from affect.data.corpora import manifest_parser
from affect.data.corpora.fer2013 import Fer2013DataModule, make_fer2013_manifest
from affect.data.datasets import ImageReadError
from affect.data.fixtures import fixture_writer
from affect.data.fixtures.fer2013 import write_fer2013
from affect.data.manifest import AU_COLUMNS

# folder -> canonical index (Neutral, Anger, Disgust, Fear, Happiness, Sadness, Surprise), by hand
HAND_MAP = {"neutral": 0, "angry": 1, "disgust": 2, "fear": 3, "happy": 4, "sad": 5, "surprise": 6}
# FER2013 "Training" usage counts (shared/data/fer2013/MANIFEST.md; the canonical counts)
REAL_TRAIN = {"angry": 3995, "disgust": 436, "fear": 4097, "happy": 7215, "neutral": 4965, "sad": 4830, "surprise": 3171}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_fer2013(tmp_path_factory.mktemp("fer2013"))


def test_registries_find_the_module():
    assert manifest_parser("fer2013") is make_fer2013_manifest
    assert fixture_writer("fer2013") is write_fer2013


def test_counts_and_labels(root):
    df, report = make_fer2013_manifest(root)
    assert report.kept == len(df) == 7 * 3 + 7 * 2
    assert dict(report.skipped) == {"unknown class folder": 2, "not an image file": 1, "file outside a class folder": 1}
    assert report.examples["unknown class folder"] == ["train/contempt/"]
    for _, row in df.iterrows():
        split, folder, _ = row["path"].split("/")
        assert row["split"] == split and row["expr"] == HAND_MAP[folder]
    assert df[["valence", "arousal", *AU_COLUMNS]].isna().all().all()


def test_missing_split_folders_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"train.*test"):
        make_fer2013_manifest(tmp_path)
    (tmp_path / "test" / "happy").mkdir(parents=True)
    df, report = make_fer2013_manifest(tmp_path)
    assert len(df) == 0 and report.kept == 0 and list(df.columns)[:2] == ["path", "corpus"]


def test_val_fraction_holds_out_images_of_train(root):
    m = Fer2013DataModule(str(root), val_fraction=0.2, split_seed=3).manifest
    assert (m["split"] == "val").sum() == 5  # ceil(0.2 * 21)
    assert (m["split"] == "test").sum() == 14
    again = Fer2013DataModule(str(root), val_fraction=0.2, split_seed=3).manifest
    assert again["split"].tolist() == m["split"].tolist()


def test_grey_images_become_three_equal_channels(root):
    dm = Fer2013DataModule(str(root), batch_size=7, image_size=48)
    batch = next(iter(dm.dataloader("test", shuffle=False)))
    image = batch["image"]
    assert tuple(image.shape) == (7, 3, 48, 48)
    assert (image[:, 0] == image[:, 1]).all() and (image[:, 1] == image[:, 2]).all()
    assert image.float().std() > 10  # a drawn face, not a flat image
    parser = jsonargparse.ArgumentParser()
    parser.add_class_arguments(Fer2013DataModule, "data")
    assert {"data.root", "data.val_fraction", "data.split_seed"} <= {a.dest for a in parser._actions}


def test_corrupt_image_raises(tmp_path):
    root = write_fer2013(tmp_path, n_train=1, n_test=0, specials=False)
    (root / "train/angry/Train_00000.jpg").write_bytes(b"\xff\xd8\xff truncated")
    dm = Fer2013DataModule(str(root))
    with pytest.raises(ImageReadError, match="Train_00000.jpg"):
        dm.dataset("train")[dm.manifest.index[dm.manifest["expr"] == 1][0]]


@pytest.mark.shared
def test_real_training_split_counts(shared_data):
    df, report = make_fer2013_manifest(shared_data / "fer2013")
    assert report.kept == len(df) == 28709 and not report.skipped
    assert (df["split"] == "train").all()
    counts = df["expr"].value_counts().to_dict()
    assert counts == {HAND_MAP[k]: v for k, v in REAL_TRAIN.items()}
    # the paths agree with INDEX.csv beside the folders
    index = (shared_data / "fer2013" / "INDEX.csv").read_text().splitlines()[1:]
    assert sorted(line.split(",")[0] for line in index) == sorted(df["path"])


@pytest.mark.shared
def test_real_image_loads(shared_data):
    dm = Fer2013DataModule(str(shared_data / "fer2013"), image_size=48)
    item = dm.dataset("train")[0]
    folder = dm.dataset("train").manifest["path"][0].split("/")[1]  # train/<class>/<name>.jpg
    assert tuple(item["image"].shape) == (3, 48, 48) and int(item["expr"]) == HAND_MAP[folder]


def test_shipped_yaml_instantiates_on_the_fixture(root):
    repo = Path(__file__).resolve().parents[3]
    parser = jsonargparse.ArgumentParser()
    parser.add_argument("--config", action="config")
    parser.add_subclass_arguments(L.LightningDataModule, "data")
    cfg = parser.parse_args(
        ["--config", str(repo / "experiments/data/fer2013.yaml"), "--data.init_args.root", str(root)]
    )
    dm = parser.instantiate(cfg).data
    assert type(dm) is Fer2013DataModule
    assert len(dm.manifest) == 35
