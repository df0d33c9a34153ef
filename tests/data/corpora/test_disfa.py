"""DISFA parser, fixture writer, folds, DataModule and YAML (``affect.data.corpora.disfa``)."""

from __future__ import annotations

from pathlib import Path

import jsonargparse
import numpy as np
import pytest
import torch

from affect.data.corpora import manifest_parser
from affect.data.corpora._folds import DISFA_3FOLD, subject_folds
from affect.data.corpora.disfa import DISFA_AUS, DISFADataModule, make_disfa_manifest
from affect.data.datamodule import CorpusDataModule
from affect.data.fixtures import fixture_writer
from affect.data.fixtures.disfa import write_disfa
from affect.data.manifest import AU_COLUMNS

REPO = Path(__file__).resolve().parents[3]
MASKED = [c for c in AU_COLUMNS if int(c[2:]) not in DISFA_AUS]  # AU7, 10, 14, 23, 24


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_disfa(tmp_path_factory.mktemp("disfa"))


def _reference(root: Path, subject: str, au: int, threshold: int = 2) -> np.ndarray:
    table = np.loadtxt(root / "ActionUnit_Labels" / subject / f"{subject}_au{au}.txt", delimiter=",", dtype=int)
    return (table[:, 1] >= threshold).astype(np.float32)


def test_registries_find_the_module():
    assert manifest_parser("disfa") is make_disfa_manifest
    assert fixture_writer("disfa") is write_disfa


def test_clean_fixture_counts_labels_and_frames(root):
    df, report = make_disfa_manifest(root)
    assert report.kept == len(df) == 3 * 8 and not report.skipped
    assert df["frame"].tolist() == list(range(1, 9)) * 3
    assert df["path"].iloc[0] == "frames/SN001/00001.jpg" and (root / df["path"].iloc[-1]).is_file()
    for subject, rows in df.groupby("subject"):
        for au in DISFA_AUS:
            np.testing.assert_array_equal(rows[f"AU{au}"].to_numpy(), _reference(root, subject, au))
    assert df[MASKED].isna().all().all()
    assert df[["valence", "arousal"]].isna().all().all() and (df["expr"] == -1).all()
    assert (df["video"] == df["subject"]).all()


def test_threshold_changes_occurrence(root):
    df, _ = make_disfa_manifest(root, threshold=4, require_media=False)
    rows = df[df["subject"] == "SN003"]
    np.testing.assert_array_equal(rows["AU12"].to_numpy(), _reference(root, "SN003", 12, threshold=4))
    with pytest.raises(ValueError, match="threshold must be an intensity in 1..5"):
        make_disfa_manifest(root, threshold=0)


@pytest.mark.parametrize(("fold", "held_out"), [(0, "SN001"), (1, "SN013"), (2, "SN003"), (None, None)])
def test_subject_independent_folds(root, fold, held_out):
    df, _ = make_disfa_manifest(root, fold=fold, require_media=False)
    assert df.groupby("subject")["split"].nunique().max() == 1
    val = sorted(df.loc[df["split"] == "val", "subject"].unique())
    assert val == ([held_out] if held_out else [])


def test_fold_lists_and_fallback():
    assert sorted(s for fold in DISFA_3FOLD for s in fold) == sorted(set(s for fold in DISFA_3FOLD for s in fold))
    assert sum(len(f) for f in DISFA_3FOLD) == 27  # DISFA's 27 subjects, 9 per fold
    assert subject_folds(["SN001", "SN999"], 3, DISFA_3FOLD) == {"SN001": 0, "SN999": 1}  # round-robin
    with pytest.raises(ValueError, match="fold must be in 0..2"):
        make_disfa_manifest(".", fold=3)


def test_quirks_are_counted_exactly(tmp_path):
    root = write_disfa(tmp_path, missing_au=26, short_au=9, malformed_line=True, extra_video_frames=2)
    df, report = make_disfa_manifest(root)
    assert dict(report.skipped) == {
        "missing AU file (AU masked for the subject)": 1,
        "AU files of a subject disagree on frame count": 1,
        "malformed AU line": 1,
        "video frame without labels": 2,
    }
    assert report.examples["malformed AU line"] == ["SN001_au1.txt:9: 'oops,x'"]
    assert report.examples["missing AU file (AU masked for the subject)"] == ["ActionUnit_Labels/SN001/SN001_au26.txt"]
    sn1 = df[df["subject"] == "SN001"]
    assert len(sn1) == 8 and sn1["AU26"].isna().all()
    assert sn1["AU9"].isna().tolist() == [False] * 7 + [True]  # the short file's last frame is masked
    assert df.loc[df["subject"] == "SN013", "AU26"].notna().all()


