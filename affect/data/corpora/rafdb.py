"""RAF-DB (Li, Deng & Du 2017), basic and compound subsets, in the native release layout.

The paper uses RAF-DB basic for EXPR (Table IX) and RAF-DB compound for the zero-shot
compound-expression experiments (eq. 10, Table XV). Layout (``data_cards/rafdb.md``)::

    basic/EmoLabel/list_patition_label.txt        lines "train_00001.jpg 5" (labels 1..7)
    basic/Image/aligned/train_00001_aligned.jpg   100x100 aligned crops (default)
    basic/Image/original/train_00001.jpg          full images
    basic/Annotation/manual/train_00001_manu_attri.txt   5 landmarks "x<TAB>y", then gender,
                                                          race, age-group codes
    compound/...                                   the same, labels 1..11, names "train_0001.jpg"

- basic labels 1..7 (``labels.RAFDB_BASIC_ORDER``) -> canonical ``expr``;
- compound labels 1..11 (``labels.RAFDB_COMPOUND_CLASSES``) -> ``compound`` = id - 1, ``expr`` -1;
- ``train_*`` -> train, ``test_*`` -> test. No official validation split and no subject ids:
  ``val_fraction`` holds out a seeded random part of ``train`` **per image**;
- lines may end in LF or CRLF, the last one with or without a newline; blank lines are ignored;
  malformed lines are counted with ``file:line`` examples;
- ``image="original"``: the 5 manual landmarks go to an extra ``landmarks5`` column (float32
  [5, 2], original-image pixels, order left eye, right eye, nose, left / right mouth corner) and
  give the face box, framed like the project's 5-point template (:func:`box_from_landmarks5`;
  our choice: RAF-DB ships no boxes).

>>> parse_manual_landmarks("1\\t2\\n3\\t4\\n5\\t6\\n7\\t8\\n9\\t10\\n0\\n0\\n2\\n").tolist()[1]
[3.0, 4.0]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from affect.data.datamodule import CorpusDataModule
from affect.data.manifest import LoadReport, manifest_from_records
from affect.data.textio import read_lines, read_text
from affect.face.template import frontal_template
from affect.labels import RAFDB_BASIC_ORDER, RAFDB_COMPOUND_CLASSES, expr_index

CORPUS = "rafdb"
SUBSETS = ("basic", "compound")
SUBSET_CHOICES = ("basic", "compound", "both")
IMAGE_TYPES = ("aligned", "original")
LABEL_FILE = "EmoLabel/list_patition_label.txt"
NUM_LABELS = {"basic": len(RAFDB_BASIC_ORDER), "compound": len(RAFDB_COMPOUND_CLASSES)}
#: compound class names, 0-based ``compound`` index = RAF-DB id - 1
COMPOUND_CLASSES = RAFDB_COMPOUND_CLASSES


def parse_label_list(path: str | Path, subset: str, report: LoadReport) -> list[tuple[int, str, int]]:
    """``(line number, image name, label id)`` of every valid line of a RAF-DB label list.

    Malformed lines (not two fields, a non-integer label, a label outside 1..7 / 1..11, a name
    not starting with ``train_`` / ``test_``) are counted in ``report`` as "malformed line".
    """
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"RAF-DB {subset} label list {path} is missing (expected <root>/{subset}/{LABEL_FILE})")
    rows = []
    for lineno, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        fields = line.split()
        where = f"{subset}/{LABEL_FILE}:{lineno}"
        try:
            if len(fields) != 2:
                raise ValueError(f"{len(fields)} fields, expected 2 ({line!r})")
            name, label = fields[0], int(fields[1])
            if not 1 <= label <= NUM_LABELS[subset]:
                raise ValueError(f"label {label} outside 1..{NUM_LABELS[subset]}")
            if not name.startswith(("train_", "test_")):
                raise ValueError(f"image name {name!r} starts with neither train_ nor test_")
        except ValueError as err:
            report.skip("malformed line", example=f"{where}: {err}")
            continue
        rows.append((lineno, name, label))
    return rows


def parse_manual_landmarks(text: str) -> np.ndarray:
    """The 5 landmarks (float32 [5, 2]) of a ``*_manu_attri.txt`` file's text (first 5 lines)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) < 5:
        raise ValueError(f"expected 5 landmark lines, found {len(lines)}")
    points = []
    for ln in lines[:5]:
        xy = ln.split()
        if len(xy) != 2:
            raise ValueError(f"landmark line {ln!r} is not 'x<TAB>y'")
        points.append([float(xy[0]), float(xy[1])])
    return np.asarray(points, np.float32)


