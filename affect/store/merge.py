"""``affect prepare merge STORE PART...``: one store from the parts of ``affect prepare --shard I/N`` runs.

Every machine runs the same command with its own ``--shard i/N``::

    affect prepare affwild2 --root RAW --out parts/p0 --shard 0/2     # machine 0
    affect prepare affwild2 --root RAW --out parts/p1 --shard 1/2     # machine 1
    affect prepare merge stores/affwild2 parts/p0 parts/p1            # one machine, all parts readable

Before the output is touched, ``merge`` checks every part: one job (same manifest digest, options,
parser record and ``N``; each part given once, each complete), every partial shard committed (each
file it lists is one of that shard's own files inside the part, of the listed size and sha256) and
every store shard covered; the output must be new, empty, or a store of the same job. It then
interleaves the partial shards by manifest row and writes the store a one-machine run writes: the
same labels, crops, landmarks, spectrograms, shard headers, report and ``store.json`` (with the
parser record), byte for byte (tested on fixtures), provided each row's faces do not depend on
which other rows MTCNN saw in its batch (true on CPU in our tests).
"""

from __future__ import annotations

import hashlib
import io
import math
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from affect.errors import InputFileError
from affect.store.format import (
    JOB_FILE,
    PART_FILE,
    STATUSES,
    atomic_write,
    check_output_folder,
    read_json,
    sha256_file,
    shard_file_names,
    shard_name,
    to_bytes,
)
from affect.store.shard import PrepareOptions
from affect.store.writer import finalise


def read_parts(parts: Sequence[str | Path]) -> tuple[dict, list[tuple[Path, dict]]]:
    """Check the parts are the complete parts of one job; return the job and (folder, part.json) by index."""
    if not parts:
        raise InputFileError("give the part folders to merge")
    found: dict[int, tuple[Path, dict]] = {}
    job0, src0, count = None, None, 0
    for p in map(Path, parts):
        job = read_json(p / JOB_FILE, f"part folder {p}")
        spec = job.pop("part", None)
        if not isinstance(spec, dict):
            raise InputFileError(f"{p} is not a part of a sharded run (its job.json has no 'part'; make parts with "
                                 "--shard I/N)")
        if job0 is None:
            job0, src0, count = job, p, spec.get("count")
        elif job != job0:
            diff = sorted(k for k in set(job) | set(job0) if job.get(k) != job0.get(k))
            raise InputFileError(f"{p} and {src0} are parts of different jobs (they differ in {diff}); "
                                 "every part needs the same manifest, options, parser arguments and --shard-size")
        index = spec.get("index")
        if spec.get("count") != count or not isinstance(index, int) or not 0 <= index < count:
            raise InputFileError(f"{p} is part {index}/{spec.get('count')} but {src0} is one of {count} parts")
        if not (p / PART_FILE).is_file():
            raise InputFileError(f"{p} (part {index}/{count}) is incomplete: re-run its "
                                 f"`affect prepare ... --shard {index}/{count}` to finish it")
        if index in found:
            raise InputFileError(f"part {index}/{count} given twice: {found[index][0]} and {p}")
        found[index] = (p, read_json(p / PART_FILE, f"part {p}"))
    missing = sorted(set(range(count)) - set(found))
    if missing:
        raise InputFileError(f"parts {missing} of {count} are missing; give all {count} part folders")
    return job0, [found[i] for i in range(count)]


def check_parts(job: dict, found: list[tuple[Path, dict]]) -> dict[int, list[Path]]:
    """Every partial shard of every part committed and every store shard covered (nothing written yet);
    returns the part folders holding each store shard."""
    n_rows, size = int(job["n_manifest_rows"]), int(job["shard_size"])
    n_shards = math.ceil(n_rows / size)
    holders: dict[int, list[Path]] = {}
    src_rows: Counter = Counter()
    for folder, done in found:
        shards = done.get("shards")
        if not isinstance(shards, list) or not all(isinstance(k, int) and 0 <= k < n_shards for k in shards):
            raise InputFileError(f"{folder / PART_FILE}: 'shards' must list store shard numbers 0..{n_shards - 1}")
        sdir = folder / "shards"
        for k in shards:
            what = f"part {folder}, shard {shard_name(k)}"
            head = read_json(sdir / f"{shard_name(k)}.json", what)
            names = shard_file_names(k, head.get("sha256", {}))
            for fname in names:
                path = sdir / fname
                if not path.is_file():
                    raise InputFileError(f"{path} is missing; copy the part again or re-run it")
                if sha256_file(path) != head["sha256"][fname]:
                    raise InputFileError(f"{path} does not match its checksum in {shard_name(k)}.json "
                                         "(damaged or half-copied); copy the part again or re-run it")
            if f"{shard_name(k)}.csv" not in names:
                raise InputFileError(f"{sdir / shard_name(k)}.json lists no csv; re-run the part")
            holders.setdefault(k, []).append(folder)
            src_rows[k] += int(head.get("n_src_rows", -1))
    for k in range(n_shards):
        first = k * size
        want = min(size, n_rows - first)
        if k not in holders:
            raise InputFileError(f"no part holds store shard {k} (manifest rows {first}..); were the parts made with "
                                 "this --shard-size?")
        if src_rows[k] != want:
            raise InputFileError(f"shard {shard_name(k)}: the parts hold {src_rows[k]} of its {want} manifest rows")
    return holders


