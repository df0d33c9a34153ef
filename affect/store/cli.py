"""The ``affect prepare`` command line (jsonargparse, like the rest of ``affect``: typed ``--help``, config files).

::

    affect prepare <corpus> --root RAW --out STORE [--parser.<arg> VALUE ...] [options]   # a corpus parser
    affect prepare csv --manifest M.csv --root RAW --out STORE [options]                 # your own manifest
    affect prepare merge STORE PART [PART ...]                                            # join --shard parts
    affect prepare <corpus> --config prepare.yaml                                          # options from a file

One subcommand per corpus of :mod:`affect.data.corpora`; its ``--parser.*`` options are the
arguments of the corpus's ``make_<corpus>_manifest``, bound from that function's signature and
docstring (``affect prepare bp4d --help`` lists them), and recorded in ``store.json`` so that a
datamodule with other split arguments refuses the store. Exit status 0 when done, 3 when
``--max-shards`` stopped the run early; a mistake in the input is one line, ``affect: error: ...``,
exit status 2 (through :func:`affect.cli.main`).
"""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from jsonargparse import ActionConfigFile, ArgumentParser

from affect.errors import AffectError, ConfigError, InputFileError, MissingInputError
from affect.face.detect import REFINE_PASSES, SELECT_MODES
from affect.store.format import DETECT_MODES

DESCRIPTION = "Detect, align and store face crops (+ audio) of a corpus for fast loading (paper Sec. IV)."


def _json(value: object) -> object:
    return json.loads(json.dumps(value, default=str))


def _prepare_parser(corpus: str | None) -> ArgumentParser:
    """The options of ``affect prepare <corpus>`` (``corpus`` None: ``affect prepare csv``)."""
    p = ArgumentParser(prog=f"affect prepare {corpus or 'csv'}", description=DESCRIPTION)
    p.add_argument("--config", action=ActionConfigFile, help="a YAML file of these options (keys as below, e.g. shard_size)")
    p.add_argument("--root", type=str, required=True, help="raw corpus folder (manifest paths are relative to it)")
    p.add_argument("--out", type=str, required=True,
                   help="store folder to create or resume: new, empty, or a store of the same job")
    p.add_argument("--manifest", type=str | None, default=None, required=corpus is None,
                   help="manifest CSV (columns of affect.data.manifest)" if corpus is None else
                   "a manifest CSV to use instead of the corpus parser (its arguments are then unknown)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (one shard each at a time)")
    p.add_argument("--shard-size", type=int, default=1024, help="manifest rows per shard (the unit of work and resume)")
    p.add_argument("--detect", nargs="?", const="always", default="auto", choices=DETECT_MODES,
                   help="auto: MTCNN for rows without landmarks; --detect (= always): MTCNN for every row, given "
                        "landmarks carried through; never (= --no-detect): given landmarks / boxes, else the image "
                        "resized as a face crop")
    p.add_argument("--no-detect", dest="detect", action="store_const", const="never", default="auto",
                   help="= --detect never")
    p.add_argument("--select", type=str, default="largest", choices=SELECT_MODES, help="which detected faces to keep")
    p.add_argument("--image-size", type=int, default=96, help="side of the square crops")
    p.add_argument("--device", type=str, default="cpu", help="MTCNN device (part of the job: cpu and cuda differ)")
    p.add_argument("--batch-size", type=int, default=16, help="images per MTCNN call")
    p.add_argument("--min-face-size", type=int, default=20, help="MTCNN's smallest face, px")
    p.add_argument("--refine-passes", type=int, default=REFINE_PASSES,
                   help="O-Net passes refining each detected face's points (affect.face.refine; 0: MTCNN's points)")
    p.add_argument("--audio", action="store_true", help="also store one spectrogram image per video frame")
    p.add_argument("--max-shards", type=int | None, default=None, help="stop after this many new shards (exit 3)")
    p.add_argument("--shard", type=str | None, default=None, metavar="I/N",
                   help="prepare only part I of N (whole videos) into --out; then `affect prepare merge`")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    if corpus is not None:
        from affect.data.corpora import manifest_parser

        p.add_function_arguments(manifest_parser(corpus), "parser", skip={"root"})
    return p


