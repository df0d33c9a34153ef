"""EmotioNet (Benitez-Quiroz, Srinivasan & Martinez 2016) challenge sheets + locally fetched images.

The paper uses EmotioNet's manually annotated AU set (Sec. III, Table X) and its basic +
compound expression set for zero-shot evaluation (eq. 10, Table XV). EmotioNet distributes
**image URLs**, not images; the user fetches the images beforehand. Expected layout (ours,
``data_cards/emotionet.md``)::

    sheets/{train,val,test}.csv            AU sheets: a URL column + AU columns, 0 / 1 / 999
    sheets/compound_{train,val,test}.csv   optional: URL + class (track 2 of the 2017 challenge)
    images/<basename of the URL path>      fetched images (default URL -> file rule)
    urls.csv                               optional mapping, header "url,path" (path relative
                                           to the root); when present it replaces the default rule

Sheet format: comma- or tab-separated with a header. The URL column is named ``URL`` (any
case; ``url``, ``image``, ``image_url`` accepted), AU columns ``AU1``, ``AU 2``, ``AU02`` ...
AUs outside ``labels.AU_SET`` (e.g. AU43) are ignored (counted once per sheet row).

- AU value 0 / 1 -> the AU column; 999 (not coded) -> NaN (masked), counted, row kept;
  any other value -> "malformed line" (with ``file:line``);
- AUs the sheet does not list stay NaN; EmotioNet has no VA annotation (NaN);
- compound sheets: the class as a 1-based id into ``EMOTIONET_CLASSES`` or as a name
  (case-insensitive; ``happy``, ``angrily-disgusted``, ... accepted); ``compound`` = its 0-based
  index, and the 6 basic classes also set ``expr``;
- unmapped URLs (not in ``urls.csv``), missing images (``require_images``) and duplicate URLs
  within a sheet are counted skips.

>>> class_index("angrily-disgusted"), class_index("happy"), class_index("3")
(15, 0, 2)
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

import pandas as pd

from affect.data.datamodule import CorpusDataModule
from affect.data.manifest import LoadReport, manifest_from_records
from affect.data.textio import read_text
from affect.labels import AU_SET, EXPR_CLASSES, expr_index

CORPUS = "emotionet"
SPLITS = ("train", "val", "test")
SHEET_DIR = "sheets"
IMAGE_DIR = "images"
URL_MAP = "urls.csv"
NOT_CODED = 999
URL_COLUMNS = ("url", "image", "image_url", "imageurl")
LABEL_COLUMNS = ("label", "class", "emotion", "category")
_AU_HEADER = re.compile(r"^au\s*0*(\d+)$", re.IGNORECASE)

#: Track 2 of the 2017 EmotioNet challenge: 6 basic + 10 compound classes, 0-based
#: ``compound`` index. The exact list and order of the official sheets could not be checked
#: (see the data card); override with ``classes=`` when a sheet uses ids in another order.
EMOTIONET_CLASSES: tuple[str, ...] = (
    "Happiness", "Sadness", "Fear", "Anger", "Surprise", "Disgust",
    "Happily Surprised", "Happily Disgusted", "Sadly Fearful", "Sadly Angry", "Sadly Surprised",
    "Sadly Disgusted", "Fearfully Angry", "Fearfully Surprised", "Angrily Surprised", "Angrily Disgusted",
)
COMPOUND_CLASSES = EMOTIONET_CLASSES
_ALIASES = {
    "happy": "happiness", "sad": "sadness", "fearful": "fear", "angry": "anger",
    "surprised": "surprise", "disgusted": "disgust",
}


def _norm(name: str) -> str:
    key = re.sub(r"[\s_\-]+", " ", name.strip().lower())
    return _ALIASES.get(key, key)


def class_index(label: str, classes: Sequence[str] = EMOTIONET_CLASSES) -> int:
    """0-based index of a compound-sheet label (1-based id or class name) in ``classes``."""
    text = label.strip()
    if text.isdigit():
        if not 1 <= int(text) <= len(classes):
            raise ValueError(f"class id {text} outside 1..{len(classes)}")
        return int(text) - 1
    keys = [_norm(c) for c in classes]
    if _norm(text) not in keys:
        raise ValueError(f"unknown class {label!r}; expected an id 1..{len(classes)} or one of {list(classes)}")
    return keys.index(_norm(text))


def url_basename(url: str) -> str:
    """The file name the default rule expects under ``images/`` for ``url``.

    >>> url_basename("http://a.b/c/d%20e.jpg?x=1")
    'd e.jpg'
    """
    return unquote(PurePosixPath(urlparse(url.strip()).path).name)


def read_url_map(path: str | Path) -> dict[str, str]:
    """``url -> path`` from a ``urls.csv`` (header ``url,path``)."""
    reader = csv.reader(io.StringIO(read_text(path)))
    header = [c.strip().lower() for c in next(reader, [])]
    if "url" not in header or "path" not in header:
        raise ValueError(f"{path}: expected a header 'url,path', found {header}")
    u, p = header.index("url"), header.index("path")
    return {row[u].strip(): row[p].strip() for row in reader if len(row) > max(u, p) and row[u].strip()}


def _rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and ``(line number, fields)`` rows of a comma- or tab-separated sheet."""
    text = read_text(path)
    first = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first else ","
    reader = csv.reader(text.splitlines(), delimiter=delimiter)
    header: list[str] | None = None
    rows = []
    for lineno, fields in enumerate(reader, start=1):
        if not fields or all(not c.strip() for c in fields):
            continue
        if header is None:
            header = [c.strip() for c in fields]
            continue
        rows.append((lineno, fields))
    if header is None:
        raise ValueError(f"{path} is empty (expected a header line)")
    return header, rows


