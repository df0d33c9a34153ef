"""``affect prepare`` across machines: ``--shard I/N`` parts (whole videos) and ``affect prepare merge``.

A corpus too big for one machine is cut into ``N`` parts by *video*: every row of one video
(``corpus`` + ``video``; a still image is its own group) goes to the same part, so a machine
needs only its own videos' files and decodes each video in one place. Groups are assigned to
parts by frame count, largest first, each to the part with the fewest frames so far (ties: the
lower part number), which is deterministic given the manifest and keeps the parts within one
video of each other. Every machine runs the same command with its own ``--shard i/N``::

    affect prepare affwild2 --root RAW --out parts/p0 --shard 0/2     # machine 0
    affect prepare affwild2 --root RAW --out parts/p1 --shard 1/2     # machine 1
    affect prepare merge stores/affwild2 parts/p0 parts/p1            # one machine, all parts readable

A part keeps the one-machine run's work units: the store shard ``k`` (manifest rows
``k*shard_size ... (k+1)*shard_size - 1``) restricted to the part's rows, processed by the same
:func:`affect.prepare.process_shard` (so a part resumes like a store does). ``merge`` checks that
the parts are of one job (same manifest digest, options and ``N``; each complete, each file
matching its checksum), interleaves the partial shards by manifest row and writes the store a
one-machine run writes: the same labels, crops, landmarks, spectrograms, shard headers, report
and ``store.json``, byte for byte (tested on fixtures), provided each row's faces do not depend on
which other rows MTCNN saw in its batch (true on CPU in our tests; see the README).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

PART_FILE = "part.json"


def group_keys(df: pd.DataFrame) -> pd.Series:
    """The unit that is never split across parts: ``corpus/video`` for video frames, else the path."""
    video = df["video"].astype(str)
    return pd.Series(np.where(video != "", df["corpus"].astype(str) + "/" + video, "file:" + df["path"].astype(str)),
                     index=df.index)


def assign_parts(df: pd.DataFrame, count: int) -> np.ndarray:
    """Part number of every manifest row: whole groups, largest first to the least-loaded part.

    >>> df = pd.DataFrame({"corpus": "c", "video": ["a"] * 3 + ["b"] * 2 + ["c"] * 2, "path": "x"})
    >>> assign_parts(df, 2).tolist()
    [0, 0, 0, 1, 1, 1, 1]
    """
    if count < 1:
        raise ValueError(f"the number of parts must be >= 1; got {count}")
    keys = group_keys(df)
    sizes = keys.value_counts()
    order = sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))  # by size, then by name: deterministic
    load = [0] * count
    part_of: dict[str, int] = {}
    for key, n in order:
        p = min(range(count), key=lambda i: (load[i], i))
        part_of[key] = p
        load[p] += int(n)
    return keys.map(part_of).to_numpy(np.int64)


@dataclass(frozen=True)
class Part:
    """Part ``index`` of ``count`` (``--shard index/count``)."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Part:
        """``"0/4"`` -> ``Part(0, 4)``; a clear error otherwise (argparse shows it)."""
        try:
            i, n = (int(v) for v in str(text).split("/"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"--shard takes I/N (part I of N, 0 <= I < N), e.g. 0/4; got {text!r}") from None
        if not 0 <= i < n:
            raise argparse.ArgumentTypeError(f"--shard {text}: need 0 <= I < N")
        return cls(i, n)

    def spec(self) -> dict:
        return {"index": self.index, "count": self.count, "group_by": "corpus/video, else path"}

    def select(self, df: pd.DataFrame, chunks: dict[int, pd.DataFrame]) -> dict[int, pd.DataFrame]:
        """The one-machine run's shards restricted to this part's rows (empty ones dropped)."""
        mine = assign_parts(df, self.count) == self.index  # by position = the "src_row" column
        out = {k: rows[mine[rows["src_row"].to_numpy()]] for k, rows in chunks.items()}
        return {k: rows for k, rows in out.items() if len(rows)}

    def finish(self, out: Path, headers: dict[int, dict]) -> dict:
        """Mark the part complete (``part.json``, written last) and return its counts."""
        from affect.prepare import _atomic_write

        counts: Counter = Counter()
        for h in headers.values():
            counts.update(h["counts"])
        report = {"part": self.spec(), "shards": sorted(headers), "counts": dict(sorted(counts.items()))}
        _atomic_write(out / PART_FILE, json.dumps(report, indent=1, sort_keys=True).encode())
        return report


def format_part_report(report: dict, out: str) -> str:
    p = report["part"]
    c = report["counts"]
    return (f"part {p['index']}/{p['count']} complete in {out}: {len(report['shards'])} partial shards, "
            f"{c.get('frames_in', 0)} frames in, {c.get('faces', 0)} faces, {c.get('no_face', 0)} without a face, "
            f"{c.get('corrupt', 0)} corrupt\nmerge all parts with: affect prepare merge STORE PART_0 ... PART_{p['count'] - 1}")


# --------------------------------------------------------------------------- merge
def _read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{what}: {path} is missing") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{what}: {path} is not valid JSON ({e})") from None


