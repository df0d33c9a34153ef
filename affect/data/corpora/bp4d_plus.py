"""BP4D+ (Zhang et al., CVPR 2016; the FERA 2017 source): 140 subjects, frame-level AU occurrence.

Same CSV format as BP4D-Spontaneous, parsed by :func:`affect.data.corpora.bp4d.parse_bp4d_like`
(``data_cards/bp4d_plus.md``)::

    <root>/AUCoding/AU_OCC/F001_T1.csv     (or <root>/AU_OCC/...); AU coded for tasks T1, T6, T7, T8
    <root>/2D+3D/F001/T1/0001.jpg          (``image_pattern``; an assumption, see the data card)

Default ``aus``: the 10 AUs of the FERA 2017 occurrence sub-challenge (1, 4, 6, 7, 10, 12, 14,
15, 17, 23); pass BP4D's 12 to train on both corpora alike. BP4D+ has no standard folds: the
subjects are assigned round-robin over their sorted ids (``affect.data.corpora._folds``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from affect.data.corpora.bp4d import BP4DDataModule, parse_bp4d_like
from affect.data.manifest import LoadReport

CORPUS = "bp4d_plus"
BP4D_PLUS_AUS: tuple[int, ...] = (1, 4, 6, 7, 10, 12, 14, 15, 17, 23)
IMAGE_PATTERN = "2D+3D/{subject}/{task}/{frame:04d}.jpg"


def make_bp4d_plus_manifest(
    root: str | Path,
    aus: Sequence[int] = BP4D_PLUS_AUS,
    image_pattern: str = IMAGE_PATTERN,
    au_dir: str | None = None,
    fold: int | None = 0,
    num_folds: int = 3,
    require_media: bool = True,
) -> tuple[pd.DataFrame, LoadReport]:
    """Parse BP4D+ (arguments as :func:`affect.data.corpora.bp4d.make_bp4d_manifest`)."""
    return parse_bp4d_like(root, CORPUS, aus, image_pattern, au_dir, fold, num_folds, None, require_media)


class BP4DPlusDataModule(BP4DDataModule):
    """BP4D+ frames (or sequences per subject/task) for AU detection (BP4D's options, BP4D+'s defaults)."""

    corpus = CORPUS
    default_aus = BP4D_PLUS_AUS

    def __init__(self, root: str, image_pattern: str = IMAGE_PATTERN, **kwargs) -> None:
        super().__init__(root, image_pattern=image_pattern, **kwargs)
