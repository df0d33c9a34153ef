"""Aff-Wild2: both ABAW layouts, headers, sentinels, missing frames, merging, predictions, DataModule."""

from __future__ import annotations

from pathlib import Path

import jsonargparse
import numpy as np
import pytest
import torch

from affect.data.corpora import manifest_parser
from affect.data.corpora.affwild2 import (
    AffWild2DataModule,
    affwild2_video_path,
    make_affwild2_manifest,
    read_affwild2_predictions,
    write_affwild2_predictions,
)
from affect.data.datamodule import CorpusDataModule
from affect.data.datasets import FrameDataset, ImageReadError
from affect.data.fixtures import fixture_writer
from affect.data.fixtures.affwild2 import affwild2_task_videos, affwild2_videos, write_affwild2
from affect.labels import AU_SET

REPO = Path(__file__).resolve().parents[3]
N_VIDEOS, N_FRAMES, SENT, OTHER, MISSING = 4, 12, 2, 1, 1


@pytest.fixture(scope="module", params=["abaw3", "abaw5"])
def corpus(request, tmp_path_factory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp(f"affwild2_{request.param}")
    write_affwild2(root, n_videos=N_VIDEOS, n_frames=N_FRAMES, layout=request.param, seed=1)
    return root, request.param


def _expected(task: str, expr_classes: int = 8) -> dict[str, int]:
    """Skip counts and kept rows the fixture's documented structure implies (independent of the parser)."""
    n_files = len(affwild2_task_videos(N_VIDEOS)[task])
    tag = task.upper()
    sentinel = "not annotated (-5)" if task == "va" else "not annotated (-1)"
    out = {f"{tag}: {sentinel}": SENT * n_files, f"{tag}: malformed line": 1, f"{tag}: missing frame": MISSING}
    if task == "expr" and expr_classes == 8:
        out[f"{tag}: Other (outside the 7 classes)"] = OTHER * n_files
    out["kept"] = n_files * N_FRAMES - sum(out.values())
    return out


@pytest.mark.parametrize("task", ["va", "expr", "au"])
def test_counts_per_task(corpus, task):
    root, _ = corpus
    df, report = make_affwild2_manifest(root, task=task)
    expected = _expected(task)
    kept = expected.pop("kept")
    assert dict(report.skipped) == expected
    assert report.kept == len(df) == kept
    assert set(df["split"]) == {"train", "val"}
    assert set(df.loc[df["split"] == "val", "subject"]) == {"10-60-1280x720"}
    assert set(df.loc[df["video"].str.endswith("_left"), "subject"]) == {"10-60-1280x720"}
    # malformed examples carry file:line
    (example,) = report.examples[f"{task.upper()}: malformed line"]
    assert example.endswith(":13: " + repr({"va": "0.1;0.2", "expr": "happy", "au": "1,0"}[task]))
    assert "00011.jpg" in report.examples[f"{task.upper()}: missing frame"][0]
    assert ((df["video"] == "10-60-1280x720_left") & (df["frame"] == N_FRAMES - 1)).sum() == 0


def test_labels_match_annotation_files(corpus):
    """Values equal the txt lines, read here with numpy (an independent reader)."""
    root, layout = corpus
    base = root / "annotations" if layout == "abaw3" else root
    folder = {"abaw3": "VA_Set", "abaw5": "VA_Estimation_Challenge"}[layout]
    raw = np.loadtxt(base / folder / "Train_Set" / "video2.txt", delimiter=",", skiprows=1)
    df, _ = make_affwild2_manifest(root, task="va")
    rows = df[df["video"] == "video2"].sort_values("frame")
    np.testing.assert_allclose(rows[["valence", "arousal"]].to_numpy(), raw[rows["frame"].to_numpy() - 1], atol=1e-6)
    assert rows["frame"].tolist() == list(range(SENT + 1, N_FRAMES + 1))
    assert rows["path"].iloc[0] == f"cropped_aligned/video2/{SENT + 1:05d}.jpg"

    au_folder = {"abaw3": "AU_Set", "abaw5": "AU_Detection_Challenge"}[layout]
    path = base / au_folder / "Validation_Set" / "10-60-1280x720_right.txt"
    header = path.read_text().splitlines()[0].split(",")
    raw = np.loadtxt(path, delimiter=",", skiprows=1)
    df, _ = make_affwild2_manifest(root, task="au")
    rows = df[df["video"] == "10-60-1280x720_right"].sort_values("frame")
    np.testing.assert_array_equal(rows[header].to_numpy(), raw[rows["frame"].to_numpy() - 1])
    others = [f"AU{a}" for a in AU_SET if f"AU{a}" not in header]
    assert rows[others].isna().all().all()  # AUs outside the 12 are masked, not 0


def test_all_tasks_merge_into_one_row_per_frame(corpus):
    root, _ = corpus
    merged, report = make_affwild2_manifest(root, task="all")
    per_task = {t: make_affwild2_manifest(root, task=t)[0] for t in ("va", "expr", "au")}
    keys = set()
    for df in per_task.values():
        keys |= set(zip(df["video"], df["frame"], strict=True))
    assert len(merged) == len(keys) == report.kept
    assert not merged.duplicated(["video", "frame"]).any()
    both = merged[(merged["expr"] >= 0) & merged["valence"].notna() & merged["AU1"].notna()]
    assert len(both) > 0
    # one frame's labels equal those of the per-task manifests
    row = both.iloc[0]
    for task, df in per_task.items():
        other = df[(df["video"] == row["video"]) & (df["frame"] == row["frame"])].iloc[0]
        cols = {"va": ["valence", "arousal"], "expr": ["expr"], "au": ["AU1", "AU12", "AU25"]}[task]
        np.testing.assert_allclose(other[cols].to_numpy(float), row[cols].to_numpy(float))
    # video1 has no EXPR file: its rows carry VA and AU but expr -1
    assert (merged.loc[merged["video"] == "video1", "expr"] == -1).all()
    assert merged.loc[merged["video"] == "video1", "valence"].notna().any()


def test_seven_class_and_eight_au_headers(tmp_path):
    write_affwild2(tmp_path, n_videos=3, n_frames=8, expr_classes=7, au_count=8, seed=2)
    df, report = make_affwild2_manifest(tmp_path, task="expr")
    assert not any("Other" in k for k in report.skipped)
    expected = dict(_expected_small("expr", 3, 8))
    assert report.kept == expected["kept"]
    df, _ = make_affwild2_manifest(tmp_path, task="au")
    eight = [f"AU{a}" for a in (1, 2, 4, 6, 12, 15, 20, 25)]
    assert df[eight].notna().all().all()
    assert df[[f"AU{a}" for a in (7, 10, 23, 24, 26)]].isna().all().all()


def _expected_small(task: str, n_videos: int, n_frames: int) -> dict[str, int]:
    n_files = len(affwild2_task_videos(n_videos)[task])
    return {"kept": n_files * n_frames - SENT * n_files - 1 - MISSING}


def test_unknown_header_and_missing_folder_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"VA_Set.*VA_Estimation_Challenge"):
        make_affwild2_manifest(tmp_path)
    write_affwild2(tmp_path, n_videos=3, n_frames=8)
    import shutil

    shutil.rmtree(tmp_path / "annotations" / "AU_Set")
    with pytest.raises(FileNotFoundError, match=r"AU annotations not found: expected .*AU_Set"):
        make_affwild2_manifest(tmp_path, task="au")
    df, report = make_affwild2_manifest(tmp_path, task="all")  # absent task folder is counted
    assert report.skipped["task folder absent"] == 1
    path = tmp_path / "annotations" / "VA_Set" / "Train_Set" / "video1.txt"
    path.write_text("Valence;Arousal\n0.1;0.2\n")
    with pytest.raises(ValueError, match="video1.txt: VA header must be 'valence,arousal'"):
        make_affwild2_manifest(tmp_path, task="va")


