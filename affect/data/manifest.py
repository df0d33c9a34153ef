"""The manifest: one pandas row per frame or image, the common currency of every corpus.

Every corpus parser (``affect/data/corpora/<slug>.py``) returns ``(manifest, LoadReport)``;
datasets, the prepared store and the relatedness estimator read only this schema.

Columns (``MANIFEST_COLUMNS``):

- ``path`` (str): image file, absolute or relative to the corpus root;
- ``corpus`` (str slug), ``split`` ("train" | "val" | "test"), ``subject`` (str),
  ``video`` (str, "" for still images), ``frame`` (int, -1 for still images);
- ``expr`` (int): canonical EXPR index 0..6 (``affect.labels.EXPR_CLASSES``) or -1;
- ``valence``, ``arousal`` (float in [-1, 1]; NaN = not annotated);
- ``AU1`` ... ``AU26`` (``AU_COLUMNS``, one per AU of ``labels.AU_SET``): 0.0 / 1.0, NaN = not
  annotated (the mask of eq. 7 is ``isfinite``);
- ``compound`` (int): 0-based compound class index, or -1;

Optional columns: ``landmarks`` (object: float32 ``[68, 2]`` array or None) and the face box
``box_x, box_y, box_w, box_h`` (float, NaN = none).

>>> df = manifest_from_records([{"path": "a.jpg", "corpus": "toy", "expr": 4, "AU12": 1.0}])
>>> int(df.loc[0, "expr"]), bool(np.isnan(df.loc[0, "AU1"])), df.loc[0, "split"]
(4, True, 'train')
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from affect.labels import AU_SET, NUM_EXPR

log = logging.getLogger(__name__)

AU_COLUMNS: tuple[str, ...] = tuple(f"AU{a}" for a in AU_SET)
ID_COLUMNS = ("path", "corpus", "split", "subject", "video", "frame")
LABEL_COLUMNS = ("expr", "valence", "arousal", *AU_COLUMNS, "compound")
MANIFEST_COLUMNS = (*ID_COLUMNS, *LABEL_COLUMNS)
SPLITS = ("train", "val", "test")

_DEFAULTS: dict[str, object] = {
    "split": "train", "subject": "", "video": "", "frame": -1,
    "expr": -1, "valence": np.nan, "arousal": np.nan, "compound": -1,
    **{c: np.nan for c in AU_COLUMNS},
}
_DTYPES = {
    "path": str, "corpus": str, "split": str, "subject": str, "video": str, "frame": np.int64,
    "expr": np.int64, "compound": np.int64, "valence": np.float32, "arousal": np.float32,
    **{c: np.float32 for c in AU_COLUMNS},
}


def manifest_from_records(records: Iterable[Mapping[str, object]]) -> pd.DataFrame:
    """Build a validated manifest from dict rows; missing label columns get their "absent" value."""
    records = list(records)
    df = pd.DataFrame.from_records(records) if records else pd.DataFrame(columns=["path", "corpus"])
    return validate_manifest(df)


def stack_tables(tables: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """A parse's per-video tables as one (not yet validated) frame; with none, an empty one with the required columns."""
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=["path", "corpus"])


def counted(df: pd.DataFrame, report: LoadReport) -> tuple[pd.DataFrame, LoadReport]:
    """What a corpus parser returns: ``df`` validated (:func:`validate_manifest`) and ``report.kept`` its rows."""
    df = validate_manifest(df)
    report.kept = len(df)
    return df, report


def validate_manifest(df: pd.DataFrame) -> pd.DataFrame:
    """Fill absent columns, fix dtypes and check label ranges; raise with the offending rows."""
    df = df.copy()
    for col in ("path", "corpus"):
        if col not in df.columns:
            raise ValueError(f"manifest needs a {col!r} column; found {list(df.columns)}")
    for col, default in _DEFAULTS.items():
        if col not in df.columns:
            df[col] = default
        elif not (isinstance(default, float) and np.isnan(default)):
            df[col] = df[col].fillna(default)  # rows built from dicts that lacked the key
    for col, dtype in _DTYPES.items():
        df[col] = df[col].astype(dtype)
    bad_split = ~df["split"].isin(SPLITS)
    if bad_split.any():
        raise ValueError(f"split must be one of {SPLITS}; found {sorted(df.loc[bad_split, 'split'].unique())}")
    bad_expr = (df["expr"] < -1) | (df["expr"] >= NUM_EXPR)
    if bad_expr.any():
        raise ValueError(f"expr must be -1 or 0..{NUM_EXPR - 1}; rows {df.index[bad_expr][:5].tolist()}")
    va = df[["valence", "arousal"]].to_numpy()
    if np.any(np.abs(va[np.isfinite(va)]) > 1.0 + 1e-6):
        raise ValueError("valence/arousal must lie in [-1, 1] (rescale the corpus values first)")
    au = df[list(AU_COLUMNS)].to_numpy()
    if not np.all(np.isin(au[np.isfinite(au)], (0.0, 1.0))):
        raise ValueError("AU columns must hold 0, 1 or NaN (not annotated)")
    ordered = [*MANIFEST_COLUMNS, *[c for c in df.columns if c not in MANIFEST_COLUMNS]]
    return df[ordered].reset_index(drop=True)


def task_mask(df: pd.DataFrame, task: str) -> np.ndarray:
    """Rows annotated for ``task`` ("va": either dimension, "expr", "au": any AU)."""
    if task == "va":
        return np.isfinite(df[["valence", "arousal"]].to_numpy()).any(axis=1)
    if task == "expr":
        return (df["expr"] >= 0).to_numpy()
    if task == "au":
        return np.isfinite(df[list(AU_COLUMNS)].to_numpy()).any(axis=1)
    raise ValueError(f"task must be 'va', 'expr' or 'au'; got {task!r}")


@dataclass
class LoadReport:
    """What a parser kept and what it skipped, by reason. Nothing is dropped without a count.

    >>> r = LoadReport("toy"); r.kept = 10; r.skip("label Contempt", 2); print(r)
    toy: kept 10 rows; skipped 2 (label Contempt: 2)
    """

    corpus: str
    kept: int = 0
    skipped: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def skip(self, reason: str, count: int = 1, example: str | None = None) -> None:
        self.skipped[reason] += count
        if example is not None:
            self.examples.setdefault(reason, [])
            if len(self.examples[reason]) < 3:
                self.examples[reason].append(example)

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    def merge(self, other: LoadReport) -> LoadReport:
        self.kept += other.kept
        self.skipped.update(other.skipped)
        for k, v in other.examples.items():
            self.examples.setdefault(k, []).extend(v[: 3 - len(self.examples.get(k, []))])
        return self

    def __str__(self) -> str:
        text = f"{self.corpus}: kept {self.kept} rows"
        if self.skipped:
            reasons = ", ".join(f"{k}: {v}" for k, v in sorted(self.skipped.items()))
            text += f"; skipped {self.n_skipped} ({reasons})"
        return text

    def log(self) -> None:
        (log.warning if self.skipped else log.info)(str(self))
