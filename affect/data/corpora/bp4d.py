"""BP4D-Spontaneous (Zhang et al., IVC 2014): 41 subjects x 8 tasks, frame-level AU occurrence.

Native layout read here (``data_cards/bp4d.md``)::

    <root>/AUCoding/AU_OCC/F001_T1.csv     (or <root>/AU_OCC/F001_T1.csv)
    <root>/Sequences/F001/T1/0001.jpg      (``image_pattern``, default "Sequences/{subject}/{task}/{frame:04d}.jpg")

Each CSV has a header row (first cell the frame column, then one AU number per column) and one
row per coded frame: the frame number, then 0 / 1 / 9 per AU (9 = not codable: masked, counted).
Only ``aus`` are read (default the 12 AUs every BP4D paper reports: 1, 2, 4, 6, 7, 10, 12, 14,
15, 17, 23, 24); the other coded columns are ignored and counted once per AU; the 5 AUs of
``labels.AU_SET`` BP4D does not report (5, 9, 20, 25, 26) stay NaN (masked).

The same parser (:func:`parse_bp4d_like`) reads BP4D+ (``affect.data.corpora.bp4d_plus``),
which ships the same CSV format.

Counted in the ``LoadReport``: malformed lines and files (``file:line`` examples), values other
than 0 / 1 / 9, unknown (9) values, label rows without an image, images without a label row,
columns outside ``aus``. ``require_media=False`` parses the labels only.

No official split: ``fold`` / ``num_folds`` give the subject-independent 3-fold protocol of
JAA-Net (``affect.data.corpora._folds.BP4D_3FOLD``); the held-out fold is the "val" split.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from affect.data.corpora._folds import BP4D_3FOLD, check_fold, subject_folds
from affect.data.datamodule import CorpusDataModule
from affect.data.manifest import LoadReport, counted, stack_tables
from affect.data.textio import read_text
from affect.labels import AU_SET

CORPUS = "bp4d"
BP4D_AUS: tuple[int, ...] = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)
AU_DIRS: tuple[str, ...] = ("AUCoding/AU_OCC", "AU_OCC")
UNKNOWN = 9
_NAME = re.compile(r"^(?P<subject>[^_]+)_(?P<task>[^_]+)\.csv$")


def find_au_dir(root: Path, au_dir: str | None) -> Path:
    """The AU_OCC folder: ``au_dir`` if given, else the first of ``AU_DIRS`` that exists."""
    candidates = [au_dir] if au_dir is not None else list(AU_DIRS)
    for c in candidates:
        if (root / c).is_dir():
            return root / c
    expected = " or ".join(str(root / c) for c in candidates)
    raise FileNotFoundError(f"AU occurrence CSVs not found: expected the folder {expected}")


def read_occ_csv(
    path: Path, aus: Sequence[int], report: LoadReport, ignored: set[int]
) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Frames and ``{au: 0/1/NaN values}`` of one ``F001_T1.csv``.

    Columns outside ``aus`` are reported once per AU number (tracked in ``ignored``).
    """
    rows = list(csv.reader(io.StringIO(read_text(path))))
    if not rows:
        report.skip("empty AU CSV", example=path.name)
        return np.zeros(0, np.int64), {}
    try:
        header = [int(float(h)) for h in rows[0][1:]]
    except ValueError:
        report.skip("AU CSV without a numeric header row", example=f"{path.name}:1: {','.join(rows[0])!r}")
        return np.zeros(0, np.int64), {}
    for au in sorted(set(header) - set(aus) - ignored):
        ignored.add(au)
        where = "outside labels.AU_SET" if au not in AU_SET else "not in the corpus's AU list"
        report.skip(f"AU column ignored ({where})", example=f"AU{au} ({path.name})")
    columns = {au: i + 1 for i, au in enumerate(header) if au in aus}
    frames: list[int] = []
    values: list[list[int]] = []
    seen: set[int] = set()
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        try:
            if len(row) != len(header) + 1:
                raise ValueError
            frame = int(float(row[0]))
            vals = [int(float(row[i])) for i in columns.values()]
        except ValueError:
            report.skip("malformed AU line", example=f"{path.name}:{lineno}: {','.join(row)[:60]!r}")
            continue
        if frame in seen:
            report.skip("duplicate frame line", example=f"{path.name}:{lineno}")
            continue
        seen.add(frame)
        frames.append(frame)
        values.append(vals)
    table = np.array(values, dtype=np.int64).reshape(len(values), len(columns))
    out: dict[int, np.ndarray] = {}
    for j, au in enumerate(columns):
        col = table[:, j]
        unknown = col == UNKNOWN
        invalid = ~np.isin(col, (0, 1, UNKNOWN))
        if unknown.any():
            report.skip("AU value 9 (unknown) masked", int(unknown.sum()))
        if invalid.any():
            bad = np.flatnonzero(invalid)[0]
            report.skip("AU value not 0/1/9 masked", int(invalid.sum()), example=f"{path.name} frame {frames[bad]} AU{au}={col[bad]}")
        out[au] = np.where(unknown | invalid, np.nan, col).astype(np.float32)
    return np.array(frames, dtype=np.int64), out


