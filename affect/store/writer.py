"""What ``affect prepare`` runs: manifest -> detected, aligned 96x96x3 crops in a memory-mapped store (paper Sec. IV).

Runs once per corpus. For every manifest row (an image file, or frame ``frame`` of a video file)
:mod:`affect.store.shard` obtains the face(s) with :mod:`affect.face`; the layout written is
:mod:`affect.store.format`'s.

Work is cut into shards of ``shard_size`` consecutive manifest rows; each shard is one task for
the worker pool and is committed atomically (data files are written under a temporary name and
renamed, the shard's json header is renamed into place last). A re-run skips committed shards and
deletes leftovers, so a run that is killed at any point and re-run ends with a store
byte-identical to an uninterrupted one. ``--out`` must be a new or empty folder, or a store of the
same job (``job.json``): anything else is refused before a file is written.

Workers are spawned processes (``workers > 1``): call :func:`prepare_store` from under
``if __name__ == "__main__":`` in scripts. On CPU each worker runs torch with one thread
(MTCNN is several times slower when threads outnumber free cores). The device is part of
the job: a store is resumed byte-identically only with the same options (checked in
``job.json``; CUDA and CPU MTCNN differ by up to ~2 px in the landmarks). A watchdog thread in
every worker ends it when the parent process dies.

Nothing is dropped silently: every manifest row yields at least one labels row, whose
``status`` is "ok", "no_face" or "corrupt"; the report (printed and ``report.json``) counts
frames in, faces found, frames without a face and corrupt inputs, with examples.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import pandas as pd

from affect.data.manifest import AU_COLUMNS, MANIFEST_COLUMNS, validate_manifest
from affect.errors import ConfigError, InputFileError
from affect.store.format import (
    FLOAT_FORMAT,
    HEADER_FILE,
    JOB_FILE,
    STORE_FORMAT,
    STORE_VERSION,
    atomic_write,
    check_output_folder,
    committed_shard,
    job_record,
    to_bytes,
)
from affect.store.manifest import manifest_digest
from affect.store.shard import MAX_EXAMPLES, PrepareOptions, process_shard

__all__ = ["IncompleteRun", "PrepareOptions", "finalise", "format_report", "prepare_store"]


class IncompleteRun(RuntimeError):
    """Raised by :func:`prepare_store` when ``max_shards`` stopped it before the end."""


def _worker_init(parent: int | None = None) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if parent is not None:
        _exit_with_parent(parent)


def _exit_with_parent(parent: int, period_s: float = 0.5) -> None:
    """Make this (worker) process exit once ``parent`` is gone (a killed ``affect prepare`` would otherwise
    leave its workers, and the resource tracker they keep alive, blocked forever under pid 1).

    A daemon thread polls the parent pid: portable, and unlike ``PR_SET_PDEATHSIG`` it does not depend
    on which thread of the parent spawned the worker.
    """
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(period_s)
        os._exit(70)  # EX_SOFTWARE: the parent died; the shard in progress is left uncommitted

    threading.Thread(target=watch, name="affect-exit-with-parent", daemon=True).start()


def prepare_store(
    manifest: pd.DataFrame,
    root: str | Path,
    out: str | Path,
    workers: int = 1,
    shard_size: int = 1024,
    options: PrepareOptions | None = None,
    max_shards: int | None = None,
    progress: bool = True,
    part=None,
    parser: dict | None = None,
) -> dict:
    """Build (or resume) the store at ``out`` from ``manifest`` whose paths are relative to ``root``.

    ``parser`` (``{"corpus": slug, "args": {...}}``, the corpus parser's arguments as ``affect prepare``
    binds them) is part of the job and recorded in ``store.json``, so that a datamodule can refuse a
    store built with other split arguments.

    ``max_shards`` processes at most that many new shards and raises :class:`IncompleteRun`
    (re-run to continue). Returns the report dict (also in ``out/report.json``).
    ``part`` (:class:`affect.store.parts.Part`, ``--shard I/N``) prepares only that part's
    videos into a part folder, for ``affect prepare merge``; it returns the part's counts.
    """
    from tqdm import tqdm

    opts = options or PrepareOptions()
    opts.check()
    if shard_size < 1:
        raise ConfigError(f"--shard-size must be >= 1; got {shard_size}")
    if workers < 1:
        raise ConfigError(f"--workers must be >= 1; got {workers}")
    if max_shards is not None and max_shards < 1:
        raise ConfigError(f"--max-shards must be >= 1; got {max_shards}")
    df = validate_manifest(manifest)
    df.insert(0, "src_row", np.arange(len(df), dtype=np.int64))
    if len(df) == 0:
        raise InputFileError("the manifest is empty: nothing to prepare (check --root, --manifest or the parser "
                             "arguments)")
    out, root = Path(out), Path(root)
    job = job_record(manifest_digest(df), len(df), shard_size, opts.__dict__, parser,
                     None if part is None else part.spec())
    job_bytes = to_bytes(job)
    check_output_folder(out, job_bytes)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / JOB_FILE).exists():
        atomic_write(out / JOB_FILE, job_bytes)
    sdir = out / "shards"
    sdir.mkdir(exist_ok=True)
    for leftover in sdir.glob("*.tmp-*"):  # half-written files of a killed run: never read
        leftover.unlink(missing_ok=True)

    n_shards = (len(df) + shard_size - 1) // shard_size
    chunks = {k: df.iloc[k * shard_size : (k + 1) * shard_size] for k in range(n_shards)}
    if part is not None:
        chunks = part.select(df, chunks)
    headers: dict[int, dict] = {}
    for k, rows in chunks.items():
        h = committed_shard(sdir, k, len(rows))
        if h is not None:
            headers[k] = h
    todo = [k for k in chunks if k not in headers]
    limit = len(todo) if max_shards is None else min(max_shards, len(todo))
    bar = tqdm(total=sum(map(len, chunks.values())), initial=sum(len(chunks[k]) for k in headers), unit="frame",
               desc=f"prepare -> {out.name}", disable=not progress, file=sys.stderr)
    run = todo[:limit]
    if workers <= 1:
        for k in run:
            headers[k] = process_shard(k, chunks[k], str(root), str(out), opts)
            bar.update(len(chunks[k]))
    else:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                                 initargs=(os.getpid(),)) as pool:
            futs = {pool.submit(process_shard, k, chunks[k], str(root), str(out), opts): k for k in run}
            for fut in as_completed(futs):
                k = futs[fut]
                headers[k] = fut.result()
                bar.update(len(chunks[k]))
    bar.close()
    if len(headers) < len(chunks):
        raise IncompleteRun(f"{len(headers)}/{len(chunks)} shards done in {out}; re-run to continue")
    if part is not None:
        return part.finish(out, headers)
    return finalise(out, headers, n_shards, opts, parser)


def finalise(out: Path, headers: dict[int, dict], n_shards: int, opts: PrepareOptions,
             parser: dict | None = None) -> dict:
    """Write ``labels.csv``, ``report.json`` and, last, ``store.json`` from the committed shards."""
    sdir = out / "shards"
    tables, offset = [], 0
    counts: Counter = Counter()
    examples: dict[str, list[str]] = {}
    for k in range(n_shards):
        h = headers[k]
        t = pd.read_csv(sdir / f"{h['name']}.csv", keep_default_na=False, na_values=[""],
                        dtype={"path": str, "subject": str, "video": str})
        if len(t) != h["n"]:
            raise InputFileError(f"shard {h['name']}: csv has {len(t)} rows, header says {h['n']}")
        t.insert(0, "row", np.arange(offset, offset + len(t), dtype=np.int64))
        t.insert(1, "shard", k)
        t.insert(2, "offset", np.arange(len(t), dtype=np.int64))
        offset += len(t)
        tables.append(t)
        counts.update(h["counts"])
        for r, ex in h["examples"].items():
            examples.setdefault(r, [])
            examples[r].extend(ex[: max(0, MAX_EXAMPLES - len(examples[r]))])
    labels = pd.concat(tables, ignore_index=True)
    for col in ("subject", "video"):
        labels[col] = labels[col].fillna("").astype(str)
    front = ["row", "shard", "offset", "src_row", *MANIFEST_COLUMNS]
    rest = [c for c in labels.columns if c not in front]
    labels = labels[front + rest]
    atomic_write(out / "labels.csv", labels.to_csv(index=False, float_format=FLOAT_FORMAT).encode())
    counts_ = {k: int(counts.get(k, 0)) for k in ("frames_in", "faces", "no_face", "corrupt")}
    counts_.update({k: int(v) for k, v in sorted(counts.items()) if k not in counts_})
    ok = labels["status"] == "ok"
    report = {
        **counts_,
        "frames_with_face": counts_["frames_in"] - counts_["no_face"] - counts_["corrupt"],
        "stored_rows": int(len(labels)), "usable_rows": int(ok.sum()),
        "examples": examples,
        "per_split": {s: int(n) for s, n in labels.loc[ok, "split"].value_counts().sort_index().items()},
    }
    atomic_write(out / "report.json", to_bytes(report))
    header = {
        "format": STORE_FORMAT, "version": STORE_VERSION, "image_size": opts.image_size,
        "image_layout": "NCHW uint8 RGB", "landmarks_layout": "N x 68 x 2 float32, crop pixels, NaN = none",
        "n_rows": int(len(labels)), "audio": ({"height": opts.audio_height, "width": opts.audio_width,
                                               "context_s": opts.audio_context_s} if opts.audio else None),
        "shards": [{"name": headers[k]["name"], "n": headers[k]["n"], "sha256": headers[k]["sha256"]}
                   for k in range(n_shards)],
        "labels_columns": list(labels.columns), "au_columns": list(AU_COLUMNS),
        "parser": parser,
    }
    atomic_write(out / HEADER_FILE, to_bytes(header))
    return report


def format_report(report: dict) -> str:
    lines = [
        f"frames in:            {report['frames_in']}",
        f"faces found:          {report['faces']}",
        f"frames without face:  {report['no_face']}",
        f"corrupt inputs:       {report['corrupt']}",
        f"usable rows:          {report['usable_rows']} {report['per_split']}",
    ]
    for k in ("too_small", "whole_image", "audio_no_source", "audio_unreadable", "audio_frame_out_of_range"):
        if report.get(k):
            lines.append(f"{k.replace('_', ' ')}: {report[k]}")
    for reason, ex in report.get("examples", {}).items():
        if ex:
            lines.append(f"  e.g. {reason}: {'; '.join(ex[:3])}")
    return "\n".join(lines)
