"""Canonical label spaces and the corpus -> canonical mappings (the design notes)."""

from __future__ import annotations

import numpy as np
import pytest

from affect import labels


def test_canonical_orders():
    assert labels.EXPR_CLASSES == ("Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise")
    assert labels.AU_SET == (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 24, 25, 26)
    assert len(labels.RAFDB_COMPOUND_CLASSES) == 11


def test_affectnet_and_rafdb_orders_map_by_name():
    names = [labels.EXPR_CLASSES[i] for i in labels.map_expr(range(7), labels.AFFECTNET_EXPR_ORDER)]
    assert names == ["Neutral", "Happiness", "Sadness", "Surprise", "Fear", "Disgust", "Anger"]
    assert labels.map_expr([7, 8, 9, 10], labels.AFFECTNET_EXPR_ORDER).tolist() == [-1, -1, -1, -1]
    raf = [labels.EXPR_CLASSES[i] for i in labels.map_expr(range(1, 8), labels.RAFDB_BASIC_ORDER)]
    assert raf == ["Surprise", "Fear", "Disgust", "Happiness", "Sadness", "Anger", "Neutral"]
    with pytest.raises(ValueError, match=r"class ids \[0\] are not in the corpus order"):
        labels.map_expr([0], labels.RAFDB_BASIC_ORDER)


def test_au_vector_masks_unannotated_and_sentinels():
    au, mask = labels.au_vector({1: 1, 12: 0, 25: 9, 11: 1}, unknown=(9,))
    assert mask.sum() == 2 and au[labels.au_index(1)] == 1 and au[labels.au_index(12)] == 0
    assert not mask[labels.au_index(25)]  # sentinel 9 -> masked, not a negative
    with pytest.raises(ValueError, match="must be 0 or 1"):
        labels.au_vector({1: 3})


def test_va_rescaling_and_sentinels():
    va, mask = labels.va_with_mask(-5, 0.25, sentinels=(-5,))
    assert mask.tolist() == [False, True] and va.tolist() == [0.0, 0.25]
    va, mask = labels.va_with_mask(float("nan"), 10, scale=10)
    assert mask.tolist() == [False, True] and np.isclose(va[1], 1.0)
    with pytest.raises(ValueError, match="outside"):
        labels.va_with_mask(7, 0)