def _column(header: list[str], names: Sequence[str], path: Path, what: str) -> int:
    lowered = [h.lower() for h in header]
    for name in names:
        if name in lowered:
            return lowered.index(name)
    raise ValueError(f"{path}: no {what} column (one of {list(names)}) in header {header}")


class _Locator:
    """URL -> image path (relative to the root), by ``urls.csv`` or the basename rule."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.mapping = read_url_map(root / URL_MAP) if (root / URL_MAP).is_file() else None

    def __call__(self, url: str) -> str | None:
        if self.mapping is not None:
            return self.mapping.get(url.strip())
        name = url_basename(url)
        return f"{IMAGE_DIR}/{name}" if name else None


def _sheet_url(fields: list[str], header: list[str], url_col: int) -> str:
    """The URL of one sheet line; raises ValueError (a malformed line) on a wrong field count or no URL."""
    if len(fields) != len(header):
        raise ValueError(f"{len(fields)} fields, expected {len(header)}")
    url = fields[url_col].strip()
    if not url:
        raise ValueError("empty URL")
    return url


def _locate(
    url: str, seen: set[str], locate: _Locator, require_images: bool, where: str, report: LoadReport
) -> str | None:
    """The image of a sheet line's URL, or None with the skip counted (a repeated URL, unmapped, missing)."""
    if url in seen:
        report.skip("duplicate URL in sheet", example=f"{where}: {url}")
        return None
    seen.add(url)
    path = locate(url)
    if path is None:
        report.skip("unmapped URL", example=f"{where}: {url}")
        return None
    if require_images and not (locate.root / path).is_file():
        report.skip("missing image", example=f"{where}: {path}")
        return None
    return path


def _sheet_records(
    name: str, split: str, rows: list[tuple[int, list[str]]], url_col: int, header: list[str],
    parse: Callable[[list[str]], tuple[dict, list[tuple[str, int]]]], locate: _Locator, require_images: bool,
    report: LoadReport,
) -> list[dict]:
    """The manifest records of one sheet (``name`` under ``sheets/``): ``parse(fields)`` gives a line's labels
    and its label-level notes ``(reason, count)``, counted only when the row reaches the manifest; a
    ValueError from it is a malformed line."""
    records, seen = [], set()
    for lineno, fields in rows:
        where = f"{SHEET_DIR}/{name}:{lineno}"
        try:
            url = _sheet_url(fields, header, url_col)
            labels, notes = parse(fields)
        except ValueError as err:
            report.skip("malformed line", example=f"{where}: {err}")
            continue
        image = _locate(url, seen, locate, require_images, where, report)
        if image is None:
            continue
        for reason, count in notes:
            report.skip(reason, count=count, example=where)
        records.append({"path": image, "corpus": CORPUS, "split": split, **labels})
    return records


