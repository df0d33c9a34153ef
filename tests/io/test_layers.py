"""``affect.io`` is a foundation layer, and the only place that opens media with PyAV."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HIGHER = ("affect.data", "affect.predict", "affect.prepare", "affect.cli", "affect.face", "affect.store")


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):  # lazy imports inside functions included
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def test_io_imports_no_higher_layer():
    bad = {
        f"{f.name}: {m}"
        for f in (REPO / "affect" / "io").glob("*.py")
        for m in _imports(f)
        if m.startswith(HIGHER) or m == "torch" or m.startswith("torch.")
    }
    assert not bad, bad


def test_av_open_only_in_the_reader_and_the_writer():
    where = sorted(
        str(f.relative_to(REPO))
        for top in ("affect", "benchmarks")
        for f in (REPO / top).rglob("*.py")
        if "av.open(" in f.read_text()
    )
    assert where == ["affect/io/decode.py", "affect/io/encode.py"], where


def test_every_image_open_goes_through_the_reader():
    """``Image.open`` on files only in ``affect.io.image`` (tracking.py reads back a figure it rendered itself)."""
    where = sorted(
        str(f.relative_to(REPO))
        for top in ("affect", "benchmarks")
        for f in (REPO / top).rglob("*.py")
        if "Image.open(" in f.read_text() or "imread(" in f.read_text()
    )
    assert set(where) <= {"affect/io/image.py", "affect/tracking.py"}, where
