"""The README's first screen, the documentation site's pages and nav, and its offline strict build."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
README = (REPO / "README.md").read_text(encoding="utf-8")


def nav_pages(nav) -> list[str]:
    """Every page file named in an mkdocs ``nav`` (nested lists of ``{title: page | [...]}``)."""
    pages: list[str] = []
    for entry in nav:
        for value in (entry.values() if isinstance(entry, dict) else [entry]):
            pages.extend(nav_pages(value) if isinstance(value, list) else [value])
    return pages


def mkdocs_config() -> dict:
    # mkdocs.yml uses no custom YAML tags, so the safe loader reads it.
    return yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))


def test_readme_first_screen_has_the_set_up_commands_and_the_main_job():
    first_screen = "\n".join(README.splitlines()[:60])
    for command in ("make test", "make demo", "affect predict clip.mp4 -o out", "affect fit --config"):
        assert command in first_screen, f"README's first 60 lines lose {command!r}"
    assert "docs/predict_timeline_single_face.png" in first_screen
    assert len(README.splitlines()) <= 80, "README is the first screen; move the rest to docs/"


def test_readme_links_point_at_files_that_exist():
    targets = re.findall(r"\]\(([^)#\s]+)", README)
    local = [t for t in targets if "://" not in t]
    assert local, "the README links its docs pages"
    missing = [t for t in local if not (REPO / t).exists()]
    assert not missing, missing


def test_every_page_is_in_the_nav_and_every_nav_entry_exists():
    config = mkdocs_config()
    nav = nav_pages(config["nav"])
    pages = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md") if "hooks" not in p.parts)
    assert sorted(set(nav)) == pages, (
        f"pages outside the nav: {sorted(set(pages) - set(nav))}; nav entries without a page: "
        f"{sorted(set(nav) - set(pages))}"
    )
    assert len(nav) == len(set(nav)), "a page is in the nav twice"


def test_the_site_needs_no_network():
    config = mkdocs_config()
    assert config["theme"].get("font") is False, "theme.font must be false: web fonts are fetched"
    names = [next(iter(p)) if isinstance(p, dict) else p for p in config.get("plugins", [])]
    assert not {"social", "privacy", "material/social", "material/privacy"} & set(names), names


def _fence_doctests():
    spec = importlib.util.spec_from_file_location("griffe_doctest", DOCS / "hooks" / "griffe_doctest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.fence_doctests


def test_doctest_runs_become_code_fences():
    fence = _fence_doctests()
    text = "Shapes.\n\n>>> net.shapes\n[(96, 1, 1)]\n\nAfter.\n\n    >>> x = 1\n    >>> x\n    1"
    assert fence(text) == (
        "Shapes.\n\n```pycon\n>>> net.shapes\n[(96, 1, 1)]\n```\n\nAfter.\n\n"
        "    ```pycon\n    >>> x = 1\n    >>> x\n    1\n    ```"
    )
    already = "```python\n>>> 1\n```"
    assert fence(already) == already
    assert fence("no examples") == "no examples"


@pytest.mark.slow
def test_mkdocs_build_strict_offline(tmp_path):
    """``make docs``: ``mkdocs build --strict`` (a broken link, a page outside the nav, an API page
    whose module or docstring does not resolve all fail), with every HTTP(S) request pointed at a
    closed port, so a plugin or theme that fetches something fails here."""
    closed = "http://127.0.0.1:9"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "HTTP_PROXY": closed, "HTTPS_PROXY": closed,
           "http_proxy": closed, "https_proxy": closed, "NO_PROXY": "", "no_proxy": ""}
    site = tmp_path / "site"
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (site / "index.html").is_file()
    api = (site / "api" / "losses" / "index.html").read_text(encoding="utf-8")
    assert "MultiTaskLoss" in api and "ccc_loss" in api  # the API pages carry the docstrings
    assert "fonts.googleapis.com" not in (site / "index.html").read_text(encoding="utf-8")
