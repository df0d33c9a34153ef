"""The store package's import structure: no circle (lazy imports inside functions included), the data
layer and the reader never reach the writer or the command line, the format module needs no torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STORE = REPO / "affect" / "store"
APPLICATION = ("affect.prepare", "affect.store.writer", "affect.store.cli", "affect.store.merge", "affect.cli",
               "affect.predict", "affect.demo")


def imports_of(path: Path) -> set[str]:
    """Every ``affect.*`` module ``path`` imports, at the top or inside a function."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("affect"):
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)  # `from affect.store import reader`
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("affect"))
    return out


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    return ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


def test_no_import_circle_in_the_store_package():
    graph = {module_name(p): {m for m in imports_of(p) if m.startswith("affect.store.") or m == "affect.prepare"}
             for p in [*STORE.glob("*.py"), REPO / "affect" / "prepare.py"]}
    graph = {k: {m for m in v if m in graph} for k, v in graph.items()}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            assert state.get(nxt) != 1, f"import circle: {' -> '.join([*path, nxt])}"
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])


def test_the_data_layer_and_the_reader_import_no_application_module():
    lower = [*sorted((REPO / "affect" / "data").rglob("*.py")), STORE / "reader.py", STORE / "format.py"]
    for path in lower:
        bad = sorted(m for m in imports_of(path) if m.startswith(APPLICATION))
        assert not bad, f"{path.relative_to(REPO)} imports {bad}"


def test_the_format_module_imports_neither_torch_nor_pandas():
    code = "import sys, affect.store.format; print(sorted(m for m in ('torch', 'pandas') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"
