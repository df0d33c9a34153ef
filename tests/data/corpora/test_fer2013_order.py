"""FER2013 evaluation order: a prefix of the validation split (``limit_val_batches``) holds every class."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from affect.data.corpora.fer2013 import Fer2013DataModule, make_fer2013_manifest
from affect.data.fixtures.fer2013 import write_fer2013

SHARED = Path(os.environ.get("AFFECT_SHARED_DATA", Path(__file__).resolve().parents[4] / "shared" / "data"))


def _max_prefix_deviation(labels: np.ndarray) -> float:
    """Largest |count of a class in a prefix - its expected count| over all prefixes and classes."""
    worst = 0.0
    for c in np.unique(labels):
        hits = np.cumsum(labels == c)
        expected = np.arange(1, len(labels) + 1) * (labels == c).mean()
        worst = max(worst, float(np.abs(hits - expected).max()))
    return worst


def test_manifest_splits_are_in_stratified_order(tmp_path):
    root = write_fer2013(tmp_path / "fer", n_train=12, n_test=4, specials=False)
    df, _ = make_fer2013_manifest(root)
    for split in ("train", "test"):
        labels = df.loc[df["split"] == split, "expr"].to_numpy()
        assert _max_prefix_deviation(labels) <= 1.0, split  # class by class would be off by 12 * 6/7


def test_first_validation_batch_covers_the_classes(tmp_path):
    root = write_fer2013(tmp_path / "fer", n_train=20, n_test=2, specials=False)
    dm = Fer2013DataModule(str(root), val_fraction=0.3, batch_size=14, image_size=16)
    first = next(iter(dm.val_dataloader()))["expr"].tolist()
    assert len(set(first)) >= 5, first  # was a single class (the first folder)


@pytest.mark.shared
def test_real_fer2013_first_validation_batch():
    root = SHARED / "fer2013"
    if not (root / "train").is_dir():
        pytest.skip(f"real FER2013 not found at {root} (set AFFECT_SHARED_DATA)")
    dm = Fer2013DataModule(str(root), val_fraction=0.1, batch_size=128, image_size=48)
    val = dm.manifest[dm.manifest["split"] == "val"]
    first = Counter(val["expr"].iloc[:128].tolist())
    assert len(first) == 7, first  # before: 128 "angry" faces
    assert max(first.values()) / 128 < 0.4, first