def _merge_parser() -> ArgumentParser:
    p = ArgumentParser(prog="affect prepare merge",
                       description="merge the parts of `affect prepare --shard I/N` into one store")
    p.add_argument("out", type=str, help="store folder to write (new, empty, or a store of the same job)")
    p.add_argument("parts", type=str, nargs="+", help="the N part folders (each made with --shard I/N)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def build_parser(command: str | None = None) -> ArgumentParser:
    """The whole ``affect prepare`` parser; only ``command``'s corpus module is imported (its parser's
    arguments bound), so that a run starts quickly: the other corpora are listed by name."""
    from affect.data.corpora import corpus_slugs, manifest_parser

    top = ArgumentParser(prog="affect prepare", description=DESCRIPTION,
                         epilog="affect prepare <subcommand> --help lists its options")
    sub = top.add_subcommands(dest="command", required=True)
    sub.add_subcommand("csv", _prepare_parser(None), help="a manifest CSV of your own (--manifest)")
    for slug in corpus_slugs():
        if slug == command:
            doc = (inspect.getdoc(manifest_parser(slug)) or slug).split("\n")[0]
            sub.add_subcommand(slug, _prepare_parser(slug), help=doc)
        else:
            sub.add_subcommand(slug, ArgumentParser(prog=f"affect prepare {slug}"),
                               help=f"the {slug} corpus (affect/data/corpora/{slug}.py)")
    sub.add_subcommand("merge", _merge_parser(), help="one store from the parts of --shard I/N runs")
    return top


def corpus_manifest(corpus: str, root: str, args: dict):
    """The manifest of corpus ``corpus`` under ``root`` and the record ``{"corpus", "args"}`` of every
    argument its parser ran with (defaults filled in, JSON-normalised). One-line errors name ``--root``."""
    from affect.data.corpora import manifest_parser

    if not Path(root).is_dir():
        raise MissingInputError(f"--root {root} is not a folder; point it at the {corpus} release folder")
    parser = manifest_parser(corpus)
    try:
        df, load_report = parser(root, **args)
    except AffectError:
        raise
    except (OSError, ValueError, KeyError, LookupError) as e:
        raise InputFileError(
            f"{corpus}: cannot read the corpus under --root {root} ({type(e).__name__}: {' '.join(str(e).split())}); "
            f"point --root at the {corpus} release folder in its native layout (data_cards/{corpus}.md)") from e
    print(load_report, file=sys.stderr)
    return df, {"corpus": corpus, "args": _json(args)}


def _defaults(corpus: str) -> dict:
    from affect.data.corpora import manifest_parser

    params = list(inspect.signature(manifest_parser(corpus)).parameters.values())[1:]
    return _json({p.name: p.default for p in params})


def run_prepare(corpus: str | None, args) -> int:
    from affect.store.manifest import read_manifest_csv
    from affect.store.parts import Part, format_part_report
    from affect.store.shard import PrepareOptions
    from affect.store.writer import IncompleteRun, format_report, prepare_store

    part = Part.parse(args.shard) if args.shard is not None else None
    given = getattr(args, "parser", None)  # absent when the parser takes nothing but the root
    parser_args = given.as_dict() if corpus is not None and given is not None else {}
    if args.manifest:
        changed = sorted(k for k, v in _json(parser_args).items() if v != _defaults(corpus).get(k)) if corpus else []
        if changed:
            raise ConfigError(f"--parser.{changed[0]} applies to the {corpus} parser, not to --manifest; drop one")
        df, record = read_manifest_csv(args.manifest), None  # a user's manifest: its arguments are unknown
    else:
        df, record = corpus_manifest(corpus, args.root, parser_args)
    opts = PrepareOptions(image_size=args.image_size, detect=args.detect, select=args.select, device=args.device,
                          batch_size=args.batch_size, min_face_size=args.min_face_size,
                          refine_passes=args.refine_passes, audio=args.audio)
    try:
        report = prepare_store(df, args.root, args.out, workers=args.workers, shard_size=args.shard_size,
                               options=opts, max_shards=args.max_shards, progress=not args.no_progress,
                               part=part, parser=record)
    except IncompleteRun as e:
        print(e, file=sys.stderr)
        return 3
    print(format_part_report(report, args.out) if part is not None else format_report(report))
    return 0


def run_merge(args) -> int:
    from affect.store.merge import merge_parts
    from affect.store.writer import format_report

    print(format_report(merge_parts(args.out, args.parts, progress=not args.no_progress)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``affect prepare <corpus> --root RAW --out STORE [...]`` / ``affect prepare merge STORE PART...``."""
    args = list(sys.argv[1:] if argv is None else argv)
    cfg = build_parser(args[0] if args else None).parse_args(args)
    command = cfg.command
    if command == "merge":
        return run_merge(cfg.merge)
    return run_prepare(None if command == "csv" else command, cfg[command])
