"""albumentations pipelines from a file on the image-folder path (``data.init_args.transforms``)."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from affect.data.corpora.fer2013 import Fer2013DataModule
from affect.errors import ConfigError


@pytest.fixture
def fer_root(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("happy", "sad"):
        (tmp_path / "fer" / "train" / cls).mkdir(parents=True)
        for k in range(4):
            Image.fromarray(rng.integers(0, 256, (48, 48), dtype=np.uint8)).save(tmp_path / "fer" / "train" / cls / f"{k}.png")
    return tmp_path / "fer"


def saved(tmp_path, pipeline, name="aug.yaml"):
    A.save(pipeline, str(tmp_path / name), data_format="yaml" if name.endswith("yaml") else "json")
    return str(tmp_path / name)


def test_training_images_go_through_the_pipeline(fer_root, tmp_path):
    path = saved(tmp_path, A.Compose([A.InvertImg(p=1.0)]))
    plain = Fer2013DataModule(str(fer_root), image_size=48, val_fraction=0.25)
    aug = Fer2013DataModule(str(fer_root), image_size=48, val_fraction=0.25, transforms=path)
    for dm in (plain, aug):
        dm.setup("fit")
    for k in range(len(plain.dataset("train"))):
        raw, inv = plain.dataset("train")[k]["image"], aug.dataset("train")[k]["image"]
        assert np.array_equal(inv.numpy(), 255 - raw.numpy())
    # evaluation splits are never augmented
    assert np.array_equal(aug.dataset("val")[0]["image"].numpy(), plain.dataset("val")[0]["image"].numpy())


def test_a_pipeline_that_changes_dtype_or_size_is_an_error(fer_root, tmp_path):
    path = saved(tmp_path, A.Compose([A.Normalize()]), "norm.json")
    dm = Fer2013DataModule(str(fer_root), image_size=48, transforms=path)
    dm.setup("fit")
    with pytest.raises(ConfigError, match="keep images uint8"):
        dm.dataset("train")[0]


def test_bad_files_and_store_are_refused(fer_root, tmp_path):
    (tmp_path / "junk.yaml").write_text("transform: {__class_fullname__: NoSuchTransform}\n")
    dm = Fer2013DataModule(str(fer_root), image_size=48, transforms=str(tmp_path / "junk.yaml"))
    dm.setup("fit")
    with pytest.raises(ConfigError, match="not an albumentations pipeline"):
        dm.dataset("train")
    with pytest.raises(ConfigError, match="use data.init_args.augment"):
        Fer2013DataModule(str(fer_root), store=str(tmp_path), transforms=str(tmp_path / "junk.yaml"))


def test_geometric_transforms_refused_with_landmarks(fer_root, tmp_path):
    path = saved(tmp_path, A.Compose([A.HorizontalFlip(p=0.5), A.RandomBrightnessContrast(p=0.5)]))
    dm = Fer2013DataModule(str(fer_root), transforms=path)
    rows = pd.DataFrame({"landmarks": [np.zeros((68, 2), np.float32)]})
    with pytest.raises(ConfigError, match=r"geometric transforms \['HorizontalFlip'\]"):
        dm._transforms("train", rows)
    assert dm._transforms("train", pd.DataFrame({"landmarks": [None]})) is not None
