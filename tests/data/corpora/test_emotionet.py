"""EmotioNet parser (AU sheets, compound sheets, URL -> file mapping), fixture and DataModule."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import jsonargparse
import lightning as L
import numpy as np
import pytest

from affect.data.corpora import manifest_parser
from affect.data.corpora.emotionet import (
    EMOTIONET_CLASSES,
    EmotioNetDataModule,
    class_index,
    make_emotionet_manifest,
    url_basename,
)
from affect.data.datasets import ImageReadError
from affect.data.fixtures import fixture_writer
from affect.data.fixtures.emotionet import SHEET_AUS, write_emotionet
from affect.data.manifest import AU_COLUMNS

BASE_SKIPS = {
    "AU value 999 not coded (AU masked, row kept)": 8,  # rows 0, 3, 6, 9 of 12, two sheets
    "AU43 outside AU_SET (column ignored, row kept)": 24,
    "malformed line": 3,
    "missing image": 2,
    "duplicate URL in sheet": 2,
}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_emotionet(tmp_path_factory.mktemp("emotionet"))


def test_registries_find_the_module():
    assert manifest_parser("emotionet") is make_emotionet_manifest
    assert fixture_writer("emotionet") is write_emotionet


@pytest.mark.parametrize("url_map", [False, True])
def test_counts(tmp_path, url_map):
    root = write_emotionet(tmp_path, url_map=url_map, size=32)
    df, report = make_emotionet_manifest(root)
    assert report.kept == len(df) == 12 + 12 + 16
    expected = dict(BASE_SKIPS, **({"unmapped URL": 2} if url_map else {}))
    assert dict(report.skipped) == expected
    assert df["split"].value_counts().to_dict() == {"train": 12, "val": 12, "test": 16}
    if url_map:
        assert df["path"].str.startswith("fetched/").all()
        assert report.examples["unmapped URL"][0].startswith("sheets/train.csv:17: http://")


def test_au_values_match_an_independent_read(root):
    df, _ = make_emotionet_manifest(root)
    by_path = df.set_index("path")
    n = 0
    for split in ("train", "val"):
        with open(root / "sheets" / f"{split}.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        for row in rows[:12]:  # the regular rows
            got = by_path.loc["images/" + row["URL"].split("/")[-1].split("?")[0]]
            for au in SHEET_AUS:
                if au == 43:
                    continue
                value = int(row[f"AU{au}"])
                assert (math.isnan(got[f"AU{au}"]) if value == 999 else got[f"AU{au}"] == value), (au, value)
            n += 1
    assert n == 24
    au_rows = df[df["split"] != "test"]
    for au in (7, 10, 14, 15, 23, 24):  # not on the sheet: stay not-annotated
        assert au_rows[f"AU{au}"].isna().all()
    assert au_rows["AU26"].isna().sum() == 8
    assert au_rows[["valence", "arousal"]].isna().all().all()
    assert (au_rows["expr"] == -1).all() and (au_rows["compound"] == -1).all()


def test_compound_sheet(root):
    df, report = make_emotionet_manifest(root)
    test = df[df["split"] == "test"]
    assert test["compound"].tolist() == list(range(16))
    # the 6 basic classes also carry a canonical EXPR label
    assert test["expr"].tolist()[:6] == [4, 5, 3, 1, 6, 2] and (test["expr"].iloc[6:] == -1).all()
    assert test[list(AU_COLUMNS)].isna().all().all()
    assert "Contemptuous" in report.examples["malformed line"][-1]


def test_hand_built_tab_sheet_and_errors(tmp_path):
    sheets = tmp_path / "sheets"
    sheets.mkdir()
    (sheets / "test.csv").write_text(
        "image_url\tAU 1\tAU02\tAU12\n"
        "http://x.org/a.jpg\t1\t0\t999\n"
        "http://x.org/b.jpg\t1\t0.5\t0\n"  # 0.5 is not a code
        "http://x.org/c.jpg\t1\t0\n"  # 3 fields
        "\t1\t0\t0\n"  # empty URL
    )
    df, report = make_emotionet_manifest(tmp_path, require_images=False)
    assert df["path"].tolist() == ["images/a.jpg"]
    assert df.loc[0, "AU1"] == 1 and df.loc[0, "AU2"] == 0 and math.isnan(df.loc[0, "AU12"])
    assert report.skipped["malformed line"] == 3
    assert [e.split(":")[1] for e in report.examples["malformed line"]] == ["3", "4", "5"]
    # require_images: the file is absent
    _, report = make_emotionet_manifest(tmp_path)
    assert report.skipped["missing image"] == 1
    (sheets / "test.csv").write_text("link,AU1\nhttp://x.org/a.jpg,1\n")
    with pytest.raises(ValueError, match="no URL column"):
        make_emotionet_manifest(tmp_path)
    (sheets / "test.csv").unlink()
    with pytest.raises(FileNotFoundError, match="sheets/train.csv"):
        make_emotionet_manifest(tmp_path)


def test_url_map_header_is_checked(tmp_path):
    write_emotionet(tmp_path, n_per_split=1, n_compound=0, specials=False, size=32)
    (tmp_path / "urls.csv").write_text("address,file\n")
    with pytest.raises(ValueError, match="header 'url,path'"):
        make_emotionet_manifest(tmp_path)


def test_class_index_and_url_basename():
    assert class_index("Happily Surprised") == EMOTIONET_CLASSES.index("Happily Surprised")
    assert class_index("fearful") == EMOTIONET_CLASSES.index("Fear")
    assert class_index("16") == 15
    with pytest.raises(ValueError, match="outside 1..16"):
        class_index("17")
    with pytest.raises(ValueError, match="unknown class 'Hatred'"):
        class_index("Hatred")
    assert class_index("2", classes=["A", "B"]) == 1
    assert url_basename("https://h.com/a/b/IMG_1.JPG?x=1#f") == "IMG_1.JPG"


def test_custom_class_list(tmp_path):
    write_emotionet(tmp_path, n_per_split=0, n_compound=2, specials=False, size=32)
    (tmp_path / "sheets/compound_test.csv").write_text(
        "URL,label\n" + "\n".join(
            f"{row.split(',')[0]},2" for row in (tmp_path / "sheets/compound_test.csv").read_text().splitlines()[1:]
        ) + "\n"
    )
    df, _ = make_emotionet_manifest(tmp_path, classes=["Awed", "Sadness"])
    assert df["compound"].tolist() == [1, 1] and df["expr"].tolist() == [5, 5]


def test_datamodule_task_filter_and_batch(root):
    dm = EmotioNetDataModule(str(root), task="au", batch_size=6)
    assert set(dm.manifest["split"]) == {"train", "val"} and len(dm.manifest) == 24
    assert dm.report.skipped["not annotated for task au"] == 16
    batch = next(iter(dm.dataloader("train", shuffle=False)))
    assert tuple(batch["image"].shape) == (6, 3, 96, 96)
    mask = batch["au_mask"].numpy()
    assert mask.sum(axis=1).tolist() == [10, 11, 11, 10, 11, 11]  # 11 sheet AUs, AU26 999 on rows 0, 3
    assert not batch["va_mask"].any()
    parser = jsonargparse.ArgumentParser()
    parser.add_class_arguments(EmotioNetDataModule, "data")
    assert {"data.classes", "data.require_images", "data.task"} <= {a.dest for a in parser._actions}
    np.testing.assert_array_equal(batch["au"].numpy()[~mask], 0)


def test_corrupt_image_raises(tmp_path):
    root = write_emotionet(tmp_path, n_per_split=2, n_compound=0, specials=False, size=32)
    df, _ = make_emotionet_manifest(root)
    (root / df.loc[1, "path"]).write_bytes(b"GIF89a broken")
    with pytest.raises(ImageReadError, match=df.loc[1, "path"]):
        EmotioNetDataModule(str(root)).dataset("train")[1]


def test_shipped_yaml_instantiates_on_the_fixture(root):
    repo = Path(__file__).resolve().parents[3]
    parser = jsonargparse.ArgumentParser()
    parser.add_argument("--config", action="config")
    parser.add_subclass_arguments(L.LightningDataModule, "data")
    cfg = parser.parse_args(
        ["--config", str(repo / "experiments/data/emotionet.yaml"), "--data.init_args.root", str(root)]
    )
    dm = parser.instantiate(cfg).data
    assert type(dm) is EmotioNetDataModule
    assert len(dm.manifest) == 24
