"""AFEW-VA parser, fixture writer, DataModule, YAML, and the real clip 001 (``affect.data.corpora.afew_va``)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonargparse
import numpy as np
import pytest

from affect.data.corpora import manifest_parser
from affect.data.corpora.afew_va import AFEWVADataModule, landmark_box, make_afew_va_manifest
from affect.data.datamodule import CorpusDataModule
from affect.data.fixtures import fixture_writer
from affect.data.fixtures.afew_va import write_afew_va

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_afew_va(tmp_path_factory.mktemp("afew_va"))


def test_registries_find_the_module():
    assert manifest_parser("afew_va") is make_afew_va_manifest
    assert fixture_writer("afew_va") is write_afew_va


def test_clean_fixture_matches_the_json(root):
    df, report = make_afew_va_manifest(root)
    assert report.kept == len(df) == 3 * 6 and not report.skipped
    data = json.loads((root / "002" / "002.json").read_text())
    rows = df[df["video"] == "002"]
    assert rows["path"].tolist() == [f"002/{k:05d}.png" for k in range(6)] and rows["frame"].tolist() == list(range(6))
    np.testing.assert_allclose(rows["valence"], [data["frames"][f"{k:05d}"]["valence"] / 10 for k in range(6)], atol=1e-6)
    np.testing.assert_allclose(rows["arousal"], [data["frames"][f"{k:05d}"]["arousal"] / 10 for k in range(6)], atol=1e-6)
    np.testing.assert_allclose(rows["landmarks"].iloc[3], np.array(data["frames"]["00003"]["landmarks"]), atol=1e-4)
    assert df.groupby("video")["subject"].first().to_dict() == {"001": "Actor A", "002": "Actor A", "003": "Actor B"}
    assert df.filter(like="AU").isna().all().all() and (df["expr"] == -1).all()


def test_quirks_are_counted_exactly(tmp_path):
    root = write_afew_va(
        tmp_path, missing_png=True, unlabelled_png=True, out_of_range=True, bad_landmarks=True, broken_json=True
    )
    (tmp_path / "005").mkdir()  # a clip folder without JSON
    df, report = make_afew_va_manifest(root)
    assert dict(report.skipped) == {
        "labelled frame without PNG": 1,
        "PNG without label": 1,
        "valence/arousal missing or outside -10..10": 1,
        "landmarks not 68x2 (row kept without them)": 1,
        "unreadable clip JSON": 1,
        "clip without <clip>.json": 1,
    }
    assert report.examples["valence/arousal missing or outside -10..10"][0].startswith("001/00000: 12.0")
    assert report.examples["unreadable clip JSON"][0].startswith("004/004.json: ")
    assert report.examples["clip without <clip>.json"] == ["005/005.json"]
    clip1 = df[df["video"] == "001"]
    assert clip1["frame"].tolist() == [1, 2, 3, 4] and clip1["landmarks"].iloc[0] is None
    assert len(df) == 4 + 6 + 6


def test_landmark_box(root):
    lm = np.array([[10.0, 20.0], [50.0, 30.0]])
    assert landmark_box(lm, 0.0) == (10.0, 5.0, 40.0, 40.0)
    df, _ = make_afew_va_manifest(root, box_margin=0.25)
    box = df[["box_x", "box_y", "box_w", "box_h"]].iloc[0].to_numpy()
    lm = df["landmarks"].iloc[0]
    side = (lm.max(0) - lm.min(0)).max() * 1.5
    np.testing.assert_allclose(box[2:], [side, side], rtol=1e-5)
    np.testing.assert_allclose(box[:2] + side / 2, (lm.max(0) + lm.min(0)) / 2, rtol=1e-5)


def test_missing_root_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="expected the folder .*nope"):
        make_afew_va_manifest(tmp_path / "nope")


def test_datamodule_splits_by_actor_and_yaml(root):
    dm = AFEWVADataModule(str(root), batch_size=4, val_fraction=0.3, box_margin=0.2)
    m = dm.manifest
    assert m.groupby("subject")["split"].nunique().max() == 1 and set(m["split"]) == {"train", "val"}
    batch = next(iter(dm.dataloader("train", shuffle=False)))
    assert batch["image"].shape == (4, 3, 96, 96) and batch["va_mask"].all() and batch["landmarks_mask"].all()
    lm = batch["landmarks"]
    assert lm.shape == (4, 68, 2) and float(lm.min()) > 0.0 and float(lm.max()) < 1.0  # inside the face box
    parser = jsonargparse.ArgumentParser()
    parser.add_argument("--config", action=jsonargparse.ActionConfigFile)
    parser.add_subclass_arguments(CorpusDataModule, "data")
    yaml = str(REPO / "experiments/data/afew_va.yaml")
    dm = parser.instantiate(parser.parse_args(["--config", yaml, "--data.init_args.root", str(root)])).data
    assert isinstance(dm, AFEWVADataModule) and dm.box_margin == 0.2 and dm.val_fraction == 0.2
    assert len(dm.manifest) == 18


@pytest.mark.shared
def test_real_clip_001(shared_data):
    root = shared_data / "corpora" / "afew_va"
    df, report = make_afew_va_manifest(root)
    assert report.kept == len(df) == 42 and not report.skipped
    assert df["frame"].tolist() == list(range(42)) and (df["subject"] == "Bruce Campbell").all()
    raw = json.loads((root / "001" / "001.json").read_text())["frames"]
    np.testing.assert_allclose(df["valence"], [raw[f"{k:05d}"]["valence"] / 10 for k in range(42)], atol=1e-7)
    np.testing.assert_allclose(df["arousal"], [raw[f"{k:05d}"]["arousal"] / 10 for k in range(42)], atol=1e-7)
    assert df["arousal"].iloc[0] == pytest.approx(0.5) and df["valence"].iloc[0] == pytest.approx(0.0)
    assert all(lm.shape == (68, 2) and lm.dtype == np.float32 for lm in df["landmarks"])
    np.testing.assert_allclose(df["landmarks"].iloc[0][0], [181.4181259729673, 170.1050112037773], rtol=1e-6)
    assert (root / df["path"].iloc[41]).is_file()
