"""The package's text cites only what a clone holds: no file outside the repository (the design notes
are named as such, not as a path), no issue or pull-request numbers (they are not in the code's history
a reader has)."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "affect"
#: a path to the design notes (not in the repository), an issue number, a "#12"-style reference
FORBIDDEN = re.compile(r"DESIGN\.md|\bissues? \d+|(?<![\w&/])#\d{2,}\b")


def test_no_citation_of_files_outside_the_repo_or_of_issue_numbers():
    hits = []
    for path in sorted(PACKAGE.rglob("*")):
        if path.suffix not in (".py", ".json", ".yaml") or "__pycache__" in path.parts:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if FORBIDDEN.search(line):
                hits.append(f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()[:100]}")
    assert not hits, "\n".join(hits)
