"""The corpus parser's arguments a datamodule holds: what it parses the native release with, and what a
prepared store must have been built with (its ``store.json`` "parser" record).

:class:`ParserArgs` is a part of :class:`affect.data.datamodule.CorpusDataModule`: a corpus module calls
:meth:`~ParserArgs.hold_parser_args` with its ``locals()``; :meth:`~ParserArgs.make_manifest` runs
``make_<corpus>_manifest`` with them and :meth:`~ParserArgs.check_store_parser_args` refuses a store
built with other ones (the fold-leak guard: a fold-1 store never feeds a fold-0 run).
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Mapping

import pandas as pd

from affect.data.manifest import LoadReport
from affect.errors import ConfigError

log = logging.getLogger("affect.data.datamodule")

__all__ = ["ParserArgs"]


def _cli(value: object) -> str:
    """A value as ``affect prepare --parser.<key>`` takes it (``right``, ``1``, ``[1, 2]``)."""
    return value if isinstance(value, str) else json.dumps(value)


class ParserArgs:
    """The parser-argument part of a corpus datamodule (needs ``corpus``, ``root``, ``store``, ``task``)."""

    def hold_parser_args(self, given: Mapping[str, object]) -> None:
        """Hold the corpus parser's arguments among ``given`` (a corpus module's ``locals()`` in ``__init__``)
        as attributes of the same names: what :meth:`make_manifest` runs the parser with and a store records."""
        for name in self._parser_names() or ():
            if name in given:
                setattr(self, name, given[name])

    def make_manifest(self) -> tuple[pd.DataFrame, LoadReport]:
        """Parse the native release under ``self.root``: the corpus's ``make_<corpus>_manifest`` run with the
        parser arguments this module holds (the others keep the parser's defaults); a module whose
        ``corpus`` has no parser in ``affect.data.corpora`` implements this itself."""
        from affect.data.corpora import manifest_parser

        if self._parser_names() is None:
            raise NotImplementedError(f"{type(self).__name__} must implement make_manifest()")
        return manifest_parser(self.corpus)(self.root, **self._held_parser_args())

    def parser_args(self) -> dict | None:
        """The arguments this module's corpus parser (``make_<corpus>_manifest``) runs with, by name:
        its parameters that the module holds as attributes (JSON-normalised); None for a module
        whose ``corpus`` has no parser in ``affect.data.corpora``. ``task`` is left out: the
        module's task filter is applied to the store's table either way."""
        if self._parser_names() is None:
            return None
        return json.loads(json.dumps(self._held_parser_args(), default=str))

    def _parser_names(self) -> list[str] | None:
        """The parameters of ``make_<corpus>_manifest`` after ``root``; None when ``corpus`` has no parser."""
        from affect.data.corpora import corpus_slugs, manifest_parser

        if self.corpus not in corpus_slugs():
            return None
        return list(inspect.signature(manifest_parser(self.corpus)).parameters)[1:]

    def _held_parser_args(self) -> dict[str, object]:
        """The parser arguments this module holds as attributes (``task`` aside), by name."""
        return {k: getattr(self, k) for k in self._parser_names() or () if k != "task" and hasattr(self, k)}

    def check_store_parser_args(self, record: dict | None) -> None:
        """Refuse a store whose recorded parser arguments (``store.json`` "parser") differ from this
        module's: a one-line ``ValueError`` naming the first differing key and both fixes.

        A store without the record (written before it existed, or from ``--manifest``) is taken
        as built with the parser's defaults: accepted when this module uses them, refused otherwise.
        """
        mine = self.parser_args()
        if mine is None:
            return
        name = type(self).__name__
        redo = f"affect prepare {self.corpus} --root RAW --out NEW_STORE"
        if not record or record.get("args") is None:
            from affect.data.corpora import manifest_parser

            params = inspect.signature(manifest_parser(self.corpus)).parameters
            defaults = json.loads(json.dumps({k: params[k].default for k in mine}, default=str))
            for key, value in mine.items():
                if value != defaults[key]:
                    raise ConfigError(
                        f"{name}: the store {self.store} does not record the parser arguments it was built with "
                        f"(an older store, or one from --manifest), and this module has {key}={value!r} "
                        f"(parser default {defaults[key]!r}); re-run `{redo} --parser.{key} {_cli(value)}`"
                    )
            log.warning("%s: the store %s does not record its parser arguments; assuming the defaults", name, self.store)
            return
        if record.get("corpus") not in (None, self.corpus):
            raise ConfigError(f"{name}: the store {self.store} holds corpus {record['corpus']!r}, not {self.corpus!r}")
        stored = record["args"]
        for key, value in mine.items():
            if key in stored and stored[key] != value:
                raise ConfigError(
                    f"{name}: the store {self.store} was built with {key}={stored[key]!r} but this module has "
                    f"{key}={value!r}; set {key}: {stored[key]!r} or re-run `{redo} --parser.{key} {_cli(value)}`"
                )
        task = stored.get("task")
        if task not in (None, "all") and task != self.task:
            raise ConfigError(
                f"{name}: the store {self.store} was built with task={task!r} but this module has task={self.task!r}; "
                f"set task: {task!r} or re-run `{redo} --parser.task all`"
            )
