"""What ``affect predict`` takes as inputs: files, folders (recursive) and globs -> one path per real file.

- A path that exists is taken literally, before any expansion: a file named ``$HOME.jpg`` or
  ``[1].png`` is that file.
- Otherwise ``~`` and ``$VARS`` are expanded; a path that then exists is taken; a pattern with
  ``*``, ``?`` or ``[...]`` is a glob (``**`` spans folders); anything else is kept as given (it
  becomes a ``not_found`` input).
- Folders and ``**`` are walked following symlinked folders, each real folder once (a link back
  to a parent, ``sub/loop -> ..``, is not walked again).
- Every real file is an input once (by its resolved path), under the first name it was found by.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Callable, Iterator

__all__ = ["expand_inputs"]

GLOB_CHARS = "*?["


def expand_inputs(inputs: str | list[str], keep: Callable[[str], bool]) -> list[str]:
    """Files, folders and globs -> a list of paths (see the module docstring); ``keep`` says which
    files a folder scan or a glob takes (images and videos).

    >>> expand_inputs(["/nonexistent/a.mp4"], keep=lambda p: True)
    ['/nonexistent/a.mp4']
    """
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    out: list[str] = []
    for item in items:
        item = os.fspath(item)
        if not os.path.lexists(item):
            expanded = os.path.expandvars(os.path.expanduser(item))
            if os.path.lexists(expanded) or any(c in expanded for c in GLOB_CHARS):
                item = expanded
        if os.path.isdir(item):
            out.extend(sorted(f for f in _walk(item) if keep(f)))
        elif os.path.lexists(item) or not any(c in item for c in GLOB_CHARS):
            out.append(item)
        else:
            out.extend(sorted(f for f in _glob(item) if os.path.isfile(f) and keep(f)))
    return _unique(out)


def _unique(paths: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for p in paths:
        real = os.path.realpath(p) if os.path.exists(p) else os.path.abspath(p)
        if real not in seen:
            seen.add(real)
            out.append(p)
    return out


def _walk(top: str, seen: set | None = None) -> Iterator[str]:
    """Every file below ``top``, following symlinked folders, each real folder once."""
    seen = set() if seen is None else seen
    for folder, _ in _folders(top, seen):
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for e in entries:
            if e.is_file():
                yield e.path


def _folders(top: str, seen: set) -> Iterator[tuple[str, tuple[str, ...]]]:
    """``(folder, its parts below top)`` for ``top`` and every folder below it, each real folder once."""
    stack = [(top, ())]
    while stack:
        folder, parts = stack.pop()
        try:
            st = os.stat(folder)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        yield folder, parts
        try:
            subs = sorted((e for e in os.scandir(folder) if e.is_dir()), key=lambda e: e.name, reverse=True)
        except OSError:
            continue
        stack.extend((e.path, (*parts, e.name)) for e in subs)


def _glob(pattern: str) -> Iterator[str]:
    """Files matching ``pattern`` (``**``: any number of folders), walking each real folder once."""
    parts = pattern.split(os.sep)
    fixed = 0
    while fixed < len(parts) - 1 and not any(c in parts[fixed] for c in GLOB_CHARS):
        fixed += 1
    base = os.sep.join(parts[:fixed]) or (os.sep if pattern.startswith(os.sep) else "")
    rest = parts[fixed:]
    rx = ""
    for i, part in enumerate(rest):
        last = i == len(rest) - 1
        if part == "**":
            rx += ".*" if last else "(?:[^/]+/)*"
        else:
            rx += _part_regex(part) + ("" if last else "/")
    regex = re.compile(rx)
    for folder, below in _folders(base or os.curdir, set()):
        try:
            names = sorted(e.name for e in os.scandir(folder) if e.is_file())
        except OSError:
            continue
        for name in names:
            rel = "/".join((*below, name))
            if regex.fullmatch(rel) and not any(s.startswith(".") for s in (*below, name)):
                yield os.path.join(folder, name) if base else rel


def _part_regex(part: str) -> str:
    """One path component of a glob as a regex; ``**`` -> any number of folders."""
    return fnmatch.translate(part).removeprefix("(?s:").removesuffix(")\\Z").replace(".*", "[^/]*")
