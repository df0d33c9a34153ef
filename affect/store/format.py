"""The on-disk format of a prepared store, its job and header records, and the commit protocol.

Layout of a store directory::

    job.json                   # the job (manifest digest, options, parser record); written first
    store.json                 # header, written last: a store without it is incomplete
    labels.csv                 # one row per stored face slot (manifest columns + store columns)
    report.json                # frames in, faces found, frames without a face, corrupt inputs
    shards/shard-00000.json    # per-shard header, renamed into place last (= shard committed)
    shards/shard-00000.u8      # uint8 [n, 3, S, S] crops, channel-first (a batch is one gather)
    shards/shard-00000.lmk     # float32 [n, 68, 2] landmarks in crop pixels, NaN = none
    shards/shard-00000.spec    # optional uint8 [n, 1, H, W] spectrogram images (A/V corpora)
    shards/shard-00000.csv     # the shard's rows of labels.csv

A part of a sharded run (``affect prepare --shard I/N``) has the same ``job.json`` (plus its
``part``), partial shards and, once complete, ``part.json`` instead of ``store.json``.

Store columns added to the manifest columns: ``row`` (global index = position in the
concatenated shards), ``src_row`` (manifest row), ``shard``, ``offset``, ``status``
("ok" | "no_face" | "corrupt"; non-"ok" slots hold a black image), ``face_index``,
``n_faces``, ``det_score`` (NaN when not detected), ``p5_x0, p5_y0 ... p5_x4, p5_y4``
(the 5 anchor points in the source image), ``has_landmarks``.
CSV (not parquet): pyarrow is not a dependency; the table is small next to the images.

Commit protocol: every file is written under a temporary name and renamed into place
(:func:`atomic_write`); a shard counts as committed when its header is present and each file it
lists has the listed size and sha256 (:func:`committed_shard`). This module imports neither torch
nor pandas: the writer's spawned workers start in about a second.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from affect.errors import InputFileError

STORE_FORMAT = "affect-store"
STORE_VERSION = 1
STATUSES = ("ok", "no_face", "corrupt")
P5_COLUMNS = tuple(f"p5_{a}{k}" for k in range(5) for a in ("x", "y"))
DETECT_MODES = ("auto", "always", "never")
BOX_COLUMNS = ("box_x", "box_y", "box_w", "box_h")
FLOAT_FORMAT = "%.7g"
JOB_FILE, HEADER_FILE, PART_FILE = "job.json", "store.json", "part.json"
#: The file kinds of a shard (``shard-00000.<kind>``); ``spec`` only in stores with audio.
SHARD_KINDS = ("u8", "lmk", "spec", "csv")


def shard_name(k: int) -> str:
    return f"shard-{k:05d}"


def job_record(manifest_sha256: str, n_rows: int, shard_size: int, options: dict, parser: dict | None,
               part: dict | None = None) -> dict:
    """``job.json``: what a store's content depends on. A resumed run, a part to merge and a merge output
    must hold the same record; ``parser`` (``{"corpus", "args"}`` or None for a user's manifest) is also
    copied into ``store.json``, where a datamodule checks it against its own split arguments."""
    job = {"format": STORE_FORMAT, "version": STORE_VERSION, "manifest_sha256": manifest_sha256,
           "n_manifest_rows": int(n_rows), "shard_size": int(shard_size), "options": dict(options),
           "parser": parser}
    if part is not None:
        job["part"] = part
    return job


def to_bytes(record: dict) -> bytes:
    """The canonical bytes of a JSON record (sorted keys: equal records give equal files)."""
    return json.dumps(record, indent=1, sort_keys=True).encode()


def read_json(path: Path, what: str) -> dict:
    """A JSON object from ``path``; a one-line :class:`InputFileError` naming ``what`` and the file otherwise."""
    try:
        value = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputFileError(f"{what}: {path} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputFileError(f"{what}: {path} is not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise InputFileError(f"{what}: {path} holds a {type(value).__name__}, not a JSON object")
    return value


def check_output_folder(out: Path, job_bytes: bytes, flag: str = "--out") -> None:
    """Refuse to write into ``out`` unless it is absent, empty, or holds a store (or part) of this very job.

    A folder of anything else (the raw corpus, another store, a part folder given as the merge output)
    would be written into or, for its ``labels.csv``, overwritten.
    """
    if not out.exists():
        return
    if not out.is_dir():
        raise InputFileError(f"{flag} {out} is a file, not a folder; give a new folder")
    if not any(out.iterdir()):
        return
    job = out / JOB_FILE
    if not job.is_file():
        raise InputFileError(
            f"{flag} {out} is a non-empty folder that is not a store (no {JOB_FILE}); give a new or empty folder "
            "(never the corpus root)")
    if job.read_bytes() != job_bytes:
        raise InputFileError(
            f"{out} holds a store of a different job (manifest, options, parser arguments or part changed; see "
            f"{job}); use a new {flag} folder or delete this one")


# --------------------------------------------------------------------------- commit protocol
def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary name + fsync + rename (a reader never sees half a file)."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def shard_file_names(k: int, listed) -> list[str]:
    """The file names a shard header lists, each checked to be one of shard ``k``'s own files
    (``shard-0000k.<kind>``): a header never makes us read or write a path outside its shard."""
    name = shard_name(k)
    allowed = {f"{name}.{kind}" for kind in SHARD_KINDS}
    names = list(listed)
    bad = [f for f in names if f not in allowed]
    if bad:
        raise InputFileError(f"{name}.json lists {bad[0]!r}, which is not one of this shard's files {sorted(allowed)}")
    return names


def committed_shard(sdir: Path, k: int, n_src_rows: int | None = None) -> dict | None:
    """Shard ``k``'s header if the shard is fully committed in ``sdir``: header present, every file of
    the listed size and sha256 (sizes first: cheap; then content); None otherwise."""
    try:
        h = json.loads((sdir / f"{shard_name(k)}.json").read_text())
        names = shard_file_names(k, h.get("files", {}))
        if set(names) != set(shard_file_names(k, h.get("sha256", {}))):
            return None
    except (OSError, ValueError, AttributeError):
        return None
    if n_src_rows is not None and h.get("n_src_rows") != n_src_rows:
        return None
    for f in names:
        p = sdir / f
        if not p.is_file() or p.stat().st_size != h["files"][f]:
            return None
    for f in names:
        if sha256_file(sdir / f) != h["sha256"][f]:
            return None
    return h