def test_explicit_and_ambiguous_layouts(tmp_path):
    write_affwild2(tmp_path, n_videos=3, n_frames=8, layout="abaw5")
    auto, _ = make_affwild2_manifest(tmp_path, task="va")
    explicit, _ = make_affwild2_manifest(tmp_path, task="va", layout="abaw5")
    assert auto.equals(explicit) and len(auto) > 0
    with pytest.raises(FileNotFoundError, match="VA_Set"):
        make_affwild2_manifest(tmp_path, task="va", layout="abaw3")
    (tmp_path / "annotations" / "VA_Set").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"both Aff-Wild2 annotation layouts.*pass layout="):
        make_affwild2_manifest(tmp_path, task="va")
    with pytest.raises(ValueError, match="layout must be one of"):
        make_affwild2_manifest(tmp_path, task="va", layout="abaw9")


def test_partial_sentinels_mask_one_value(tmp_path):
    write_affwild2(tmp_path, n_videos=3, n_frames=8, malformed_line=False)
    va = tmp_path / "annotations" / "VA_Set" / "Train_Set" / "video1.txt"
    lines = va.read_text().splitlines()
    lines[5] = "0.25,-5"  # frame 5: arousal not annotated
    lines[6] = "0.25,1.5"  # frame 6: out of range -> malformed
    va.write_text("\n".join(lines) + "\n")
    au = tmp_path / "annotations" / "AU_Set" / "Train_Set" / "video1.txt"
    lines = au.read_text().splitlines()
    lines[5] = "1,-1,0,0,0,0,0,0,0,0,0,0"  # AU2 not annotated
    au.write_text("\n".join(lines) + "\n")
    df, report = make_affwild2_manifest(tmp_path)
    row = df[(df["video"] == "video1") & (df["frame"] == 5)].iloc[0]
    assert row["valence"] == 0.25 and np.isnan(row["arousal"])
    assert row["AU1"] == 1.0 and np.isnan(row["AU2"]) and row["AU4"] == 0.0
    assert report.skipped["VA: malformed line"] == 1 and report.examples["VA: malformed line"] == ["video1.txt:7: '0.25,1.5'"]


