"""AffectNet (Mollahosseini, Hasani & Mahoor 2017) in its native release layouts.

The paper trains on AffectNet's manually annotated part for VA and EXPR (Sec. III, Tables
VIII-IX). Two releases exist; :func:`make_affectnet_manifest` detects which one is under
``root`` (``data_cards/affectnet.md``):

1. **CSV release** (2017)::

       Manually_Annotated_file_lists/training.csv     -> split "train"
       Manually_Annotated_file_lists/validation.csv   -> split "val"
       Manually_Annotated_Images/<subDirectory_filePath>

   header ``subDirectory_filePath,face_x,face_y,face_width,face_height,facial_landmarks,
   expression,valence,arousal``; landmarks ``x;y;...`` (68 points, original-image pixels);
   expression 0-10 (``labels.AFFECTNET_EXPR_ORDER``); valence/arousal in [-1, 1], -2 = invalid.
   A file without the header line (some copies of ``validation.csv``) is read as data.

2. **NPY release** (later, pre-cropped faces)::

       {train_set,val_set}/images/<n>.jpg
       {train_set,val_set}/annotations/<n>_{exp,val,aro,lnd}.npy

   ``exp`` holds the class id (0-7, stored as a numpy string or int), ``val``/``aro`` one float
   each, ``lnd`` 136 floats (x, y interleaved). ``lnd`` is optional.

Label rules (both releases):

- expression 0-6 -> canonical EXPR (``labels.map_expr``); 7 Contempt, 8 None, 9 Uncertain ->
  EXPR -1, counted, the row kept if its VA is valid (else dropped, counted);
- 10 No-Face -> row dropped (counted): the box does not hold a face, so its VA is meaningless;
- valence / arousal -2 (or any non-finite value) -> NaN, counted per dimension;
- no AU annotation: AU columns stay NaN.

AffectNet's test set is not public: report on the official validation set, either as ``val``
(``test_split="val"`` makes ``affect test`` score it) or, with ``val_as_test=True``, as
``test`` while ``val_fraction`` holds out a validation part of ``train`` (per image: AffectNet
ships no subject ids).

>>> _parse_landmarks("1;2;" * 68).shape
(68, 2)
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from affect.data.datamodule import CorpusDataModule
from affect.data.manifest import LoadReport, manifest_from_records
from affect.data.textio import read_text
from affect.labels import AFFECTNET_EXPR_NAMES, AFFECTNET_EXPR_ORDER, expr_index

CORPUS = "affectnet"
CSV_DIR = "Manually_Annotated_file_lists"
CSV_IMAGES = "Manually_Annotated_Images"
CSV_FILES = {"train": "training.csv", "val": "validation.csv"}
CSV_HEADER = (
    "subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
    "facial_landmarks", "expression", "valence", "arousal",
)
NPY_SETS = {"train": "train_set", "val": "val_set"}
VA_INVALID = -2.0
NO_FACE = 10
RELEASES = ("csv", "npy")


def detect_release(root: str | Path) -> str:
    """``"csv"`` or ``"npy"``: which AffectNet release lies under ``root``."""
    root = Path(root)
    if (root / CSV_DIR).is_dir():
        return "csv"
    if any((root / d).is_dir() for d in NPY_SETS.values()):
        return "npy"
    raise FileNotFoundError(
        f"no AffectNet release under {root}: expected {root / CSV_DIR}/ (CSV release) "
        f"or {root / NPY_SETS['train']}/ and {root / NPY_SETS['val']}/ (NPY release)"
    )


def _parse_landmarks(text: str) -> np.ndarray:
    fields = text.strip().strip(";").split(";")
    if len(fields) != 136:
        raise ValueError(f"expected 136 landmark values (68 x;y pairs), found {len(fields)}")
    return np.array(fields, dtype=np.float32).reshape(68, 2)  # C-level str -> float; bad text raises


def _labels(
    expression: int, valence: float, arousal: float, where: str, report: LoadReport, notes: list[str]
) -> dict | None:
    """Canonical labels of one annotation, or None (dropped, counted) for unusable ones.

    Label-level drops of a row that is kept (Contempt's EXPR label, a -2 VA dimension) are
    appended to ``notes``; the caller records them only if the row reaches the manifest.
    """
    if expression not in AFFECTNET_EXPR_ORDER:
        raise ValueError(f"expression {expression} is not in 0..10")
    for name, value in (("valence", valence), ("arousal", arousal)):
        if math.isfinite(value) and value != VA_INVALID and abs(value) > 1.0 + 1e-6:
            raise ValueError(f"{name} {value} is outside [-1, 1] and not the sentinel -2")
    if expression == NO_FACE:
        report.skip("expression 10 No-Face (row dropped)", example=where)
        return None
    va = [v if (math.isfinite(v) and v != VA_INVALID) else math.nan for v in (valence, arousal)]
    canonical = AFFECTNET_EXPR_ORDER[expression]
    if canonical is None:
        name = AFFECTNET_EXPR_NAMES[expression]
        if all(math.isnan(v) for v in va):
            report.skip(f"expression {expression} {name} without valid VA (row dropped)", example=where)
            return None
        notes.append(f"expression {expression} {name} (EXPR label dropped, row kept for VA)")
    for name, v in zip(("valence", "arousal"), va, strict=True):
        if math.isnan(v):
            notes.append(f"{name} -2 invalid (dimension masked, row kept)")
    return {
        "expr": expr_index(canonical) if canonical is not None else -1,
        "valence": va[0],
        "arousal": va[1],
    }


def _records(
    entries: Iterator[tuple[str, str, Callable[[], tuple]]], malformed: str, root: Path, require_images: bool,
    report: LoadReport,
) -> list[dict]:
    """The manifest records of a release's ``entries`` ``(split, where, read)``: ``read()`` gives one annotation's
    ``(image, expression, valence, arousal, extra columns)``; a ValueError from it (or from the label rules) is
    counted as ``malformed``."""
    records: list[dict] = []
    for split, where, read in entries:
        notes: list[str] = []
        try:
            image, expression, valence, arousal, extra = read()
            labels = _labels(expression, valence, arousal, where, report, notes)
        except ValueError as err:
            report.skip(malformed, example=f"{where}: {err}")
            continue
        if labels is None or not _keep(report, notes, where, root, image, require_images):
            continue
        records.append({"path": image, "corpus": CORPUS, "split": split, **labels, **extra})
    return records


def _csv_entries(root: Path) -> Iterator[tuple[str, str, Callable[[], tuple]]]:
    """The data lines of the CSV release's file lists (blank lines and the header passed over)."""
    for split, name in CSV_FILES.items():
        path = root / CSV_DIR / name
        if not path.is_file():
            raise FileNotFoundError(f"AffectNet annotation file {path} is missing (expected {CSV_DIR}/{name})")
        for lineno, row in enumerate(csv.reader(io.StringIO(read_text(path))), start=1):
            if not row or all(not c.strip() for c in row):
                continue
            if lineno == 1 and row[0].strip() == CSV_HEADER[0]:
                if tuple(c.strip() for c in row) != CSV_HEADER:
                    raise ValueError(f"{path}: unexpected header {row}; expected {list(CSV_HEADER)}")
                continue
            yield split, f"{CSV_DIR}/{name}:{lineno}", partial(_csv_row, row)


def _csv_row(row: list[str]) -> tuple:
    if len(row) != len(CSV_HEADER):
        raise ValueError(f"{len(row)} fields, expected {len(CSV_HEADER)}")
    rel, x, y, w, h, lms, expression, valence, arousal = row
    box = [float(x), float(y), float(w), float(h)]
    landmarks = _parse_landmarks(lms) if lms.strip() else None
    extra = {"landmarks": landmarks, "box_x": box[0], "box_y": box[1], "box_w": box[2], "box_h": box[3]}
    return f"{CSV_IMAGES}/{rel.strip()}", int(expression), float(valence), float(arousal), extra


def _keep(report: LoadReport, notes: list[str], where: str, root: Path, image: str, require_images: bool) -> bool:
    """Whether a labelled row reaches the manifest: False (counted "missing image") when ``require_images``
    and its image is absent, else True, counting it with its label-level drops (reasons ending "row kept")."""
    if require_images and not (root / image).is_file():
        report.skip("missing image", example=image)
        return False
    report.kept += 1
    for note in notes:
        report.skip(note, example=where)
    return True


def _npy_value(path: Path) -> str:
    value = np.load(path, allow_pickle=False)
    return str(np.asarray(value).reshape(-1)[0]) if np.asarray(value).size else ""


def _npy_entries(root: Path, report: LoadReport) -> Iterator[tuple[str, str, Callable[[], tuple]]]:
    """The images of the NPY release that have their three annotation files (the others counted)."""
    for split, folder in NPY_SETS.items():
        ann_dir = root / folder / "annotations"
        if not (root / folder).is_dir():
            report.skip(f"split folder {folder}/ absent", example=str(root / folder))
            continue
        if not ann_dir.is_dir():
            raise FileNotFoundError(f"AffectNet annotation folder {ann_dir} is missing")
        ids = sorted((p.name[: -len("_exp.npy")] for p in ann_dir.glob("*_exp.npy")), key=_natural)
        for n in ids:
            missing = [k for k in ("val", "aro") if not (ann_dir / f"{n}_{k}.npy").is_file()]
            if missing:
                report.skip("missing annotation file", example=f"{folder}/annotations/{n}_{missing[0]}.npy")
                continue
            yield split, f"{folder}/annotations/{n}_exp.npy", partial(_npy_row, ann_dir, folder, n)


def _npy_row(ann_dir: Path, folder: str, n: str) -> tuple:
    expression = int(float(_npy_value(ann_dir / f"{n}_exp.npy")))
    valence = float(_npy_value(ann_dir / f"{n}_val.npy"))
    arousal = float(_npy_value(ann_dir / f"{n}_aro.npy"))
    lnd_path = ann_dir / f"{n}_lnd.npy"
    landmarks = None
    if lnd_path.is_file():
        raw = np.asarray(np.load(lnd_path, allow_pickle=False)).astype(np.float32).reshape(-1)
        if raw.size != 136:
            raise ValueError(f"{n}_lnd.npy holds {raw.size} values, expected 136")
        landmarks = raw.reshape(68, 2)
    return f"{folder}/images/{n}.jpg", expression, valence, arousal, {"landmarks": landmarks}


def _natural(name: str) -> tuple:
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def make_affectnet_manifest(
    root: str | Path, release: str | None = None, require_images: bool = True, val_as_test: bool = False
) -> tuple[pd.DataFrame, LoadReport]:
    """Parse an AffectNet release folder into a manifest (see the module docstring for the rules).

    Args:
        root: the AffectNet folder.
        release: ``"csv"`` | ``"npy"``; None detects it (:func:`detect_release`).
        require_images: skip (and count as "missing image") rows whose image file is absent;
            False parses the labels alone.
        val_as_test: label the official validation rows ``test`` (the usual protocol, since the
            official test set is private), so that ``val_fraction`` can carve a clean
            validation split out of ``train``.

    Returns:
        The manifest (with ``landmarks`` and, for the CSV release, ``box_*`` columns) and the
        load report. ``report.kept`` equals the number of rows; label-level drops of kept rows
        (reasons ending "row kept") are listed among the skip reasons too, so ``n_skipped``
        counts dropped rows plus dropped labels.
    """
    root = Path(root)
    release = release or detect_release(root)
    if release not in RELEASES:
        raise ValueError(f"release must be one of {RELEASES} or None, got {release!r}")
    report = LoadReport(CORPUS)
    if release == "csv":
        records = _records(_csv_entries(root), "malformed line", root, require_images, report)
    else:
        records = _records(_npy_entries(root, report), "malformed annotation", root, require_images, report)
    if val_as_test:
        for record in records:
            if record["split"] == "val":
                record["split"] = "test"
    df = manifest_from_records(records)
    return df, report


class AffectNetDataModule(CorpusDataModule):
    """AffectNet (VA + EXPR); ``val`` doubles as the test split (the official test set is private).

    Args:
        root: the AffectNet folder (CSV or NPY release).
        release: ``"csv"`` | ``"npy"`` | None (auto-detect).
        require_images: count rows whose image is absent as skipped (True) or keep them (False).
        val_as_test: the official validation set becomes the ``test`` split (pair it with
            ``val_fraction`` > 0 for model selection on a held-out part of ``train``).
        **kwargs: :class:`~affect.data.datamodule.CorpusDataModule` arguments.
    """

    corpus = CORPUS

    def __init__(
        self, root: str, release: str | None = None, require_images: bool = True, val_as_test: bool = False, **kwargs
    ) -> None:
        super().__init__(root, **kwargs)
        if release is not None and release not in RELEASES:
            raise ValueError(f"release must be one of {RELEASES} or None, got {release!r}")
        self.hold_parser_args(locals())
