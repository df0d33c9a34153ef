"""The import layers of ``docs/architecture.md`` hold in the code.

Every import statement of every file under ``affect/`` counts -- top level, inside functions (lazy
imports), under ``if TYPE_CHECKING:`` -- parsed with :mod:`ast`, never executed. Two rules:

1. a module imports only modules of its own tier or lower tiers (:data:`TIERS`), so the lower
   layers (labels, errors, io, face, data, store reader, metrics, losses, models) never import an
   application module (prepare, predict, cli, demo, store writer / merge);
2. no import cycle among the package's modules.

Known violations that are being fixed are listed in :data:`KNOWN_UPWARD` / :data:`KNOWN_CYCLES`;
the tests print them, and an entry that no longer occurs fails the test, so the list only shrinks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "affect"
DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"

# (tier, layer name, module prefixes). The longest matching prefix decides a module's tier, so
# ``affect.store.writer`` is an application although ``affect.store`` is the data tier.
TIERS: list[tuple[int, str, tuple[str, ...]]] = [
    (0, "foundations", ("affect.labels", "affect.errors", "affect.profiling", "affect.configs")),
    (1, "media", ("affect.io", "affect.face")),
    (2, "data", ("affect.data", "affect.store", "affect.relatedness")),
    (3, "learning", ("affect.metrics", "affect.losses", "affect.models", "affect.tracking")),
    (4, "applications", ("affect.prepare", "affect.prepare_shard", "affect.store.writer", "affect.store.merge",
                         "affect.predict", "affect.postprocess", "affect.analyzer", "affect.demo", "affect.cli")),
    (5, "entry points", ("affect", "affect.__main__")),
]
APPLICATION_TIER = 4

# Upward imports other work is removing right now: (importer, imported). Remove an entry when the
# import is gone (the test fails on a stale entry).
KNOWN_UPWARD: set[tuple[str, str]] = {
    ("affect.data.store", "affect.prepare"),  # the store format moves to affect/store (no application import)
    ("affect.face.pipeline", "affect.data.images"),  # the image reader moves to affect/io
}
# Import cycles being removed, as sets of modules.
KNOWN_CYCLES: set[frozenset[str]] = {
    frozenset({"affect.prepare", "affect.prepare_shard"}),  # prepare and its shard driver import each other
}


def module_files(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under ``package`` (a package is its ``__init__``)."""
    modules = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules that the file ``path`` (module ``name``) imports anywhere in its text.

    ``from X import Y`` names the module ``X.Y`` when that is a module, else ``X``; relative imports
    are resolved against the file's package; imports of other distributions are dropped.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            submodules = {f"{source}.{alias.name}" for alias in node.names} & modules.keys()
            found.update(submodules)
            if len(submodules) < len(node.names):
                found.add(source)
    return {module for module in found if module in modules and module != name}


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    modules = module_files(package)
    return {name: imported_modules(name, path, modules) for name, path in modules.items()}


def tier_of(module: str) -> tuple[int, str] | None:
    best: tuple[int, int, str] | None = None
    for tier, layer, prefixes in TIERS:
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), tier, layer)
    return None if best is None else (best[1], best[2])


def upward_imports(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    return {(module, target) for module, targets in graph.items() for target in targets
            if tier_of(target)[0] > tier_of(module)[0]}


def import_cycles(graph: dict[str, set[str]]) -> set[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: set[frozenset[str]] = set()
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.add(frozenset(component))
    return cycles


# --- the checker itself, on a package written here --------------------------------------------------

def write_package(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "affect"


def test_checker_sees_lazy_relative_and_type_checking_imports(tmp_path):
    package = write_package(tmp_path, {
        "affect/__init__.py": "",
        "affect/labels.py": "import numpy\n",
        "affect/cli.py": "from affect import labels\n",
        "affect/data/__init__.py": "from .store import Reader\n",
        "affect/data/store.py": "def load():\n    from affect.cli import main\n",
        "affect/models/__init__.py": (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..predict import thing\n"
        ),
        "affect/predict/__init__.py": "import affect.data.store\n",
    })
    graph = import_graph(package)
    assert graph["affect.labels"] == set()  # other distributions are not modules of the package
    assert graph["affect.cli"] == {"affect.labels"}  # "from affect import labels" names the module
    assert graph["affect.data"] == {"affect.data.store"}
    assert graph["affect.data.store"] == {"affect.cli"}  # the lazy import inside a function
    assert graph["affect.models"] == {"affect.predict"}  # relative, under TYPE_CHECKING
    assert upward_imports(graph) == {("affect.data.store", "affect.cli"), ("affect.models", "affect.predict")}
    assert import_cycles(graph) == set()  # predict -> data.store -> cli -> labels: a chain, no cycle
    (package / "labels.py").write_text("def f():\n    import affect.data.store\n")
    assert import_cycles(import_graph(package)) == {
        frozenset({"affect.data.store", "affect.cli", "affect.labels"})
    }


def test_tiers_prefer_the_longest_prefix():
    assert tier_of("affect.store.reader") == (2, "data")
    assert tier_of("affect.store.writer") == (4, "applications")
    assert tier_of("affect.store.writer.shards") == (4, "applications")
    assert tier_of("affect.prepare_shard") == (4, "applications")
    assert tier_of("affect") == (5, "entry points")


# --- the package -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_every_module_has_a_layer(graph):
    unplaced = sorted(module for module in graph if tier_of(module) is None)
    assert not unplaced, f"add these modules to a layer in TIERS and docs/architecture.md: {unplaced}"


def test_lower_layers_never_import_higher_ones(graph):
    print("known upward imports being removed (KNOWN_UPWARD):", *sorted(KNOWN_UPWARD), sep="\n  ")
    found = upward_imports(graph)
    new = sorted(found - KNOWN_UPWARD)
    assert not new, "imports from a lower layer into a higher one (docs/architecture.md):\n" + "\n".join(
        f"  {a} ({tier_of(a)[1]}) -> {b} ({tier_of(b)[1]})" for a, b in new
    )
    stale = sorted(KNOWN_UPWARD - found)
    assert not stale, f"these KNOWN_UPWARD entries no longer occur: remove them from tests/test_architecture.py: {stale}"


def test_no_lower_layer_imports_an_application_module(graph):
    application = [(a, b) for a, b in upward_imports(graph)
                   if tier_of(b)[0] >= APPLICATION_TIER > tier_of(a)[0] and (a, b) not in KNOWN_UPWARD]
    assert not application, application


def test_no_import_cycle(graph):
    print("known import cycles being removed (KNOWN_CYCLES):", *(sorted(c) for c in KNOWN_CYCLES), sep="\n  ")
    found = import_cycles(graph)
    new = [sorted(c) for c in found - KNOWN_CYCLES]
    assert not new, f"import cycles among the package's modules (lazy imports included): {new}"
    stale = [sorted(c) for c in KNOWN_CYCLES - found]
    assert not stale, f"these KNOWN_CYCLES no longer occur: remove them from tests/test_architecture.py: {stale}"


def test_the_architecture_page_names_every_layer():
    text = DOC.read_text(encoding="utf-8")
    missing = [prefix for _, _, prefixes in TIERS for prefix in prefixes
               if prefix != "affect" and f"`{prefix}" not in text]
    assert not missing, f"docs/architecture.md does not name: {missing}"
