"""SEWA parser (AVEC and per-annotator layouts), alignment, fixture, DataModule, YAML (``affect.data.corpora.sewa``)."""

from __future__ import annotations

from pathlib import Path

import jsonargparse
import numpy as np
import pytest

from affect.data.corpora import manifest_parser
from affect.data.corpora.sewa import SEWADataModule, Trace, make_sewa_manifest
from affect.data.datamodule import CorpusDataModule
from affect.data.fixtures import fixture_writer
from affect.data.fixtures.sewa import label_times, write_sewa

REPO = Path(__file__).resolve().parents[3]
FPS, N_FRAMES = 25, 20  # fixture defaults: labels at 10 Hz over the first 70 % (0.0 .. 0.5 s)
KEPT = 16  # frames with t = k / 25 <= 0.5 + 0.1 (one label period past the last label)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_sewa(tmp_path_factory.mktemp("sewa"))


def _avec(path: Path) -> np.ndarray:
    """(time, arousal, valence) columns of an AVEC label file, read with numpy."""
    return np.genfromtxt(path, delimiter=";", usecols=(1, 2, 3))


def test_registries_find_the_module():
    assert manifest_parser("sewa") is make_sewa_manifest
    assert fixture_writer("sewa") is write_sewa


def test_avec_layout_linear_alignment(root):
    df, report = make_sewa_manifest(root)
    assert report.kept == len(df) == 3 * KEPT
    assert dict(report.skipped) == {"video frame outside the label trace": 3 * (N_FRAMES - KEPT)}
    assert df.groupby("video")["split"].first().to_dict() == {"Devel_01": "val", "Train_01": "train", "Train_02": "train"}
    rows = df[df["video"] == "Train_02"]
    assert rows["frame"].tolist() == list(range(1, KEPT + 1))
    ref = _avec(root / "labels" / "Train_02.csv")
    t = (np.arange(1, KEPT + 1) - 1) / FPS
    np.testing.assert_allclose(rows["valence"], np.interp(t, ref[:, 0], ref[:, 2]), atol=1e-6)
    np.testing.assert_allclose(rows["arousal"], np.interp(t, ref[:, 0], ref[:, 1]), atol=1e-6)
    assert rows["path"].iloc[0] == "frames/Train_02/00001.jpg" and (root / rows["path"].iloc[-1]).is_file()


def test_nearest_alignment_and_header(tmp_path):
    root = write_sewa(tmp_path, recordings=("Train_01",), header=True)
    df, report = make_sewa_manifest(root, interpolation="nearest")
    ref = _avec(root / "labels" / "Train_01.csv")[1:]  # numpy reads the header as a NaN row
    t = (df["frame"].to_numpy() - 1) / FPS
    nearest = np.abs(t[:, None] - ref[None, :, 0]).argmin(axis=1)
    np.testing.assert_allclose(df["valence"], ref[nearest, 2], atol=1e-6)
    assert len(df) == KEPT and "malformed label line" not in report.skipped
    with pytest.raises(ValueError, match="interpolation must be"):
        make_sewa_manifest(root, interpolation="cubic")


def test_trace_edges():
    tr = Trace(np.array([0.2, 0.0, 0.1]), np.array([[0.2, 0.0], [0.0, 0.0], [0.1, 0.0]]))  # unsorted input
    va, ok = tr.at(np.array([0.0, 0.05, 0.29, 0.31]))
    np.testing.assert_allclose(va[:, 0], [0.0, 0.05, 0.2, 0.2])
    assert ok.tolist() == [True, True, True, False]


def test_malformed_lines_and_missing_video(tmp_path):
    root = write_sewa(tmp_path, malformed_line=True, missing_video=True)
    (root / "labels" / "Extra_01.csv").write_text("'Extra_01';0.0;0.1;0.1;0.0\n")
    df, report = make_sewa_manifest(root)
    assert report.skipped["malformed label line"] == 1
    assert report.examples["malformed label line"] == ["Train_01.csv:7: \"'Train_01';oops;;\""]
    assert report.skipped["video missing or undecodable"] == 1
    assert report.skipped["label file not named Train_/Devel_/Test_<n>.csv"] == 1
    assert sorted(df["video"].unique()) == ["Train_01", "Train_02"]


def test_annotator_layout_averages_annotators(tmp_path):
    avec = write_sewa(tmp_path / "avec", recordings=("Train_01",))
    ann = write_sewa(tmp_path / "ann", recordings=("Train_01",), layout="annotators", malformed_line=True)
    ref, _ = make_sewa_manifest(avec)
    df, report = make_sewa_manifest(ann, layout="annotators")
    raw = np.genfromtxt(ann / "annotations/valence/Train_01.csv", delimiter=",", skip_header=1, skip_footer=1)
    assert raw.shape[1] == 4 and np.ptp(raw[:, 1:], axis=1).max() > 0.01  # annotators disagree ...
    np.testing.assert_allclose(df["valence"], ref["valence"], atol=1e-5)  # ... their mean is the gold trace
    np.testing.assert_allclose(df["arousal"], ref["arousal"], atol=1e-5)
    assert report.skipped["malformed label line"] == 1 and (df["split"] == "train").all()
    with pytest.raises(FileNotFoundError, match="expected the folder .*annotations/valence"):
        make_sewa_manifest(avec, layout="annotators")


def test_label_only_and_errors(root, tmp_path):
    df, report = make_sewa_manifest(root, require_media=False)
    assert len(df) == 3 * len(label_times(N_FRAMES, FPS, 10, 0.7)) and not report.skipped
    assert df["path"].iloc[0] == "video/Devel_01.mp4"
    with pytest.raises(FileNotFoundError, match="expected the folder .*labels"):
        make_sewa_manifest(tmp_path)
    with pytest.raises(ValueError, match="layout must be one of"):
        make_sewa_manifest(root, layout="raw")


def test_user_frames_without_index_need_fps(root, tmp_path):
    frames = tmp_path / "frames"
    make_sewa_manifest(root, frames_dir=str(frames))
    for folder in frames.iterdir():
        (folder / "frames.json").unlink()
    with pytest.raises(ValueError, match="pass fps"):
        make_sewa_manifest(root, frames_dir=str(frames), extract=False)
    df, _ = make_sewa_manifest(root, frames_dir=str(frames), extract=False, fps=FPS)
    assert len(df) == 3 * KEPT


def test_datamodule_sequences_and_yaml(root):
    dm = SEWADataModule(str(root), batch_size=2, sequence_length=8)
    batch = next(iter(dm.dataloader("train", shuffle=False)))
    assert batch["image"].shape == (2, 8, 3, 96, 96) and batch["va_mask"].all() and not batch["au_mask"].any()
    parser = jsonargparse.ArgumentParser()
    parser.add_argument("--config", action=jsonargparse.ActionConfigFile)
    parser.add_subclass_arguments(CorpusDataModule, "data")
    yaml = str(REPO / "experiments/data/sewa.yaml")
    dm = parser.instantiate(parser.parse_args(["--config", yaml, "--data.init_args.root", str(root)])).data
    assert isinstance(dm, SEWADataModule) and dm.layout == "avec" and len(dm.manifest) == 3 * KEPT
