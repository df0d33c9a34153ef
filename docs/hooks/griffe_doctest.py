"""A griffe extension for the API pages: doctest runs (``>>>`` lines and their output) outside a
docstring's ``Examples:`` section become fenced ``pycon`` blocks, so markdown renders them as code
(and does not read ``[(2, 96, 1, 1)]`` as a link)."""

from __future__ import annotations

import griffe


def fence_doctests(text: str) -> str:
    """Wrap each run of ``>>>`` / ``...`` lines plus the output lines after them (up to a blank
    line) in a ``pycon`` code fence; fenced blocks are left alone (tested in tests/test_docs.py)."""
    out: list[str] = []
    inside = fenced = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            fenced = not fenced
        if not fenced and not inside and stripped.startswith(">>>"):
            indent = line[: len(line) - len(line.lstrip())]
            out.append(f"{indent}```pycon")
            inside = True
        elif inside and not stripped:
            out.append(f"{indent}```")
            inside = False
        out.append(line)
    if inside:
        out.append(f"{indent}```")
    return "\n".join(out)


class FenceDoctests(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = fence_doctests(obj.docstring.value)