def test_corrupt_jpeg_raises_image_read_error(corpus, tmp_path):
    root, _ = corpus
    df, _ = make_affwild2_manifest(root, task="va")
    bad = tmp_path / "cropped_aligned" / "video2"
    bad.mkdir(parents=True)
    (bad / f"{SENT + 1:05d}.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    ds = FrameDataset(df[df["video"] == "video2"].head(1), root=tmp_path, image_size=48)
    with pytest.raises(ImageReadError, match=r"video2/00003\.jpg"):
        ds[0]


def test_predictions_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    videos = ["v1"] * 3 + ["v2_left"] * 2
    frames = [3, 1, 2, 1, 2]
    va = rng.uniform(-1, 1, (5, 2)).round(4)
    files = write_affwild2_predictions(tmp_path / "va", "va", videos, frames, va)
    assert [f.name for f in files] == ["v1.txt", "v2_left.txt"]
    text = files[0].read_text().splitlines()
    assert text[0] == "image_location,valence,arousal"
    assert text[1].startswith("v1/00001.jpg,")
    vids, frs, vals, head = read_affwild2_predictions(files[0], "va")
    assert vids == ["v1"] * 3 and frs.tolist() == [1, 2, 3] and head == ["valence", "arousal"]
    np.testing.assert_allclose(vals, va[[1, 2, 0]])

    logits = rng.normal(size=(5, 7))
    files = write_affwild2_predictions(tmp_path / "expr", "expr", videos, frames, logits)
    assert files[1].read_text().splitlines()[0] == "image_location,Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other"
    _, frs, vals, _ = read_affwild2_predictions(files[1], "expr")
    assert vals.tolist() == logits[3:].argmax(1).tolist()

    au17 = (rng.random((5, 17)) > 0.5).astype(int)
    files = write_affwild2_predictions(tmp_path / "au", "au", videos, frames, au17)
    _, _, vals, head = read_affwild2_predictions(files[1], "au")
    assert head == ["AU1", "AU2", "AU4", "AU6", "AU7", "AU10", "AU12", "AU15", "AU23", "AU24", "AU25", "AU26"]
    np.testing.assert_array_equal(vals, au17[3:][:, [AU_SET.index(int(h[2:])) for h in head]])
    with pytest.raises(ValueError, match=r"shape \(5, 2\)"):
        write_affwild2_predictions(tmp_path, "va", videos, frames, va[:, :1])


def test_sequences_have_frame_masks(corpus):
    root, _ = corpus
    dm = AffWild2DataModule(root=str(root), task="va", sequence_length=8, sequence_stride=4, image_size=48, batch_size=2)
    ds = dm.dataset("train")
    train = dm.manifest[dm.manifest["split"] == "train"]
    # windows at 0, 4, (8 ...) over each video's kept frames; the last ones shortened
    expected = []
    for _, g in train.groupby("video"):
        n = len(g)
        starts = list(range(0, max(n - 8, 0) + 1, 4))
        if starts[-1] + 8 < n:
            starts.append(starts[-1] + 4)
        expected += [min(8, n - s) for s in starts]
    assert len(ds) == len(expected)
    for item, n_real in zip((ds[i] for i in range(len(ds))), expected, strict=True):
        assert item["image"].shape == (8, 3, 48, 48)
        assert item["frame_mask"].tolist() == [True] * n_real + [False] * (8 - n_real)
        frames = item["frame"][item["frame_mask"]]
        assert torch.all(frames[1:] > frames[:-1])


def test_datamodule_batches(corpus):
    root, _ = corpus
    dm = AffWild2DataModule(root=str(root), batch_size=5, image_size=48)
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].dtype == torch.uint8 and batch["image"].shape == (5, 3, 48, 48)
    assert batch["va"].dtype == torch.float32 and batch["va"].shape == (5, 2)
    assert batch["va_mask"].dtype == torch.bool
    assert batch["expr"].dtype == torch.int64 and batch["expr"].shape == (5,)
    assert batch["au"].shape == (5, 17) and batch["au_mask"].dtype == torch.bool
    assert batch["au_mask"][:, [AU_SET.index(a) for a in (5, 9, 14, 17, 20)]].sum() == 0
    assert len(batch["video"]) == 5 and batch["frame"].dtype == torch.int64
    assert dm.report is not None and dm.report.kept == len(dm.manifest)


