"""One reader for every corpus's annotation text files (CSV, TXT, JSON): encodings and line ends.

Annotation files come from many tools: some start with a UTF-8 byte-order mark (Excel,
Notepad), some end lines with CRLF (Windows) or CR, a few are UTF-16. :func:`read_text`
accepts all of these and returns the text with ``\\n`` line ends and no BOM, so a parser's
header check sees the same first line whatever wrote the file.

A file that is not valid UTF-8 (e.g. one Latin-1 byte) is a clear error, not a skip:
:class:`AnnotationTextError` names the file, the line and the byte, and says to re-save the file
as UTF-8. We chose an error because a half-understood annotation file would silently change
labels or drop a whole video; the user fixes one file and re-runs.

:func:`write_lines` is the other direction, for the fixture writers (``affect.data.fixtures``).

>>> import os, tempfile
>>> p = os.path.join(tempfile.mkdtemp(), "a.txt")
>>> _ = open(p, "wb").write(b"\\xef\\xbb\\xbfvalence,arousal\\r\\n0.1,0.2\\r\\n")
>>> read_lines(p)
['valence,arousal', '0.1,0.2']
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable
from pathlib import Path

from affect.errors import InputFileError


class AnnotationTextError(InputFileError):
    """An annotation file that is not UTF-8 text (the message names the file, line and byte)."""


def read_text(path: str | Path) -> str:
    """The file's text: UTF-8 (with or without BOM) or UTF-16 with BOM; line ends become ``\\n``.

    Raises:
        AnnotationTextError: the bytes are not valid UTF-8 (file, 1-based line and the byte in the message).
        FileNotFoundError: as ``open`` does.
    """
    data = Path(path).read_bytes()
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding, data = "utf-16", data
    else:
        encoding = "utf-8"
        if data.startswith(codecs.BOM_UTF8):
            data = data[len(codecs.BOM_UTF8):]
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        byte = data[e.start : e.start + 1].hex()
        raise AnnotationTextError(
            f"{path}: line {line} is not {encoding.upper()} text (byte 0x{byte} at offset {e.start}); "
            "re-save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)"
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_lines(path: str | Path) -> list[str]:
    """:func:`read_text` split into lines (no line-end characters; no trailing empty line)."""
    return read_text(path).splitlines()


def write_lines(path: str | Path, lines: Iterable[str]) -> Path:
    """Write ``lines`` as a UTF-8 text file (``\n`` after each), creating its folder; returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