def _read_parts(parts: Sequence[str | Path]) -> tuple[dict, list[tuple[Path, dict]]]:
    """Check the parts are the complete parts of one job; return the job and (folder, part.json) by index."""
    if not parts:
        raise ValueError("give the part folders to merge")
    found: dict[int, tuple[Path, dict]] = {}
    job0, src0, count = None, None, 0
    for p in map(Path, parts):
        job = _read_json(p / "job.json", f"part folder {p}")
        spec = job.pop("part", None)
        if spec is None:
            raise ValueError(f"{p} is not a part of a sharded run (its job.json has no 'part'; make parts with --shard I/N)")
        if job0 is None:
            job0, src0, count = job, p, spec["count"]
        elif job != job0:
            diff = sorted(k for k in set(job) | set(job0) if job.get(k) != job0.get(k))
            raise ValueError(f"{p} and {src0} are parts of different jobs (they differ in {diff}); "
                             "every part needs the same manifest, options and --shard-size")
        if spec["count"] != count:
            raise ValueError(f"{p} is part {spec['index']}/{spec['count']} but {src0} is one of {count} parts")
        if not (p / PART_FILE).is_file():
            raise ValueError(f"{p} (part {spec['index']}/{spec['count']}) is incomplete: re-run its "
                             f"`affect prepare ... --shard {spec['index']}/{spec['count']}` to finish it")
        if spec["index"] in found:
            raise ValueError(f"part {spec['index']}/{spec['count']} given twice: {found[spec['index']][0]} and {p}")
        found[spec["index"]] = (p, _read_json(p / PART_FILE, f"part {p}"))
    missing = sorted(set(range(count)) - set(found))
    if missing:
        raise ValueError(f"parts {missing} of {count} are missing; give all {count} part folders")
    return job0, [found[i] for i in range(count)]


def _read_partial(folder: Path, k: int) -> tuple[dict, pd.DataFrame, dict[str, np.ndarray]]:
    """A committed partial shard: header, csv as text cells, and each binary file as [n, row_bytes]."""
    from affect.prepare import shard_name

    sdir = folder / "shards"
    head = _read_json(sdir / f"{shard_name(k)}.json", f"part {folder}")
    data = {}
    for fname, sha in head["sha256"].items():
        raw = (sdir / fname).read_bytes()
        if hashlib.sha256(raw).hexdigest() != sha:
            raise ValueError(f"{sdir / fname} does not match its checksum in {shard_name(k)}.json "
                             "(damaged or half-copied); copy the part again or re-run it")
        data[fname.rsplit(".", 1)[1]] = raw
    # text cells read back verbatim: the rewritten csv is byte-identical to a one-machine shard's
    table = pd.read_csv(io.BytesIO(data.pop("csv")), dtype=str, keep_default_na=False)
    n = head["n"]
    arrays = {ext: np.frombuffer(raw, np.uint8).reshape(n, -1) for ext, raw in data.items()}
    return head, table, arrays


def _merge_examples(pieces: list[tuple[dict, pd.DataFrame]]) -> dict[str, list[str]]:
    """Each reason's first 5 examples in manifest order (a status reason's i-th example is the i-th row of that status)."""
    from affect.prepare import STATUSES

    out: dict[str, list[tuple[int, int, str]]] = {}
    for j, (head, table) in enumerate(pieces):
        for reason, texts in head.get("examples", {}).items():
            if reason in STATUSES:
                src = table.loc[table["status"] == reason, "src_row"].astype(np.int64).tolist()[: len(texts)]
            else:  # not tied to a row: keep the part order
                src = [np.iinfo(np.int64).max] * len(texts)
            out.setdefault(reason, []).extend((s, j, t) for s, t in zip(src, texts, strict=True))
    return {r: [t for _, _, t in sorted(ex)[:5]] for r, ex in out.items()}


