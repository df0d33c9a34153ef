"""Annotation text files: BOM / CRLF accepted by every corpus parser; bad bytes are a clear error."""

from __future__ import annotations

import codecs
from pathlib import Path

import pandas as pd
import pytest

from affect.data.corpora import corpus_slugs, manifest_parser
from affect.data.fixtures import fixture_writer
from affect.data.textio import AnnotationTextError, read_lines, read_text, write_lines

TEXT_SUFFIXES = (".txt", ".csv", ".json")
PARSERS = Path(__file__).resolve().parents[2] / "affect" / "data" / "corpora"


def _text_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)


def test_read_text_accepts_bom_crlf_cr_and_utf16(tmp_path):
    want = "valence,arousal\n0.1,-0.2\n"
    for name, data in {
        "bom_crlf": codecs.BOM_UTF8 + want.replace("\n", "\r\n").encode(),
        "cr": want.replace("\n", "\r").encode(),
        "utf16": want.encode("utf-16"),  # Python writes the BOM
    }.items():
        p = tmp_path / f"{name}.txt"
        p.write_bytes(data)
        assert read_text(p) == want, name
        assert read_lines(p) == ["valence,arousal", "0.1,-0.2"]


def test_undecodable_byte_names_file_line_and_fix(tmp_path):
    p = tmp_path / "video1.txt"
    p.write_bytes(b"valence,arousal\n0.1,0.2\nZo\xe9,0.3\n")  # Latin-1 e-acute on line 3
    with pytest.raises(AnnotationTextError, match=r"video1\.txt: line 3 .*0xe9.*re-save the file as UTF-8"):
        read_text(p)
    assert issubclass(AnnotationTextError, ValueError)


def test_no_parser_reads_text_by_itself():
    """One reader for every corpus: parsers call affect.data.textio, never open()/read_text() directly."""
    offenders = []
    for f in sorted(PARSERS.glob("*.py")):
        for n, line in enumerate(f.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if ".read_text(" in code or "open(" in code.replace("av.open(", ""):
                offenders.append(f"{f.name}:{n}: {line.strip()}")
    assert not offenders, offenders


@pytest.mark.parametrize("slug", [s for s in corpus_slugs() if s != "fer2013"])  # fer2013 has no text files
def test_every_parser_accepts_bom_crlf_and_rejects_latin1(slug, tmp_path):
    root = Path(fixture_writer(slug)(tmp_path / slug))
    files = _text_files(root)
    assert files, f"the {slug} fixture has no annotation text files"
    parse = manifest_parser(slug)
    before, report_before = parse(root)

    for p in files:  # what Excel / Notepad on Windows write: a BOM and CRLF line ends
        p.write_bytes(codecs.BOM_UTF8 + p.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    after, report_after = parse(root)
    pd.testing.assert_frame_equal(after, before)
    assert str(report_after) == str(report_before)

    for p in files:  # one Latin-1 byte at the start of line 2 of every file: the first file read fails
        lines = p.read_bytes().split(b"\r\n")
        if len(lines) > 1:
            lines[1] = b"\xe9" + lines[1]
        else:
            lines[0] = lines[0] + b"\xe9"
        p.write_bytes(b"\r\n".join(lines))
    with pytest.raises(AnnotationTextError, match=r"line [12] is not UTF-8 text .*re-save the file as UTF-8") as err:
        parse(root)
    assert str(root) in str(err.value)


def test_write_lines_creates_the_folder_and_ends_every_line(tmp_path):
    path = write_lines(tmp_path / "a" / "b" / "labels.csv", ["time,A1", "0.10,-0.5", "caf\u00e9"])
    assert path == tmp_path / "a" / "b" / "labels.csv"
    assert path.read_bytes() == b"time,A1\n0.10,-0.5\ncaf\xc3\xa9\n"
    assert read_lines(path) == ["time,A1", "0.10,-0.5", "caf\u00e9"]
