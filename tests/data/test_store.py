"""The prepared store and its datasets: exact round trips of images, labels and landmarks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from torch.utils.data import DataLoader

from affect.data.manifest import AU_COLUMNS
from affect.face import apply_transform, five_from_68, frontal_template
from affect.store.reader import StoreFrameDataset, StoreSequenceDataset, open_store
from affect.store.writer import PrepareOptions, prepare_store

N_STILL = 20


def write_toy_corpus(root) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """96x96 PNG stills (train/val, mixed tasks), two 'videos' of frames, one corrupt file."""
    rng = np.random.default_rng(0)
    recs, pixels = [], {}
    for i in range(N_STILL):
        img = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
        name = f"img{i:02d}.png"
        Image.fromarray(img).save(root / name)
        pixels[name] = img
        rec = {"path": name, "corpus": "toy", "split": "train" if i < 14 else "val", "subject": f"s{i % 4}"}
        if i % 3 == 0:
            rec["expr"] = i % 7
        if i % 3 == 1:
            rec.update(valence=(i - 10) / 10, arousal=-(i - 10) / 20)
        if i % 3 == 2:
            rec.update({c: float((i + k) % 2) for k, c in enumerate(AU_COLUMNS)})
            rec["AU4"] = np.nan  # one AU not annotated
        recs.append(rec)
    for video, n in (("v1", 12), ("v2", 5)):
        (root / video).mkdir()
        for f in range(n):
            img = rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)
            name = f"{video}/{f:05d}.png"
            Image.fromarray(img).save(root / name)
            pixels[name] = img
            recs.append({"path": name, "corpus": "toy", "split": "train", "subject": video, "video": video,
                         "frame": f, "expr": f % 7, "valence": 0.1, "arousal": -0.1})
    (root / "broken.png").write_bytes(b"\x89PNG broken")
    recs.append({"path": "broken.png", "corpus": "toy", "split": "train", "expr": 3})
    return pd.DataFrame.from_records(recs), pixels


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    df, pixels = write_toy_corpus(root)
    out = tmp_path_factory.mktemp("store") / "toy"
    report = prepare_store(df, root, out, shard_size=8, options=PrepareOptions(detect="never"), progress=False)
    return df, pixels, out, report


def test_report_counts_everything(toy):
    df, _, out, report = toy
    assert report["frames_in"] == len(df) == N_STILL + 17 + 1
    assert report["corrupt"] == 1 and report["no_face"] == 0
    assert report["faces"] == len(df) - 1
    assert "broken.png" in report["examples"]["corrupt"][0]
    store = open_store(out)
    assert store.report == report
    assert len(store.images) == len(store.manifest) == len(df)
    assert store.manifest.loc[store.manifest["path"] == "broken.png", "status"].tolist() == ["corrupt"]
    assert len(store.header["shards"]) == 5


def test_images_round_trip_exactly_in_requested_order(toy):
    _, pixels, out, _ = toy
    ds = StoreFrameDataset(str(out), "train")
    assert "broken.png" not in set(ds.df["path"])
    idx = [len(ds) - 1, 3, 17, 9, 3]  # spans several shards, repeats, arbitrary order
    batch = ds.__getitems__(idx)
    assert batch["image"].shape == (5, 3, 96, 96) and batch["image"].dtype.is_floating_point is False
    for b, i in enumerate(idx):
        ref = pixels[ds.df.loc[i, "path"]].transpose(2, 0, 1)
        assert np.array_equal(batch["image"][b].numpy(), ref)


def test_labels_and_masks(toy):
    df, _, out, _ = toy
    ds = StoreFrameDataset(str(out), "val")
    batch = ds.__getitems__(list(range(len(ds))))
    src = df.set_index("path").loc[ds.df["path"]]
    va = src[["valence", "arousal"]].to_numpy(np.float32)
    assert np.array_equal(batch["va_mask"].numpy(), np.isfinite(va))
    np.testing.assert_allclose(batch["va"].numpy(), np.nan_to_num(va), atol=1e-6)
    expr = src["expr"].fillna(-1).to_numpy(np.int64)
    assert np.array_equal(batch["expr"].numpy(), expr)
    au = src[list(AU_COLUMNS)].to_numpy(np.float32)
    assert np.array_equal(batch["au_mask"].numpy(), np.isfinite(au))
    assert np.array_equal(batch["au"].numpy(), np.nan_to_num(au))
    assert batch["corpus"] == ["toy"] * len(ds) and batch["video"] == [""] * len(ds)
    assert not batch["landmarks_mask"].any()


def test_dataloader_fetches_whole_batches(toy):
    _, pixels, out, _ = toy
    ds = StoreFrameDataset(str(out), "train")
    dl = DataLoader(ds, batch_size=7, shuffle=True, collate_fn=ds.collate_fn)
    seen = []
    for batch in dl:
        assert set(batch) >= {"image", "va", "va_mask", "expr", "au", "au_mask", "corpus", "video", "frame"}
        seen += [bytes(im.numpy().tobytes()) for im in batch["image"]]
    want = {pixels[p].transpose(2, 0, 1).tobytes() for p in ds.df["path"]}
    assert len(seen) == len(ds) and set(seen) == want


def test_task_filter(toy):
    _, _, out, _ = toy
    only_au = StoreFrameDataset(str(out), "train", tasks=["au"])
    assert len(only_au) > 0 and only_au.__getitems__(range(len(only_au)))["au_mask"].any(1).all()
    assert len(StoreFrameDataset(str(out), "train", task="expr")) == len(StoreFrameDataset(str(out), "train", tasks=["expr"]))
    with pytest.raises(ValueError, match="no usable rows"):
        StoreFrameDataset(str(out), "test")


def test_sequences_windows_padding_and_masks(toy):
    _, pixels, out, _ = toy
    ds = StoreSequenceDataset(str(out), "train", length=5)
    # v1: 12 frames -> windows at 0, 5 and a last, shortened one (10, 11 + padding): every frame once, as the
    # image-folder SequenceDataset cuts them (affect.data.windows); v2: 5 frames -> 1
    assert len(ds) == 4
    batch = ds.__getitems__(range(4))
    assert batch["image"].shape == (4, 5, 3, 96, 96)
    assert batch["frame_mask"].tolist() == [[True] * 5, [True] * 5, [True] * 2 + [False] * 3, [True] * 5]
    assert [f[:n] for f, n in zip(batch["frame"].tolist(), (5, 5, 2, 5), strict=True)] == [
        [0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11], [0, 1, 2, 3, 4]]  # fmt: skip
    assert batch["video"] == ["v1", "v1", "v1", "v2"]
    assert np.array_equal(batch["image"][1, 2].numpy(), pixels["v1/00007.png"].transpose(2, 0, 1))
    long = StoreSequenceDataset(str(out), "train", length=8, stride=4)
    b = long.__getitems__([len(long) - 1])  # v2 padded from 5 to 8
    assert b["frame_mask"][0].tolist() == [True] * 5 + [False] * 3
    assert (b["image"][0, 5:] == 0).all() and (b["expr"][0, 5:] == -1).all() and not b["va_mask"][0, 5:].any()
    assert b["expr"][0, :5].tolist() == [0, 1, 2, 3, 4]


def test_incomplete_store_is_refused(tmp_path):
    (tmp_path / "shards").mkdir()
    with pytest.raises(FileNotFoundError, match="not a complete affect store"):
        open_store(tmp_path)


def test_given_landmarks_align_and_are_stored(tmp_path):
    """68 landmarks that are an exact similarity image of a shape whose 5 anchors are the template:
    the stored landmarks' anchors land on the template and equal the transformed input."""
    rng = np.random.default_rng(5)
    tpl = frontal_template(96)
    shape = rng.uniform(20, 76, (68, 2))
    shape[36:42] += tpl[0] - shape[36:42].mean(0)
    shape[42:48] += tpl[1] - shape[42:48].mean(0)
    shape[[30, 48, 54]] = tpl[2:]
    a, s = 0.4, 3.0
    M = np.array([[s * np.cos(a), -s * np.sin(a), 150], [s * np.sin(a), s * np.cos(a), 20]])
    src = apply_transform(M, shape).astype(np.float32)
    Image.fromarray(rng.integers(0, 256, (500, 500, 3), dtype=np.uint8)).save(tmp_path / "face.png")
    Image.fromarray(rng.integers(0, 256, (48, 48), dtype=np.uint8)).save(tmp_path / "crop.png")
    df = pd.DataFrame({"path": ["face.png", "crop.png"], "corpus": "toy", "landmarks": [src, None]})
    prepare_store(df, tmp_path, tmp_path / "st", options=PrepareOptions(detect="never"), progress=False)
    st = open_store(tmp_path / "st")
    lm = st.landmarks[np.array([0, 1])]
    np.testing.assert_allclose(five_from_68(lm[0]), tpl, atol=1e-3)
    np.testing.assert_allclose(lm[0], shape, atol=1e-3)
    assert np.isnan(lm[1]).all()
    assert st.manifest["has_landmarks"].tolist() == [1, 0]
    ds = StoreFrameDataset(str(tmp_path / "st"))
    b = ds.__getitems__([0, 1])
    assert b["landmarks_mask"].tolist() == [True, False] and b["landmarks"].shape == (2, 68, 2)
    # batches carry landmarks in [0, 1] of the crop, like the image-file datasets
    np.testing.assert_allclose(b["landmarks"][0].numpy(), shape / st.image_size, atol=1e-5)


def test_given_box_is_cropped_without_detection(tmp_path):
    rng = np.random.default_rng(6)
    img = rng.integers(0, 256, (200, 300, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "boxed.png")
    df = pd.DataFrame({"path": ["boxed.png"], "corpus": "toy", "box_x": [40.0], "box_y": [30.0],
                       "box_w": [96.0], "box_h": [96.0]})
    prepare_store(df, tmp_path, tmp_path / "st", options=PrepareOptions(detect="never"), progress=False)
    st = open_store(tmp_path / "st")
    assert np.array_equal(st.images[0], img[30:126, 40:136].transpose(2, 0, 1))
