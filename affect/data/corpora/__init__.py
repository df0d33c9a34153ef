"""One module per corpus, each in its native release layout.

``affect/data/corpora/<slug>.py`` defines ``make_<slug>_manifest(root, ...) -> (DataFrame,
LoadReport)`` and a ``CorpusDataModule`` subclass. The same slug names the data card
(``data_cards/<slug>.md``), the YAML (``experiments/data/<slug>.yaml``), the fixture writer
(``affect/data/fixtures/<slug>.py``) and the test (``tests/data/corpora/test_<slug>.py``).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable


def corpus_slugs() -> list[str]:
    """Every corpus module in this package."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def manifest_parser(slug: str) -> Callable:
    """``make_<slug>_manifest`` of the corpus ``slug``, with a clear error for unknown slugs."""
    if slug not in corpus_slugs():
        raise ValueError(f"unknown corpus {slug!r}; known: {corpus_slugs()}")
    module = importlib.import_module(f"{__name__}.{slug}")
    return getattr(module, f"make_{slug}_manifest")