def box_from_landmarks5(points: np.ndarray) -> tuple[float, float, float, float]:
    """Square face box ``(x, y, w, h)`` around 5 landmarks, framed like the project's template.

    The side is chosen so that the larger of the inter-ocular and eye-to-mouth distances
    spans the same fraction of the box as the eye-to-mouth distance of
    ``affect.face.template.frontal_template`` does of the 96x96 aligned crop, and the box
    is placed so that the points' mean sits where the template's mean sits (a crop resized to
    96x96 then matches an aligned crop up to rotation).

    >>> t = frontal_template(96)
    >>> [round(v, 3) for v in box_from_landmarks5(t)]   # the template gives the whole crop
    [0.0, 0.0, 96.0, 96.0]
    """
    points = np.asarray(points, np.float64)
    side = _span(points) * (1.0 / _TEMPLATE_SPAN)
    cx, cy = points.mean(axis=0)
    return (float(cx - _TEMPLATE_MEAN[0] * side), float(cy - _TEMPLATE_MEAN[1] * side), float(side), float(side))


def _span(points: np.ndarray) -> float:
    eyes = (points[0] + points[1]) / 2
    mouth = (points[3] + points[4]) / 2
    return max(float(np.linalg.norm(points[1] - points[0])), float(np.linalg.norm(mouth - eyes)))


_TEMPLATE_SPAN = _span(frontal_template(1.0 * 96)) / 96.0  # fraction of the crop side
_TEMPLATE_MEAN = frontal_template(96).mean(axis=0) / 96.0


def _image_path(subset: str, name: str, image: str) -> str:
    stem = name.rsplit(".", 1)[0]
    if image == "aligned":
        return f"{subset}/Image/aligned/{stem}_aligned.jpg"
    return f"{subset}/Image/original/{name}"


def make_rafdb_manifest(
    root: str | Path, subset: str = "basic", image: str = "aligned", require_images: bool = True
) -> tuple[pd.DataFrame, LoadReport]:
    """Parse RAF-DB under ``root`` (the folder holding ``basic/`` and/or ``compound/``).

    Args:
        root: the RAF-DB folder.
        subset: ``"basic"`` (EXPR), ``"compound"`` (``compound`` column) or ``"both"``.
        image: ``"aligned"`` (100x100 crops) or ``"original"`` (full images + 5 manual landmarks).
        require_images: skip listed images whose file is absent ("missing image"); False parses
            the label list alone (the manifest then lists paths that may not exist).
    """
    if subset not in SUBSET_CHOICES:
        raise ValueError(f"subset must be one of {SUBSET_CHOICES}, got {subset!r}")
    if image not in IMAGE_TYPES:
        raise ValueError(f"image must be one of {IMAGE_TYPES}, got {image!r}")
    root = Path(root)
    report = LoadReport(CORPUS)
    records: list[dict] = []
    for sub in SUBSETS if subset == "both" else (subset,):
        for _lineno, name, label in parse_label_list(root / sub / LABEL_FILE, sub, report):
            path = _image_path(sub, name, image)
            if require_images and not (root / path).is_file():
                report.skip("missing image", example=path)
                continue
            record: dict = {
                "path": path, "corpus": CORPUS, "split": "train" if name.startswith("train_") else "test",
            }
            if sub == "basic":
                record["expr"] = expr_index(RAFDB_BASIC_ORDER[label])
            else:
                record["compound"] = label - 1
            if image == "original":
                stem = name.rsplit(".", 1)[0]
                manual = root / sub / "Annotation" / "manual" / f"{stem}_manu_attri.txt"
                rel = f"{sub}/Annotation/manual/{manual.name}"
                if not manual.is_file():
                    report.skip("missing landmark file", example=rel)
                    continue
                text = read_text(manual)  # not UTF-8: a clear error (affect.data.textio)
                try:
                    points = parse_manual_landmarks(text)
                except ValueError as err:
                    report.skip("malformed landmark file", example=f"{rel}: {err}")
                    continue
                box = box_from_landmarks5(points)
                record.update(landmarks5=points, box_x=box[0], box_y=box[1], box_w=box[2], box_h=box[3])
            records.append(record)
    report.kept = len(records)
    df = manifest_from_records(records)
    return df, report


class RafDbDataModule(CorpusDataModule):
    """RAF-DB basic (EXPR) and/or compound (zero-shot evaluation).

    Args:
        root: the RAF-DB folder.
        subset: ``"basic"`` | ``"compound"`` | ``"both"``.
        image: ``"aligned"`` | ``"original"``.
        require_images: count listed images whose file is absent as skipped.
        **kwargs: :class:`~affect.data.datamodule.CorpusDataModule` arguments
            (``val_fraction`` splits ``train`` per image: RAF-DB has no subject ids).
    """

    corpus = CORPUS

    def __init__(
        self, root: str, subset: str = "basic", image: str = "aligned", require_images: bool = True, **kwargs
    ) -> None:
        super().__init__(root, **kwargs)
        if subset not in SUBSET_CHOICES:
            raise ValueError(f"subset must be one of {SUBSET_CHOICES}, got {subset!r}")
        if image not in IMAGE_TYPES:
            raise ValueError(f"image must be one of {IMAGE_TYPES}, got {image!r}")
        self.hold_parser_args(locals())


__all__ = [
    "COMPOUND_CLASSES", "RafDbDataModule", "box_from_landmarks5", "make_rafdb_manifest",
    "parse_label_list", "parse_manual_landmarks",
]