def test_labels_past_the_video_and_missing_video(tmp_path):
    root = write_disfa(tmp_path, extra_label_frames=3)
    (root / "Videos_LeftCamera" / "LeftVideoSN003_comp.avi").unlink()
    df, report = make_disfa_manifest(root)
    assert dict(report.skipped) == {"labelled frame without video frame": 3, "video missing or undecodable": 8}
    assert "LeftVideoSN003_comp.avi" in report.examples["video missing or undecodable"][0]
    assert sorted(df["subject"].unique()) == ["SN001", "SN013"] and len(df) == 16


def test_user_extracted_frames_custom_dir_and_label_only(root, tmp_path):
    extracted, _ = make_disfa_manifest(root)
    again, report = make_disfa_manifest(root, extract=False)
    assert again["path"].tolist() == extracted["path"].tolist() and not report.skipped
    elsewhere, _ = make_disfa_manifest(root, frames_dir=str(tmp_path / "cache"))
    assert Path(elsewhere["path"].iloc[0]).is_absolute() and Path(elsewhere["path"].iloc[0]).is_file()
    empty = write_disfa(tmp_path / "fresh", subjects=("SN002",))
    labels_only, report = make_disfa_manifest(empty, require_media=False)
    assert len(labels_only) == 8 and not (empty / "frames").exists() and not report.skipped
    missing, report = make_disfa_manifest(empty, extract=False)
    assert missing.empty and report.skipped == {"video missing or undecodable": 8}


def test_bad_layout_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="expected the folder .*ActionUnit_Labels"):
        make_disfa_manifest(tmp_path)
    (tmp_path / "ActionUnit_Labels").mkdir()
    with pytest.raises(ValueError, match="camera must be one of"):
        make_disfa_manifest(tmp_path, camera="top")


def test_datamodule_frames_and_sequences(root):
    dm = DISFADataModule(str(root), batch_size=4, fold=0)
    batch = next(iter(dm.dataloader("train", shuffle=False)))
    assert batch["image"].shape == (4, 3, 96, 96) and batch["image"].dtype == torch.uint8
    assert batch["au_mask"].shape == (4, 17) and batch["au_mask"][0].sum() == 12
    assert not batch["va_mask"].any() and (batch["expr"] == -1).all()
    seq = DISFADataModule(str(root), batch_size=2, sequence_length=5, fold=0)
    item = next(iter(seq.dataloader("val", shuffle=False)))
    assert item["image"].shape == (2, 5, 3, 96, 96)
    assert item["frame_mask"].tolist() == [[True] * 5, [True] * 3 + [False] * 2]
    assert item["frame"][0].tolist() == [1, 2, 3, 4, 5]


def test_cli_arguments_and_yaml(root):
    parser = jsonargparse.ArgumentParser()
    parser.add_class_arguments(DISFADataModule)
    assert {"root", "camera", "threshold", "fold", "num_folds", "frames_dir", "extract", "batch_size",
            "sequence_length", "val_fraction"} <= set(parser.get_defaults().keys())
    parser = jsonargparse.ArgumentParser()
    parser.add_argument("--config", action=jsonargparse.ActionConfigFile)
    parser.add_subclass_arguments(CorpusDataModule, "data")
    cfg = parser.parse_args(["--config", str(REPO / "experiments/data/disfa.yaml"), "--data.init_args.root", str(root)])
    dm = parser.instantiate(cfg).data
    assert isinstance(dm, DISFADataModule) and dm.fold == 0 and dm.threshold == 2
    assert len(dm.manifest) == 24


def test_prepare_data_extracts_once_per_node(tmp_path):
    root = write_disfa(tmp_path, subjects=("SN001",))
    DISFADataModule(str(root), extract=False).prepare_data()
    assert not (root / "frames").exists()
    DISFADataModule(str(root)).prepare_data()
    assert sorted(p.name for p in (root / "frames" / "SN001").iterdir())[:2] == ["00001.jpg", "00002.jpg"]
    assert len(DISFADataModule(str(root), extract=False, fold=None).manifest) == 8
