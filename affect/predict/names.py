"""Output file names and printable names of ``affect predict``'s inputs.

- :func:`safe_names`: one output name per input, from its file name (with as many parent folders,
  joined by ``__``, as make it unique). Every name is **safe** (no ``/``, no control characters, no
  leading ``.``; bytes that are not UTF-8 become ``%XX``), **bounded** (at most :data:`MAX_NAME_BYTES`
  bytes, so ``<name>_annotated.mp4`` and a temporary prefix stay within the 255 bytes file systems
  allow; longer names keep their start and end around a hash) and **unique**, also on case-insensitive
  file systems (names that still clash get a short hash of the input's full path).
- :func:`text_name`: an input's path as text that can always be written (CSV, JSON, a terminal, a
  plot title): a byte that is not UTF-8 (a name read from a folder by Python keeps it as a lone
  surrogate) becomes ``\\xNN``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["MAX_NAME_BYTES", "safe_names", "text_name"]

#: The longest output name stem in bytes; suffixes (``_annotated.mp4``) and the ``.part-`` prefix of
#: a file being written fit in the 255 bytes of a file name.
MAX_NAME_BYTES = 200
UNSAFE = set('/\\:*?"<>|') | {chr(c) for c in range(32)} | {"\x7f"}


def text_name(path: str) -> str:
    r"""``path`` as writable text: undecodable bytes as ``\xNN``.

    >>> text_name(os.fsdecode(b"/d/caf\xe9.jpg"))
    '/d/caf\\xe9.jpg'
    """
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _short_hash(path: str) -> str:
    return hashlib.sha1(os.fsencode(os.path.abspath(path))).hexdigest()[:8]


def _safe(name: str) -> str:
    """``%XX`` for bytes that are not UTF-8, ``_`` for unsafe characters and a leading dot."""
    text = os.fsencode(name).decode("utf-8", "surrogateescape")
    out = "".join(f"%{ord(c) - 0xDC00:02X}" if 0xDC80 <= ord(c) <= 0xDCFF else "_" if c in UNSAFE else c for c in text)
    return "_" + out[1:] if out.startswith(".") else out


def _bounded(name: str, path: str, limit: int = MAX_NAME_BYTES) -> str:
    """``name`` if it fits in ``limit`` bytes, else its start ``~`` a hash of ``path`` ``~`` its end (the suffix)."""
    if len(name.encode("utf-8")) <= limit:
        return name
    suffix = Path(name).suffix if len(Path(name).suffix) <= 16 else ""
    room = limit - len(suffix.encode("utf-8")) - 10
    head = name.encode("utf-8")[:room].decode("utf-8", "ignore")
    return f"{head}~{_short_hash(path)}{suffix}"


def safe_names(paths: list[str]) -> dict[str, str]:
    """A safe, bounded, unique output name per input (see the module docstring).

    >>> safe_names(["/d/a/x.mp4", "/d/b/x.mp4", "/e/y.jpg"])
    {'/d/a/x.mp4': 'a__x.mp4', '/d/b/x.mp4': 'b__x.mp4', '/e/y.jpg': 'y.jpg'}
    >>> sorted(safe_names(["/d/x/L.jpg", "/d/x__L.jpg", "/e/L.jpg"]).values())  # the first two flatten alike
    ['d__x__L~251471b8.jpg', 'd__x__L~b0ee5728.jpg', 'e__L.jpg']
    """
    parts = {p: tuple(_safe(s) for s in Path(os.path.abspath(p)).parts[1:]) or (_safe(p),) for p in dict.fromkeys(paths)}
    depth = dict.fromkeys(parts, 1)

    def clashing(names: dict[str, str]) -> set[str]:
        count: dict[str, int] = {}
        for n in names.values():
            count[n.casefold()] = count.get(n.casefold(), 0) + 1
        return {p for p, n in names.items() if count[n.casefold()] > 1}

    while True:
        names = {p: _bounded("__".join(parts[p][-depth[p]:]), p) for p in parts}
        deeper = [p for p in clashing(names) if depth[p] < len(parts[p])]
        if not deeper:
            break
        for p in deeper:
            depth[p] += 1
    for p in clashing(names):  # the same name at full depth (x/L.jpg and x__L.jpg): a hash of the full path
        stem, suffix = os.path.splitext(names[p])
        names[p] = _bounded(f"{stem}~{_short_hash(p)}{suffix}", p)
    return names
