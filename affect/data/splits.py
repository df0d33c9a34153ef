"""Subject-independent splits for corpora that ship no official validation/test partition."""

from __future__ import annotations

import numpy as np
import pandas as pd


def subject_split(
    manifest: pd.DataFrame, val_fraction: float, seed: int = 0, from_split: str = "train", to_split: str = "val"
) -> pd.DataFrame:
    """Move whole subjects from ``from_split`` to ``to_split`` until ``val_fraction`` of its rows moved.

    Subjects are drawn in a seeded random order, so no subject appears on both sides. Rows
    without a subject id fall back to their video id (or, for still images, to the row itself).

    >>> df = pd.DataFrame({"subject": list("aabbccdd"), "video": "", "split": "train"})
    >>> out = subject_split(df, 0.25, seed=0)
    >>> sorted(out.groupby("subject")["split"].nunique().tolist())   # no subject is split
    [1, 1, 1, 1]
    >>> int((out["split"] == "val").sum())
    2
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    out = manifest.copy()
    pool = out["split"] == from_split
    if val_fraction == 0.0 or not pool.any():
        return out
    key = out["subject"].where(out["subject"] != "", out["video"])
    key = key.where(key != "", pd.Series(out.index.astype(str), index=out.index))
    sizes = key[pool].value_counts().sort_index()
    order = np.random.default_rng(seed).permutation(len(sizes))
    target = val_fraction * int(pool.sum())
    chosen, moved = [], 0
    for i in order:
        if moved >= target:
            break
        chosen.append(sizes.index[i])
        moved += int(sizes.iloc[i])
    out.loc[pool & key.isin(chosen), "split"] = to_split
    return out
