"""One face pipeline: the same image gives the same crop through ``affect prepare`` + the store and through
``affect predict``'s face extraction (FER2013 face crops and a full photo)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

SHARED = Path(os.environ.get("AFFECT_SHARED", Path(__file__).resolve().parents[2] / ".." / "shared" / "data"))

pytestmark = [pytest.mark.shared, pytest.mark.slow]


def test_prepare_store_and_predict_give_the_same_crop(tmp_path):
    fer = SHARED / "fer2013" / "train"
    photos = sorted((SHARED / "faces" / "pyfeat").glob("*.jp*g"))
    if not fer.is_dir() or not photos:
        pytest.skip(f"real FER2013 / photos not found under {SHARED} (set AFFECT_SHARED)")
    import cv2
    import torch

    from affect.data.store import open_store
    from affect.face import FaceDetector
    from affect.predict.media import FaceExtractor, FaceOptions
    from affect.prepare import main as prepare

    torch.set_num_threads(1)  # as the prepare worker runs MTCNN: same arithmetic
    root = tmp_path / "fer2013"
    for cls in ("happy", "sad", "surprise"):
        (root / "train" / cls).mkdir(parents=True)
        for p in sorted((fer / cls).glob("*.jpg"))[:4]:
            shutil.copy(p, root / "train" / cls / p.name)
    photo = cv2.imread(str(photos[0]))
    scale = 400 / max(photo.shape[:2])  # a full photo, kept small for the shared CPU
    cv2.imwrite(str(root / "train" / "happy" / "photo.jpg"), cv2.resize(photo, None, fx=scale, fy=scale))

    size = 48
    assert prepare(["fer2013", "--root", str(root), "--out", str(tmp_path / "store"), "--select", "largest",
                    "--image-size", str(size), "--workers", "1", "--no-progress"]) == 0  # fmt: skip
    store = open_store(tmp_path / "store")
    stored = {Path(p).name: store.images[k].transpose(1, 2, 0) for k, p in enumerate(store.manifest["path"])}
    sources = dict(zip((Path(p).name for p in store.manifest["path"]), store.manifest["face_source"], strict=True))

    files = sorted(str(p) for p in root.glob("train/*/*.jpg"))
    table = FaceExtractor(FaceDetector(device="cpu"), FaceOptions(image_size=size, select="largest")).run(files)
    got = {Path(r["input"]).name: table.crops[r["crop"]] for r in table.rows if r["crop"] >= 0}
    whole = {Path(r["input"]).name: r["whole_image"] for r in table.rows}
    assert set(got) == set(stored) == {Path(f).name for f in files}  # every image has its one face in both
    for name, crop in got.items():
        assert crop.shape == (size, size, 3)
        assert np.abs(crop.astype(int) - stored[name].astype(int)).max() <= 1, name
        assert whole[name] == int(sources[name] == "whole_image"), name
    assert sources["photo.jpg"] == "detected"
