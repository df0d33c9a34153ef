"""Every corpus data module holds its parser's arguments and runs the parser with exactly those.

The base class finds them by the parser's parameter names (``hold_parser_args``); a module that took a
parser option in its ``__init__`` but did not hold it would parse (and record in a store) the default.
"""

from __future__ import annotations

import importlib
import inspect

import pandas as pd
import pytest

from affect.data.corpora import corpus_slugs, manifest_parser
from affect.data.datamodule import CorpusDataModule
from affect.data.manifest import LoadReport


def _module_class(slug: str) -> type[CorpusDataModule]:
    module = importlib.import_module(f"affect.data.corpora.{slug}")
    (cls,) = [c for c in vars(module).values()
              if isinstance(c, type) and issubclass(c, CorpusDataModule) and c.corpus == slug]
    return cls


def _init_options(cls: type) -> set[str]:
    """Options of the module's own ``__init__`` chain below the base class (what jsonargparse shows beyond it)."""
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass is CorpusDataModule:
            break
        if "__init__" in vars(klass):
            names |= set(inspect.signature(klass.__init__).parameters) - {"self", "root", "kwargs"}
    return names


@pytest.mark.parametrize("slug", [s for s in corpus_slugs() if s != "affwild2"])  # affwild2 maps task itself
def test_make_manifest_runs_the_parser_with_the_held_arguments(slug, tmp_path, monkeypatch):
    cls = _module_class(slug)
    parser_names = list(inspect.signature(manifest_parser(slug)).parameters)[1:]
    assert _init_options(cls) <= set(parser_names), "a module option that is not a parser argument"
    dm = cls(str(tmp_path))
    held = dm.parser_args()
    assert set(held) == _init_options(cls)
    seen = {}

    def fake(root, **kwargs):
        seen.update(root=root, **kwargs)
        return pd.DataFrame(columns=["path", "corpus"]), LoadReport(slug)

    fake.__signature__ = inspect.signature(manifest_parser(slug))  # the base class reads the parser's names
    monkeypatch.setattr(importlib.import_module(f"affect.data.corpora.{slug}"), f"make_{slug}_manifest", fake)
    dm.make_manifest()
    assert seen.pop("root") == str(tmp_path)
    assert set(seen) == set(held)
    assert {k: getattr(dm, k) for k in seen} == seen


def test_a_module_without_a_parser_must_implement_make_manifest():
    class Toy(CorpusDataModule):
        corpus = "toy"

    with pytest.raises(NotImplementedError, match="Toy must implement make_manifest"):
        Toy("/tmp").make_manifest()
