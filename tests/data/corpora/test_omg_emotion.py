"""OMG-Emotion parser, fixture, DataModule, YAML and the real CSVs (``affect.data.corpora.omg_emotion``)."""

from __future__ import annotations

import csv
from pathlib import Path

import jsonargparse
import numpy as np
import pytest

from affect.data.corpora import manifest_parser
from affect.data.corpora.omg_emotion import OMGEmotionDataModule, make_omg_emotion_manifest, youtube_id
from affect.data.datamodule import CorpusDataModule
from affect.data.fixtures import fixture_writer
from affect.data.fixtures.omg_emotion import write_omg_emotion

REPO = Path(__file__).resolve().parents[3]
# EmotionMaxVote id -> canonical index (Neutral, Anger, Disgust, Fear, Happiness, Sadness, Surprise),
# by hand from the OMG-Emotion README: 0 Anger, 1 Disgust, 2 Fear, 3 Happy, 4 Neutral, 5 Sad, 6 Surprise.
HAND_MAP = {0: 1, 1: 2, 2: 3, 3: 4, 4: 0, 5: 5, 6: 6}
N_FRAMES = 6


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_omg_emotion(tmp_path_factory.mktemp("omg"))


def _csv_rows(path: Path) -> list[dict]:
    with path.open(newline="") as fh:
        return [r for r in csv.DictReader(fh) if r["video"]]


def test_registries_find_the_module():
    assert manifest_parser("omg_emotion") is make_omg_emotion_manifest
    assert fixture_writer("omg_emotion") is write_omg_emotion


def test_frames_carry_their_utterance_labels(root):
    df, report = make_omg_emotion_manifest(root)
    assert report.kept == len(df) == (4 + 2) * N_FRAMES
    assert dict(report.skipped) == {"malformed line": 2}
    assert report.examples["malformed line"][0].startswith("omg_TrainVideos.csv:6: ")
    for split, name in (("train", "omg_TrainVideos.csv"), ("val", "omg_ValidationVideos.csv")):
        for row in _csv_rows(root / name):
            frames = df[df["video"] == f"{row['video']}/{Path(row['utterance']).stem}"]
            assert len(frames) == N_FRAMES and (frames["split"] == split).all()
            assert frames["frame"].tolist() == list(range(1, N_FRAMES + 1))
            np.testing.assert_allclose(frames["valence"], float(row["valence"]), atol=1e-6)
            np.testing.assert_allclose(frames["arousal"], 2 * float(row["arousal"]) - 1, atol=1e-6)
            assert (frames["expr"] == HAND_MAP[int(row["EmotionMaxVote"])]).all()
            assert (frames["subject"] == youtube_id(row["link"])).all()
    assert df["path"].iloc[0] == "frames/train0/utterance_1/00001.jpg" and (root / df["path"].iloc[-1]).is_file()


def test_test_split_missing_clip_and_raw_arousal(tmp_path):
    root = write_omg_emotion(tmp_path, missing_clip=True)
    df, report = make_omg_emotion_manifest(root, include_test=True, rescale_arousal=False)
    assert report.skipped == {"malformed line": 2, "clip missing or undecodable": 1}
    assert "train0/utterance_1.mp4" in report.examples["clip missing or undecodable"][0]
    test = df[df["split"] == "test"]
    assert len(test) == 2 * N_FRAMES and test[["valence", "arousal"]].isna().all().all() and (test["expr"] == -1).all()
    row = _csv_rows(root / "omg_TrainVideos.csv")[1]
    assert df.loc[df["video"] == "train0/utterance_2", "arousal"].iloc[0] == pytest.approx(float(row["arousal"]), abs=1e-6)


def test_bad_values_and_duplicates_are_counted(tmp_path):
    root = write_omg_emotion(tmp_path, malformed_tail=False)
    path = root / "omg_TrainVideos.csv"
    lines = path.read_text().splitlines()
    lines[1] = lines[1].rsplit(",", 1)[0] + ",9"  # emotion id outside 0..6
    lines.append(lines[2])  # the same utterance twice
    lines.append(lines[3].replace(lines[3].split(",")[5], "1.5", 1))  # arousal outside [0, 1]
    path.write_text("\n".join(lines) + "\n")
    _, report = make_omg_emotion_manifest(root, require_media=False)
    assert report.skipped == {"label out of range": 2, "duplicate utterance": 1}
    assert report.examples["duplicate utterance"] == ["omg_TrainVideos.csv:6: train0/utterance_2.mp4"]


def test_layout_errors(tmp_path, root):
    with pytest.raises(FileNotFoundError, match="expected the file .*omg_TrainVideos.csv"):
        make_omg_emotion_manifest(tmp_path)
    (tmp_path / "omg_TrainVideos.csv").write_text("link,start,end,video,utterance,arousal\n")
    with pytest.raises(ValueError, match="header lacks \\['valence', 'EmotionMaxVote'\\]"):
        make_omg_emotion_manifest(tmp_path)


def test_datamodule_sequences_per_utterance_and_yaml(root):
    dm = OMGEmotionDataModule(str(root), batch_size=2, sequence_length=4)
    batch = next(iter(dm.dataloader("val", shuffle=False)))
    assert batch["image"].shape == (2, 4, 3, 96, 96) and batch["video"] == ["val0/utterance_1"] * 2
    assert batch["frame_mask"][1].tolist() == [True, True, False, False]  # 6 frames = 4 + 2 padded
    parser = jsonargparse.ArgumentParser()
    parser.add_argument("--config", action=jsonargparse.ActionConfigFile)
    parser.add_subclass_arguments(CorpusDataModule, "data")
    yaml = str(REPO / "experiments/data/omg_emotion.yaml")
    dm = parser.instantiate(parser.parse_args(["--config", yaml, "--data.init_args.root", str(root)])).data
    assert isinstance(dm, OMGEmotionDataModule) and dm.rescale_arousal and len(dm.manifest) == 36


@pytest.mark.shared
def test_real_csvs_label_only(shared_data):
    root = shared_data / "corpora" / "omg_emotion"
    df, report = make_omg_emotion_manifest(root, require_media=False, include_test=True)
    assert df["split"].value_counts().to_dict() == {"train": 2442, "test": 2229, "val": 617}
    assert dict(report.skipped) == {"malformed line": 2}
    assert [e.split(":")[:2] for e in report.examples["malformed line"]] == [
        ["omg_TrainVideos.csv", "2444"], ["omg_TrainVideos.csv", "2445"],
    ]
    train = df[df["split"] == "train"]
    raw = _csv_rows(root / "omg_TrainVideos.csv")
    assert len(raw) == 2442
    np.testing.assert_allclose(train["arousal"], [2 * float(r["arousal"]) - 1 for r in raw], atol=1e-6)
    np.testing.assert_allclose(train["valence"], [float(r["valence"]) for r in raw], atol=1e-6)
    assert train["expr"].tolist() == [HAND_MAP[int(r["EmotionMaxVote"])] for r in raw]
    assert (df["frame"] == -1).all() and df["video"].iloc[0] == "5b44393ed/utterance_4"
    assert df["path"].iloc[0] == "5b44393ed/utterance_4.mp4" and df["subject"].iloc[0] == "CROcsl0lIec"
    # class sanity of the id order: Happy utterances are the most positive, Sad among the most negative
    mean_v = train.groupby("expr")["valence"].mean()
    assert mean_v.idxmax() == 4 and mean_v[5] < mean_v[0] < mean_v[4]
