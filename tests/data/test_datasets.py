"""FrameDataset / SequenceDataset / CorpusDataModule behaviour on tiny hand-made manifests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from affect.data.datamodule import CorpusDataModule
from affect.data.datasets import FrameDataset, ImageReadError, SequenceDataset
from affect.data.manifest import LoadReport, manifest_from_records, validate_manifest


def write_png(path, value, size=(10, 20)):
    Image.fromarray(np.full((size[1], size[0], 3), value, np.uint8)).save(path)


def test_frame_item_labels_and_masks(tmp_path):
    write_png(tmp_path / "a.png", 7)
    df = manifest_from_records(
        [{"path": "a.png", "corpus": "c", "expr": 3, "valence": 0.5, "AU12": 1.0, "AU4": 0.0}]
    )
    item = FrameDataset(df, tmp_path, image_size=16)[0]
    assert item["image"].shape == (3, 16, 16) and item["image"].dtype == torch.uint8
    assert int(item["image"][0, 0, 0]) == 7
    assert item["va"].tolist() == [0.5, 0.0] and item["va_mask"].tolist() == [True, False]
    assert int(item["expr"]) == 3
    assert item["au_mask"].sum() == 2 and item["au"].sum() == 1.0  # AU4 annotated 0, AU12 annotated 1


def test_box_crop_maps_landmarks_into_unit_square(tmp_path):
    img = np.zeros((40, 40, 3), np.uint8)
    img[10:30, 20:40] = 255  # the box region is white
    Image.fromarray(img).save(tmp_path / "b.png")
    lm = np.zeros((68, 2), np.float32)
    lm[:] = [30.0, 20.0]  # the box centre
    df = manifest_from_records([{
        "path": "b.png", "corpus": "c", "box_x": 20.0, "box_y": 10.0, "box_w": 20.0, "box_h": 20.0,
        "landmarks": lm,
    }])
    item = FrameDataset(df, tmp_path, image_size=8)[0]
    assert int(item["image"].min()) == 255
    np.testing.assert_allclose(item["landmarks"].numpy(), 0.5)
    assert bool(item["landmarks_mask"])


def test_missing_and_corrupt_images_raise_with_the_path(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg at all")
    df = manifest_from_records([{"path": "bad.jpg", "corpus": "c"}, {"path": "gone.jpg", "corpus": "c"}])
    ds = FrameDataset(df, tmp_path)
    with pytest.raises(ImageReadError, match="corrupt or unreadable image: .*bad.jpg"):
        ds[0]
    with pytest.raises(ImageReadError, match="image not found: .*gone.jpg"):
        ds[1]


def test_sequence_items_are_padded_with_a_frame_mask(tmp_path):
    rows = []
    for f in range(1, 6):
        write_png(tmp_path / f"{f}.png", f * 10)
        rows.append({"path": f"{f}.png", "corpus": "c", "video": "v", "frame": f, "valence": f / 10})
    ds = SequenceDataset(manifest_from_records(rows), tmp_path, length=3, stride=3, image_size=4)
    assert len(ds) == 2
    last = ds[1]
    assert last["image"].shape == (3, 3, 4, 4)
    assert last["frame_mask"].tolist() == [True, True, False]
    assert last["frame"].tolist() == [4, 5, 5]
    np.testing.assert_allclose(last["va"][:, 0].numpy(), [0.4, 0.5, 0.5], rtol=1e-6)


def test_manifest_validation_errors():
    with pytest.raises(ValueError, match="split must be one of"):
        validate_manifest(pd.DataFrame({"path": ["a"], "corpus": ["c"], "split": ["dev"]}))
    with pytest.raises(ValueError, match=r"valence/arousal must lie in \[-1, 1\]"):
        validate_manifest(pd.DataFrame({"path": ["a"], "corpus": ["c"], "valence": [5.0]}))
    with pytest.raises(ValueError, match="AU columns must hold 0, 1 or NaN"):
        validate_manifest(pd.DataFrame({"path": ["a"], "corpus": ["c"], "AU1": [9.0]}))


class TwoTaskCorpus(CorpusDataModule):
    corpus = "two"

    def make_manifest(self):
        rows = [{"path": "x.png", "corpus": "two", "subject": f"s{i}", "expr": i % 7} for i in range(6)]
        rows += [{"path": "x.png", "corpus": "two", "subject": f"s{i}", "valence": 0.0} for i in range(4)]
        report = LoadReport("two")
        report.kept = len(rows)
        return pd.DataFrame(rows), report


def test_task_filter_is_counted_and_split_is_subject_independent(tmp_path):
    write_png(tmp_path / "x.png", 1)
    dm = TwoTaskCorpus(str(tmp_path), task="expr", val_fraction=0.34, batch_size=2)
    df = dm.manifest
    assert len(df) == 6 and dm.report.skipped["not annotated for task expr"] == 4 and dm.report.kept == 6
    assert set(df["split"]) == {"train", "val"}
    assert not set(df.loc[df.split == "train", "subject"]) & set(df.loc[df.split == "val", "subject"])
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape[0] == 2
    with pytest.raises(ValueError, match="no 'test' rows"):
        dm.dataset("test")


def test_missing_root_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="corpus root .*nowhere does not exist"):
        _ = TwoTaskCorpus(str(tmp_path / "nowhere")).manifest