def _merge_shard(k: int, folders: list[Path], first: int, n_src: int) -> tuple[dict, dict[str, bytes]]:
    from affect.prepare import shard_name

    name = shard_name(k)
    pieces = [_read_partial(f, k) for f in folders]
    tables = [t for _, t, _ in pieces]
    table = pd.concat(tables, ignore_index=True)
    src = table["src_row"].astype(np.int64).to_numpy()
    order = np.argsort(src, kind="stable")  # a row's faces live in one part, in face order
    if sorted(set(src.tolist())) != list(range(first, first + n_src)) or sum(h["n_src_rows"] for h, _, _ in pieces) != n_src:
        raise ValueError(f"shard {name}: the parts do not cover manifest rows {first}..{first + n_src - 1} exactly once")
    files = {f"{name}.csv": table.iloc[order].to_csv(index=False).encode()}
    for ext in pieces[0][2]:
        files[f"{name}.{ext}"] = np.concatenate([a[ext] for _, _, a in pieces])[order].tobytes()
    counts: Counter = Counter()
    for h, _, _ in pieces:
        counts.update(h["counts"])
    header = {
        "name": name, "index": k, "n": len(table), "first_src_row": first, "n_src_rows": n_src,
        "files": {f: len(d) for f, d in files.items()},
        "sha256": {f: hashlib.sha256(d).hexdigest() for f, d in files.items()},
        "counts": dict(sorted(counts.items())), "examples": _merge_examples([(h, t) for h, t, _ in pieces]),
    }
    for key in pieces[0][0]:  # anything else a shard header carries must agree between the parts
        if key not in header:
            values = [h.get(key) for h, _, _ in pieces]
            if any(v != values[0] for v in values):
                raise ValueError(f"shard {name}: header field {key!r} differs between parts; cannot merge it")
            header[key] = values[0]
    return header, files


def merge_parts(out: str | Path, parts: Sequence[str | Path], progress: bool = True) -> dict:
    """Write the store of the whole job at ``out`` from its ``--shard`` parts; returns the report.

    Re-running after an interruption rewrites everything (the parts are left untouched).
    """
    from tqdm import tqdm

    from affect.prepare import PrepareOptions, _atomic_write, _finalise

    job, found = _read_parts(parts)
    out = Path(out)
    job_bytes = json.dumps(job, indent=1, sort_keys=True).encode()
    if (out / "job.json").exists() and (out / "job.json").read_bytes() != job_bytes:
        raise ValueError(f"{out} holds a store of a different job; use a new output folder")
    (out / "shards").mkdir(parents=True, exist_ok=True)
    (out / "store.json").unlink(missing_ok=True)  # the store is complete again only once store.json is back
    _atomic_write(out / "job.json", job_bytes)
    n_rows, size = int(job["n_manifest_rows"]), int(job["shard_size"])
    n_shards = math.ceil(n_rows / size)
    holders: dict[int, list[Path]] = {}
    for folder, done in found:
        for k in done["shards"]:
            holders.setdefault(int(k), []).append(folder)
    headers = {}
    for k in tqdm(range(n_shards), desc=f"merge -> {out.name}", unit="shard", disable=not progress, file=sys.stderr):
        if k not in holders:
            raise ValueError(f"no part holds store shard {k} (manifest rows {k * size}..); were the parts made with this --shard-size?")
        first = k * size
        header, files = _merge_shard(k, holders[k], first, min(size, n_rows - first))
        for fname, data in files.items():
            _atomic_write(out / "shards" / fname, data)
        _atomic_write(out / "shards" / f"{header['name']}.json", json.dumps(header, indent=1, sort_keys=True).encode())
        headers[k] = header
    return _finalise(out, headers, n_shards, PrepareOptions(**job["options"]), None)


def merge_main(argv: Sequence[str] | None = None) -> int:
    """``affect prepare merge STORE PART [PART ...]``."""
    from affect.prepare import format_report

    p = argparse.ArgumentParser(prog="affect prepare merge",
                                description="merge the parts of `affect prepare --shard I/N` into one store")
    p.add_argument("out", help="store folder to write (a one-machine run's store, byte for byte)")
    p.add_argument("parts", nargs="+", help="the N part folders (each made with --shard I/N)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    report = merge_parts(args.out, args.parts, progress=not args.no_progress)
    print(format_report(report))
    return 0