def parse_bp4d_like(
    root: str | Path,
    corpus: str,
    aus: Sequence[int],
    image_pattern: str,
    au_dir: str | None,
    fold: int | None,
    num_folds: int,
    standard_folds: Sequence[Sequence[str]] | None,
    require_media: bool,
) -> tuple[pd.DataFrame, LoadReport]:
    """The BP4D / BP4D+ parser (see the module docstring); ``corpus`` names the manifest rows."""
    root = Path(root)
    check_fold(fold, num_folds)
    unknown_aus = sorted(set(aus) - set(AU_SET))
    if unknown_aus:
        raise ValueError(f"aus {unknown_aus} are not in labels.AU_SET {list(AU_SET)}")
    for key in ("{subject}", "{task}", "{frame"):
        if key not in image_pattern:
            raise ValueError(f"image_pattern must contain {key}...; got {image_pattern!r}")
    occ_dir = find_au_dir(root, au_dir)
    report = LoadReport(corpus)
    ignored: set[int] = set()
    listings: dict[Path, set[str]] = {}
    parsed: list[tuple[str, str, np.ndarray, dict[int, np.ndarray]]] = []
    for path in sorted(occ_dir.glob("*.csv")):
        match = _NAME.match(path.name)
        if match is None:
            report.skip("CSV name not <subject>_<task>.csv", example=path.name)
            continue
        frames, values = read_occ_csv(path, aus, report, ignored)
        if len(frames):
            parsed.append((match["subject"], match["task"], frames, values))
    folds = subject_folds({p[0] for p in parsed}, num_folds, standard_folds)
    tables: list[pd.DataFrame] = []
    for subject, task, frames, values in parsed:
        paths = [image_pattern.format(subject=subject, task=task, frame=int(f)) for f in frames]
        keep = np.ones(len(frames), bool)
        if require_media:
            folder = (root / paths[0]).parent
            if folder not in listings:
                listings[folder] = set(os.listdir(folder)) if folder.is_dir() else set()
            names = [os.path.basename(p) for p in paths]
            keep = np.array([n in listings[folder] for n in names], bool)
            if (~keep).any():
                report.skip("label row without image", int((~keep).sum()), example=paths[int(np.flatnonzero(~keep)[0])])
            suffix = os.path.splitext(names[0])[1]
            extra = {n for n in listings[folder] if n.endswith(suffix)} - set(names)
            if extra:
                report.skip("image without label row", len(extra), example=f"{subject}/{task}/{sorted(extra)[0]}")
        table = pd.DataFrame({
            "path": np.array(paths, dtype=object)[keep], "corpus": corpus,
            "split": "val" if fold is not None and folds[subject] == fold else "train",
            "subject": subject, "video": f"{subject}/{task}", "frame": frames[keep],
        })
        for au, col in values.items():
            table[f"AU{au}"] = col[keep]
        tables.append(table)
    return counted(stack_tables(tables), report)


def make_bp4d_manifest(
    root: str | Path,
    aus: Sequence[int] = BP4D_AUS,
    image_pattern: str = "Sequences/{subject}/{task}/{frame:04d}.jpg",
    au_dir: str | None = None,
    fold: int | None = 0,
    num_folds: int = 3,
    require_media: bool = True,
) -> tuple[pd.DataFrame, LoadReport]:
    """Parse BP4D-Spontaneous (one row per coded frame with an image).

    Args:
        root: the release folder.
        aus: AU columns to read (others ignored, counted once each).
        image_pattern: frame path relative to ``root`` with ``{subject}``, ``{task}``, ``{frame}``.
        au_dir: folder of the ``<subject>_<task>.csv`` files (default: ``AUCoding/AU_OCC`` or ``AU_OCC``).
        fold: held-out subject fold ("val"); None = everything "train".
        num_folds: subject folds (3 = the JAA-Net lists).
        require_media: False = labels only (no image checks).
    """
    return parse_bp4d_like(root, CORPUS, aus, image_pattern, au_dir, fold, num_folds, BP4D_3FOLD, require_media)


class BP4DDataModule(CorpusDataModule):
    """BP4D-Spontaneous frames (or sequences per subject/task) for AU detection (``aus`` None: ``default_aus``)."""

    corpus = CORPUS
    default_aus: tuple[int, ...] = BP4D_AUS

    def __init__(
        self,
        root: str,
        aus: list[int] | None = None,
        image_pattern: str = "Sequences/{subject}/{task}/{frame:04d}.jpg",
        au_dir: str | None = None,
        fold: int | None = 0,
        num_folds: int = 3,
        **kwargs,
    ) -> None:
        super().__init__(root, **kwargs)
        self.hold_parser_args(locals())
        self.aus = tuple(aus) if aus is not None else self.default_aus