def test_datamodule_cli_arguments_and_registries(corpus):
    parser = jsonargparse.ArgumentParser()
    parser.add_class_arguments(AffWild2DataModule, "data")
    cfg = parser.parse_args(["--data.root", "/x", "--data.layout", "abaw5", "--data.task", "va", "--data.sequence_length", "8"])
    assert cfg.data.root == "/x" and cfg.data.layout == "abaw5" and cfg.data.sequence_length == 8
    assert manifest_parser("affwild2") is make_affwild2_manifest
    assert fixture_writer("affwild2") is write_affwild2
    assert affwild2_videos(3) == ["video1", "10-60-1280x720_left", "10-60-1280x720_right"]


def test_fixture_videos_have_audio(tmp_path):
    from affect.data.audio import load_audio

    write_affwild2(tmp_path, n_videos=3, n_frames=8, with_videos=True)
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == ["10-60-1280x720.mp4", "video1.mp4"]
    wave, _ = load_audio(tmp_path / "videos" / "video1.mp4")
    assert affwild2_video_path(tmp_path, "10-60-1280x720_right") == tmp_path / "videos" / "10-60-1280x720.mp4"
    with pytest.raises(FileNotFoundError, match="videos/video9.mp4"):
        affwild2_video_path(tmp_path, "video9")
    assert len(wave) >= 8 / 30 * 44100 * 0.95 and np.abs(wave).max() > 0.01


def test_yaml_with_env_root(tmp_path, monkeypatch):
    write_affwild2(tmp_path / "Aff-Wild2", n_videos=3, n_frames=8, layout="abaw5")
    monkeypatch.setenv("AFFECT_DATA", str(tmp_path))
    parser = jsonargparse.ArgumentParser()
    parser.add_argument("--config", action=jsonargparse.ActionConfigFile)
    parser.add_subclass_arguments(CorpusDataModule, "data")
    cfg = parser.parse_args(["--config", str(REPO / "experiments/data/affwild2.yaml")])
    dm = parser.instantiate(cfg).data
    assert isinstance(dm, AffWild2DataModule) and dm.root == str(tmp_path / "Aff-Wild2") and dm.task is None
    keys = {(v, f) for t in ("va", "expr", "au") for v, f in make_affwild2_manifest(dm.root, t)[0][["video", "frame"]].itertuples(index=False)}
    assert len(dm.manifest) == len(keys)


def test_raw_videos_give_each_frame_its_audio_source(tmp_path):
    """With ``videos/`` present, frames point at their A/V video; frame 00001.jpg is decoded frame 0."""
    import numpy as np

    from affect.data.audio import to_uint8, video_spectrogram_frames
    from affect.data.corpora.affwild2 import affwild2_video_path, make_affwild2_manifest
    from affect.data.fixtures.affwild2 import write_affwild2
    from affect.store.reader import open_store
    from affect.store.writer import PrepareOptions, prepare_store

    root = write_affwild2(tmp_path / "aw2", n_videos=3, n_frames=8, with_videos=True)
    df, _ = make_affwild2_manifest(root)
    assert (df["audio_frame"] == df["frame"] - 1).all()
    for video, path in zip(df["video"], df["audio_path"], strict=True):
        assert root / path == affwild2_video_path(root, video)
    opts = PrepareOptions(image_size=32, detect="never", audio=True, audio_height=16, audio_width=16)
    report = prepare_store(df, root, tmp_path / "st", options=opts, progress=False)
    assert not report.get("audio_no_source") and not report.get("audio_frame_out_of_range")
    store = open_store(tmp_path / "st")
    video, frame = df["video"][0], int(df["frame"][0])
    row = store.manifest.index[(store.manifest["video"] == video) & (store.manifest["frame"] == frame)][0]
    spec = to_uint8(video_spectrogram_frames(root / df["audio_path"][0], 16, 16, opts.audio_context_s))
    np.testing.assert_array_equal(store.audio[np.array([row])][0], spec[frame - 1])  # jpg n = decoded frame n-1

    no_videos = write_affwild2(tmp_path / "plain", n_videos=3, n_frames=8)
    plain, _ = make_affwild2_manifest(no_videos)
    assert "audio_path" not in plain.columns
