"""BP4D-Spontaneous parser, fixture writer, folds, DataModule and YAML (``affect.data.corpora.bp4d``)."""

from __future__ import annotations

import csv
from pathlib import Path

import jsonargparse
import numpy as np
import pytest

from affect.data.corpora import manifest_parser
from affect.data.corpora._folds import BP4D_3FOLD
from affect.data.corpora.bp4d import BP4D_AUS, BP4DDataModule, make_bp4d_manifest
from affect.data.datamodule import CorpusDataModule
from affect.data.fixtures import fixture_writer
from affect.data.fixtures.bp4d import write_bp4d
from affect.data.manifest import AU_COLUMNS

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_bp4d(tmp_path_factory.mktemp("bp4d"))


def _reference(csv_path: Path, au: int) -> tuple[list[int], list[float]]:
    with csv_path.open() as fh:
        rows = list(csv.DictReader(fh))
    return [int(r["0"]) for r in rows], [np.nan if r[str(au)] == "9" else float(r[str(au)]) for r in rows]


def test_registries_find_the_module():
    assert manifest_parser("bp4d") is make_bp4d_manifest
    assert fixture_writer("bp4d") is write_bp4d


def test_clean_fixture_counts_and_labels(root):
    df, report = make_bp4d_manifest(root)
    assert report.kept == len(df) == 3 * 2 * 5
    assert dict(report.skipped) == {  # AU 3 and 27 (outside AU_SET), AU 5 (not a BP4D AU): once each
        "AU column ignored (outside labels.AU_SET)": 2,
        "AU column ignored (not in the corpus's AU list)": 1,
    }
    rows = df[df["video"] == "M011/T2"]
    assert rows["path"].tolist()[0] == "Sequences/M011/T2/0100.jpg" and rows["frame"].tolist() == list(range(100, 105))
    for au in BP4D_AUS:
        frames, expected = _reference(root / "AUCoding/AU_OCC/M011_T2.csv", au)
        np.testing.assert_array_equal(rows[f"AU{au}"].to_numpy(), expected)
    others = [c for c in AU_COLUMNS if int(c[2:]) not in BP4D_AUS]
    assert others == ["AU5", "AU9", "AU20", "AU25", "AU26"] and df[others].isna().all().all()
    assert (df["subject"] + "/" + df["path"].str.split("/").str[2] == df["video"]).all()


def test_sentinels_malformed_and_missing_images(tmp_path):
    root = write_bp4d(tmp_path, unknown_cells=3, malformed_line=True, missing_images=1, unlabelled_images=2)
    df, report = make_bp4d_manifest(root)
    assert report.skipped["AU value 9 (unknown) masked"] == 3
    assert report.skipped["malformed AU line"] == 1
    assert report.examples["malformed AU line"] == ["F001_T1.csv:7: 'x,1'"]
    assert report.skipped["label row without image"] == 1
    assert report.examples["label row without image"] == ["Sequences/F001/T1/0104.jpg"]
    assert report.skipped["image without label row"] == 2
    first = df[df["video"] == "F001/T1"]
    assert first["frame"].tolist() == [100, 101, 102, 103]
    assert first["AU1"].isna().tolist() == [True, True, True, False]  # 9 = unknown -> masked, not 0
    assert first["AU2"].notna().all()
    labels_only, report = make_bp4d_manifest(root, require_media=False)
    assert len(labels_only) == 30 and "label row without image" not in report.skipped


def test_bad_values_are_masked_and_counted(tmp_path):
    root = write_bp4d(tmp_path, subjects=("F001",), tasks=("T1",))
    path = root / "AUCoding/AU_OCC/F001_T1.csv"
    lines = path.read_text().splitlines()
    cells = lines[1].split(",")
    cells[1] = "7"  # AU1 of frame 100
    lines[1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    df, report = make_bp4d_manifest(root, fold=None)
    assert report.skipped["AU value not 0/1/9 masked"] == 1
    assert report.examples["AU value not 0/1/9 masked"] == ["F001_T1.csv frame 100 AU1=7"]
    assert np.isnan(df["AU1"].iloc[0]) and (df["split"] == "train").all()


@pytest.mark.parametrize(("fold", "held_out"), [(0, "F001"), (1, "M011"), (2, "F007")])
def test_standard_folds(root, fold, held_out):
    df, _ = make_bp4d_manifest(root, fold=fold, require_media=False)
    assert sorted(df.loc[df["split"] == "val", "subject"].unique()) == [held_out]
    assert sum(len(f) for f in BP4D_3FOLD) == 41  # BP4D's 41 subjects


def test_layout_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="AUCoding/AU_OCC or .*AU_OCC"):
        make_bp4d_manifest(tmp_path)
    (tmp_path / "AU_OCC").mkdir()
    assert make_bp4d_manifest(tmp_path)[0].empty  # the short folder name is found too
    with pytest.raises(ValueError, match="image_pattern must contain"):
        make_bp4d_manifest(tmp_path, image_pattern="img/{frame}.jpg")
    with pytest.raises(ValueError, match=r"aus \[11\] are not in labels.AU_SET"):
        make_bp4d_manifest(tmp_path, aus=(1, 11))
    (tmp_path / "AU_OCC" / "F001.csv").write_text("0,1\n1,0\n")
    _, report = make_bp4d_manifest(tmp_path)
    assert report.skipped == {"CSV name not <subject>_<task>.csv": 1}


def test_datamodule_sequences_per_task(root):
    dm = BP4DDataModule(str(root), batch_size=3, sequence_length=4, fold=1)
    batch = next(iter(dm.dataloader("val", shuffle=False)))
    assert batch["image"].shape == (3, 4, 3, 96, 96)
    assert batch["frame"][0].tolist() == [100, 101, 102, 103] and batch["frame_mask"][1].tolist() == [True] + [False] * 3
    assert batch["au_mask"][0, 0].sum() == 12


def test_cli_arguments_and_yaml(root):
    parser = jsonargparse.ArgumentParser()
    parser.add_argument("--config", action=jsonargparse.ActionConfigFile)
    parser.add_subclass_arguments(CorpusDataModule, "data")
    cfg = parser.parse_args(["--config", str(REPO / "experiments/data/bp4d.yaml"), "--data.init_args.root", str(root)])
    dm = parser.instantiate(cfg).data
    assert isinstance(dm, BP4DDataModule) and dm.aus == BP4D_AUS
    assert len(dm.manifest) == 30 and set(dm.manifest["split"]) == {"train", "val"}