def _read_au_sheet(
    root: Path, split: str, locate: _Locator, require_images: bool, report: LoadReport
) -> list[dict]:
    path = root / SHEET_DIR / f"{split}.csv"
    header, rows = _rows(path)
    url_col = _column(header, URL_COLUMNS, path, "URL")
    au_cols: dict[int, int] = {}
    for i, name in enumerate(header):
        match = _AU_HEADER.match(name)
        if match:
            au_cols[i] = int(match.group(1))
    if not au_cols:
        raise ValueError(f"{path}: no AU columns (AU1, AU2, ...) in header {header}")
    ignored = [(f"AU{au} outside AU_SET (column ignored, row kept)", 1)
               for au in sorted({au for au in au_cols.values() if au not in AU_SET})]

    def parse(fields: list[str]) -> tuple[dict, list[tuple[str, int]]]:
        aus: dict[str, float] = {}
        not_coded = 0
        for col, au in au_cols.items():
            value = float(fields[col])
            if value not in (0.0, 1.0, float(NOT_CODED)):
                raise ValueError(f"AU{au} value {fields[col]!r} is not 0, 1 or {NOT_CODED}")
            if au not in AU_SET:
                continue
            if value == NOT_CODED:
                not_coded += 1
                aus[f"AU{au}"] = float("nan")
            else:
                aus[f"AU{au}"] = float(value)
        notes = [("AU value 999 not coded (AU masked, row kept)", not_coded)] if not_coded else []
        return {"subject": "", **aus}, notes + ignored

    return _sheet_records(path.name, split, rows, url_col, header, parse, locate, require_images, report)


def _read_compound_sheet(
    root: Path, split: str, locate: _Locator, require_images: bool, classes: Sequence[str], report: LoadReport
) -> list[dict]:
    path = root / SHEET_DIR / f"compound_{split}.csv"
    header, rows = _rows(path)
    url_col = _column(header, URL_COLUMNS, path, "URL")
    label_col = _column(header, LABEL_COLUMNS, path, "class")
    basic = {_norm(c) for c in EXPR_CLASSES}

    def parse(fields: list[str]) -> tuple[dict, list[tuple[str, int]]]:
        index = class_index(fields[label_col], classes)
        name = _norm(classes[index])
        return {"compound": index, "expr": expr_index(name) if name in basic else -1}, []

    return _sheet_records(path.name, split, rows, url_col, header, parse, locate, require_images, report)


def make_emotionet_manifest(
    root: str | Path, require_images: bool = True, classes: Sequence[str] | None = None
) -> tuple[pd.DataFrame, LoadReport]:
    """Parse the EmotioNet sheets under ``root`` (layout in the module docstring).

    Args:
        root: the EmotioNet folder.
        require_images: skip rows whose image file is absent ("missing image").
        classes: class list of the compound sheets (default ``EMOTIONET_CLASSES``).

    Raises:
        FileNotFoundError: no sheet at all under ``root/sheets/``.
    """
    root = Path(root)
    classes = tuple(classes) if classes is not None else EMOTIONET_CLASSES
    au_sheets = [s for s in SPLITS if (root / SHEET_DIR / f"{s}.csv").is_file()]
    compound_sheets = [s for s in SPLITS if (root / SHEET_DIR / f"compound_{s}.csv").is_file()]
    if not au_sheets and not compound_sheets:
        raise FileNotFoundError(
            f"no EmotioNet sheet under {root / SHEET_DIR}: expected {root / SHEET_DIR / 'train.csv'} "
            f"(AU sheet) and/or {root / SHEET_DIR / 'compound_train.csv'} (val/test likewise)"
        )
    report = LoadReport(CORPUS)
    locate = _Locator(root)
    records: list[dict] = []
    for split in au_sheets:
        records += _read_au_sheet(root, split, locate, require_images, report)
    for split in compound_sheets:
        records += _read_compound_sheet(root, split, locate, require_images, classes, report)
    report.kept = len(records)
    df = manifest_from_records(records)
    return df, report


class EmotioNetDataModule(CorpusDataModule):
    """EmotioNet AU sheets (AU task) and compound sheets (zero-shot evaluation).

    Args:
        root: the EmotioNet folder.
        require_images: count rows whose image is absent as skipped.
        classes: class list of the compound sheets (default ``EMOTIONET_CLASSES``).
        **kwargs: :class:`~affect.data.datamodule.CorpusDataModule` arguments.
    """

    corpus = CORPUS

    def __init__(
        self, root: str, require_images: bool = True, classes: list[str] | None = None, **kwargs
    ) -> None:
        super().__init__(root, **kwargs)
        self.hold_parser_args(locals())