def _read_partial(folder: Path, k: int) -> tuple[dict, pd.DataFrame, dict[str, np.ndarray]]:
    """A committed partial shard: header, csv as text cells, and each binary file as [n, row_bytes]."""
    sdir = folder / "shards"
    head = read_json(sdir / f"{shard_name(k)}.json", f"part {folder}")
    data = {}
    for fname in shard_file_names(k, head["sha256"]):
        raw = (sdir / fname).read_bytes()
        if hashlib.sha256(raw).hexdigest() != head["sha256"][fname]:
            raise InputFileError(f"{sdir / fname} changed while merging (it no longer matches its checksum)")
        data[fname.rsplit(".", 1)[1]] = raw
    # text cells read back verbatim: the rewritten csv is byte-identical to a one-machine shard's
    table = pd.read_csv(io.BytesIO(data.pop("csv")), dtype=str, keep_default_na=False)
    n = head["n"]
    arrays = {ext: np.frombuffer(raw, np.uint8).reshape(n, -1) for ext, raw in data.items()}
    return head, table, arrays


def _merge_examples(pieces: list[tuple[dict, pd.DataFrame]]) -> dict[str, list[str]]:
    """Each reason's first 5 examples in manifest order (a status reason's i-th example is the i-th row of that status)."""
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
    name = shard_name(k)
    pieces = [_read_partial(f, k) for f in folders]
    table = pd.concat([t for _, t, _ in pieces], ignore_index=True)
    src = table["src_row"].astype(np.int64).to_numpy()
    order = np.argsort(src, kind="stable")  # a row's faces live in one part, in face order
    if sorted(set(src.tolist())) != list(range(first, first + n_src)):
        raise InputFileError(f"shard {name}: the parts do not cover manifest rows {first}..{first + n_src - 1} "
                             "exactly once")
    kinds = [set(a) for _, _, a in pieces]
    if any(s != kinds[0] for s in kinds):
        raise InputFileError(f"shard {name}: the parts hold different files ({[sorted(s) for s in kinds]})")
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
                raise InputFileError(f"shard {name}: header field {key!r} differs between parts; cannot merge it")
            header[key] = values[0]
    return header, files


def merge_parts(out: str | Path, parts: Sequence[str | Path], progress: bool = True) -> dict:
    """Write the store of the whole job at ``out`` from its ``--shard`` parts; returns the report.

    Re-running after an interruption rewrites everything (the parts are left untouched).
    """
    from tqdm import tqdm

    job, found = read_parts(parts)
    out = Path(out)
    holders = check_parts(job, found)
    job_bytes = to_bytes(job)
    check_output_folder(out, job_bytes, flag="the merge output")
    try:
        options = PrepareOptions(**job["options"])
    except TypeError as e:
        raise InputFileError(f"{found[0][0] / JOB_FILE}: options are not those of this affect ({e})") from None
    (out / "shards").mkdir(parents=True, exist_ok=True)
    (out / "store.json").unlink(missing_ok=True)  # the store is complete again only once store.json is back
    atomic_write(out / JOB_FILE, job_bytes)
    n_rows, size = int(job["n_manifest_rows"]), int(job["shard_size"])
    n_shards = math.ceil(n_rows / size)
    headers = {}
    for k in tqdm(range(n_shards), desc=f"merge -> {out.name}", unit="shard", disable=not progress, file=sys.stderr):
        first = k * size
        header, files = _merge_shard(k, holders[k], first, min(size, n_rows - first))
        for fname, data in files.items():
            atomic_write(out / "shards" / fname, data)
        atomic_write(out / "shards" / f"{header['name']}.json", to_bytes(header))
        headers[k] = header
    return finalise(out, headers, n_shards, options, job.get("parser"))
