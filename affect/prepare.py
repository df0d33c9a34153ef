"""``affect prepare``: manifest -> detected, aligned 96x96x3 crops in a memory-mapped store (paper Sec. IV).

Runs once per corpus. For every manifest row (an image file, or frame ``frame`` of a video
file) it obtains the face(s) with :mod:`affect.face` and writes the store described in
:mod:`affect.data.store`.

How the face of a row is found (``detect``):

- ``"auto"`` (default): rows with ``landmarks`` (iBUG 68) are aligned from them; the others
  are detected with MTCNN;
- ``"always"`` (``--detect``): MTCNN for every row; given 68 landmarks are still carried
  through the detection-based transform;
- ``"never"`` (``--no-detect``): rows with landmarks are aligned from them, rows with a box
  ``box_x, box_y, box_w, box_h`` are cropped to it, the rest are taken as already-cropped
  faces and only resized (FER2013, RAF-DB aligned).

Work is cut into shards of ``shard_size`` consecutive manifest rows; each shard is one task
for the worker pool and is committed atomically (data files are written under a temporary
name and renamed, the shard's json header is renamed into place last). A re-run skips
committed shards and deletes leftovers, so a run that is killed at any point and re-run ends
with a store byte-identical to an uninterrupted one (each shard's content depends only on
its own rows and the options, never on timing or on the number of workers).

Video rows: ``path`` is a video file and ``frame`` the 0-based index of the decoded frame
(consecutive rows of one video are decoded in one pass). With ``--audio`` each row also gets
the spectrogram image of that frame (:mod:`affect.data.audio`) from the video in the optional
``audio_path`` column (frame index ``audio_frame``, 0-based, when given; corpora with frame
folders such as Aff-Wild2 fill both), or from ``path`` itself when it is a video. Rows without
an audio source get silence, counted as ``audio_no_source`` in the report.

Workers are spawned processes (``workers > 1``): call :func:`prepare_store` from under
``if __name__ == "__main__":`` in scripts. On CPU each worker runs torch with one thread
(MTCNN is several times slower when threads outnumber free cores). The device is part of
the job: a store is resumed byte-identically only with the same options (checked in
``job.json``; CUDA and CPU MTCNN differ by up to ~2 px in the landmarks).

Nothing is dropped silently: every manifest row yields at least one labels row, whose
``status`` is "ok", "no_face" or "corrupt"; the report (printed and ``report.json``) counts
frames in, faces found, frames without a face and corrupt inputs, with examples.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from affect.data.manifest import AU_COLUMNS, MANIFEST_COLUMNS, validate_manifest
from affect.errors import ConfigError
from affect.face.align import align_face, resize_crop
from affect.face.detect import SELECT_MODES, too_small
from affect.face.pipeline import (
    AlignedFace,
    CorruptInputError,
    crop_only,
    detect_faces,
    faces_from_landmarks,
    is_video,
    is_whole_image,
    iter_video_frames,
    load_image,
)
from affect.prepare_shard import Part, format_part_report, merge_main

STORE_FORMAT = "affect-store"
STORE_VERSION = 1
STATUSES = ("ok", "no_face", "corrupt")
P5_COLUMNS = tuple(f"p5_{a}{k}" for k in range(5) for a in ("x", "y"))
DETECT_MODES = ("auto", "always", "never")
BOX_COLUMNS = ("box_x", "box_y", "box_w", "box_h")
FLOAT_FORMAT = "%.7g"


def shard_name(k: int) -> str:
    return f"shard-{k:05d}"


class IncompleteRun(RuntimeError):
    """Raised by :func:`prepare_store` when ``max_shards`` stopped it before the end."""


@dataclass(frozen=True)
class PrepareOptions:
    image_size: int = 96
    detect: str = "auto"
    select: str = "largest"
    device: str = "cpu"
    batch_size: int = 16
    min_face_size: int = 20
    audio: bool = False
    audio_height: int = 96
    audio_width: int = 96
    audio_context_s: float = 0.3

    def check(self) -> None:
        """Every option is checked here, before ``job.json`` is written (a bad value never starts a job)."""
        if self.detect not in DETECT_MODES:
            raise ConfigError(f"detect must be one of {DETECT_MODES}; got {self.detect!r}")
        if self.select not in SELECT_MODES:
            raise ConfigError(f"--select must be one of {SELECT_MODES}; got {self.select!r}")
        for name, least in (("image_size", 8), ("batch_size", 1), ("min_face_size", 1),
                            ("audio_height", 1), ("audio_width", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < least:
                raise ConfigError(f"--{name.replace('_', '-')} must be an integer >= {least}; got {value!r}")
        if not self.audio_context_s > 0:
            raise ConfigError(f"audio_context_s must be > 0; got {self.audio_context_s!r}")


# --------------------------------------------------------------------------- manifest I/O
def parse_landmarks(value: object) -> np.ndarray | None:
    """A ``landmarks`` cell -> float32 [68, 2] or None (arrays, or 136 numbers split by ';', ',' or spaces).

    >>> parse_landmarks(";".join(["1"] * 136)).shape
    (68, 2)
    >>> parse_landmarks(float("nan")) is None
    True
    """
    if value is None or (isinstance(value, float) and np.isnan(value)) or (isinstance(value, str) and not value):
        return None
    if isinstance(value, str):
        arr = np.array(value.replace(";", " ").replace(",", " ").split(), dtype=np.float32)
    else:
        arr = np.asarray(value, dtype=np.float32)
    if arr.size != 136:
        raise ValueError(f"landmarks must hold 68 (x, y) points = 136 numbers; got {arr.size}")
    return arr.reshape(68, 2)


def read_manifest_csv(path: str | Path) -> pd.DataFrame:
    df = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={"path": str, "subject": str, "video": str})
    for col in ("subject", "video"):
        if col in df.columns:
            df[col] = df[col].fillna("").astype(str)
    return validate_manifest(df)


def manifest_digest(df: pd.DataFrame) -> str:
    """A content hash of the manifest (identifies the job; a resumed run must see the same one)."""
    h = hashlib.sha256()
    cols = [c for c in df.columns if c != "landmarks"]
    h.update(df[cols].to_csv(index=False, float_format=FLOAT_FORMAT).encode())
    if "landmarks" in df.columns:
        for v in df["landmarks"]:
            lm = parse_landmarks(v)
            h.update(b"-" if lm is None else lm.tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------- per-shard work
_DETECTOR = None


def _detector(opts: PrepareOptions):
    global _DETECTOR
    if _DETECTOR is None:
        import torch

        from affect.face.detect import FaceDetector

        if opts.device == "cpu":
            torch.set_num_threads(1)  # one process per core; also makes results independent of load
        _DETECTOR = FaceDetector(device=opts.device, min_face_size=opts.min_face_size, batch_size=opts.batch_size)
    return _DETECTOR


def _row_faces(img: np.ndarray, row: dict, opts: PrepareOptions, detected: list | None) -> list[AlignedFace]:
    lm = parse_landmarks(row.get("landmarks"))
    if detected is not None:  # detection path: faces already selected by detect_faces
        out = []
        for f in detected:
            crop, _, lm_c = align_face(img, points5=f.points, size=opts.image_size, landmarks68=lm)
            source = "whole_image" if is_whole_image(f) else "detected"
            out.append(AlignedFace(crop=crop, score=f.score, points5=f.points, landmarks68=lm_c, source=source))
        return out
    if lm is not None:
        return [faces_from_landmarks(img, landmarks68=lm, size=opts.image_size)]
    box = [row[c] for c in BOX_COLUMNS] if all(c in row for c in BOX_COLUMNS) else None
    if box is not None and all(np.isfinite(np.asarray(box, dtype=float))) and box[2] > 0 and box[3] > 0:
        h, w = img.shape[:2]
        x0, y0 = max(int(round(box[0])), 0), max(int(round(box[1])), 0)
        x1, y1 = min(int(round(box[0] + box[2])), w), min(int(round(box[1] + box[3])), h)
        if x1 > x0 and y1 > y0:
            nan5 = np.full((5, 2), np.nan, np.float32)
            return [AlignedFace(crop=resize_crop(img[y0:y1, x0:x1], opts.image_size), score=float("nan"), points5=nan5)]
    return [crop_only(img, opts.image_size)]


def _needs_detection(row: dict, opts: PrepareOptions) -> bool:
    if opts.detect == "always":
        return True
    if opts.detect == "never":
        return False
    return parse_landmarks(row.get("landmarks")) is None


def _iter_rows(rows: list[dict], root: Path):
    """Yield ``(index, RGB image or CorruptInputError)`` in row order, streaming video frames.

    Consecutive rows of one video share a decoder pass while their frame numbers increase.
    """
    decoder, dec_path, cur = None, None, (-1, None)
    for i, row in enumerate(rows):
        p = root / row["path"]
        if not is_video(p):
            try:
                yield i, load_image(p)
            except CorruptInputError as e:
                yield i, e
            continue
        want = int(row["frame"])
        if decoder is None or dec_path != p or want < cur[0]:
            decoder, dec_path, cur = iter_video_frames(p), p, (-1, None)
        try:
            while cur[0] < want:
                cur = next(decoder)
            yield i, cur[1]
        except StopIteration:
            decoder = None
            yield i, CorruptInputError(f"video {str(p)!r} has no frame {want}")
        except CorruptInputError as e:
            decoder = None
            yield i, e


def _audio_images(rows: pd.DataFrame, root: Path, opts: PrepareOptions, counts: Counter) -> np.ndarray:
    from affect.data.audio import to_uint8, video_spectrogram_frames

    out = np.zeros((len(rows), 1, opts.audio_height, opts.audio_width), np.uint8)  # 0 == -1 == silence
    src = rows["audio_path"] if "audio_path" in rows.columns else rows["path"]
    frames = rows["audio_frame"] if "audio_frame" in rows.columns else rows["frame"]
    cache: dict[str, np.ndarray | None] = {}
    for j, (path, frame) in enumerate(zip(src, frames, strict=True)):
        if not isinstance(path, str) or not path or not is_video(path):
            counts["audio_no_source"] += 1  # stored as silence, and said in the report
            continue
        if path not in cache:
            try:
                cache[path] = to_uint8(video_spectrogram_frames(
                    root / path, opts.audio_height, opts.audio_width, opts.audio_context_s))
            except (CorruptInputError, ValueError):
                cache[path] = None
                counts["audio_unreadable"] += 1
        spec = cache[path]
        if spec is not None and 0 <= frame < len(spec):
            out[j] = spec[frame]
        elif spec is not None:
            counts["audio_frame_out_of_range"] += 1
    return out


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def process_shard(k: int, rows: pd.DataFrame, root: str, out: str, opts: PrepareOptions) -> dict:
    """Process manifest rows of shard ``k`` and commit the shard's files; returns its header."""
    root_p, sdir = Path(root), Path(out) / "shards"
    S = opts.image_size
    crops, lmks, records, src_pos = [], [], [], []
    counts: Counter = Counter()
    examples: dict[str, list[str]] = {}
    nan_lmk = np.full((68, 2), np.nan, np.float32)
    recs = rows.to_dict("records")  # plain dicts: pandas row access costs ~20x more per field
    columns = [c for c in rows.columns if c not in ("landmarks", "audio_path", "audio_frame")]

    def note(reason: str, text: str) -> None:
        counts[reason] += 1
        if len(examples.setdefault(reason, [])) < 5:
            examples[reason].append(text)

    def emit(batch: list[tuple[int, np.ndarray | CorruptInputError]]) -> None:
        from affect.face.align import to_rgb

        det_ids = [i for i, img in batch if not isinstance(img, Exception) and _needs_detection(recs[i], opts)]
        dets = dict(zip(det_ids, detect_faces([to_rgb(im) for i, im in batch if i in det_ids], _detector(opts),
                                              opts.select), strict=True)) if det_ids else {}
        for i, img in batch:
            row = recs[i]
            counts["frames_in"] += 1
            base = {c: row[c] for c in columns}
            if isinstance(img, Exception):
                note("corrupt", str(img))
                faces, status = [], "corrupt"
            else:
                faces = _row_faces(to_rgb(img), row, opts, dets.get(i))
                status = "ok" if faces else "no_face"
                if any(f.source == "whole_image" for f in faces):
                    note("whole_image", f"{row['path']}#{row['frame']}")
                if not faces:
                    note("no_face", f"{row['path']}#{row['frame']}")
                    if i in dets and too_small(img.shape, opts.min_face_size):
                        note("too_small", f"{row['path']}#{row['frame']} ({img.shape[1]}x{img.shape[0]} px < "
                                          f"--min-face-size {opts.min_face_size})")
            counts["faces"] += len(faces)
            for fi, f in enumerate(faces or [None]):
                crop = np.zeros((S, S, 3), np.uint8) if f is None else f.crop
                crops.append(np.ascontiguousarray(crop.transpose(2, 0, 1)))
                lm = nan_lmk if f is None or f.landmarks68 is None else f.landmarks68
                lmks.append(lm.astype(np.float32))
                p5 = np.full((5, 2), np.nan, np.float32) if f is None else np.asarray(f.points5, np.float32)
                rec = dict(base)
                rec.update(status=status, face_index=fi if f is not None else -1,
                           n_faces=len(faces), det_score=float("nan") if f is None else f.score,
                           has_landmarks=int(f is not None and f.landmarks68 is not None),
                           face_source="" if f is None else f.source)
                rec.update({c: float(v) for c, v in zip(P5_COLUMNS, p5.ravel(), strict=True)})
                records.append(rec)
                src_pos.append(i)

    pending: list = []
    for item in _iter_rows(recs, root_p):
        pending.append(item)
        if len(pending) == opts.batch_size:
            emit(pending)
            pending = []
    if pending:
        emit(pending)

    n = len(records)
    name = shard_name(k)
    files = {
        f"{name}.u8": np.stack(crops).astype(np.uint8).tobytes() if n else b"",
        f"{name}.lmk": np.stack(lmks).astype(np.float32).tobytes() if n else b"",
    }
    if opts.audio:
        spec = _audio_images(rows, root_p, opts, counts)
        files[f"{name}.spec"] = spec[np.asarray(src_pos, dtype=np.int64)].tobytes() if n else b""
    table = pd.DataFrame.from_records(records)
    files[f"{name}.csv"] = table.to_csv(index=False, float_format=FLOAT_FORMAT).encode()
    for fname, data in files.items():
        _atomic_write(sdir / fname, data)
    header = {
        "name": name, "index": k, "n": n, "first_src_row": int(rows["src_row"].iloc[0]),
        "n_src_rows": len(rows), "files": {f: len(d) for f, d in files.items()},
        "sha256": {f: hashlib.sha256(d).hexdigest() for f, d in files.items()},
        "counts": dict(sorted(counts.items())), "examples": examples,
    }
    _atomic_write(sdir / f"{name}.json", json.dumps(header, indent=1, sort_keys=True).encode())
    return header


def _sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _committed(sdir: Path, k: int, n_src_rows: int) -> dict | None:
    """The shard's header if the shard is fully committed: header present, every file of the listed size
    and sha256 (checked once per shard when a run resumes; a shard that fails is processed again)."""
    head = sdir / f"{shard_name(k)}.json"
    try:
        h = json.loads(head.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if h.get("n_src_rows") != n_src_rows:
        return None
    for f, size in h.get("files", {}).items():
        p = sdir / f
        if not p.is_file() or p.stat().st_size != size:
            return None
    for f, digest in h.get("sha256", {}).items():  # sizes first: cheap; then content
        if _sha256_file(sdir / f) != digest:
            return None
    return h


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


# --------------------------------------------------------------------------- driver
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

    ``parser`` (``{"corpus": slug, "args": {...}}``, as ``affect prepare --parser-arg`` builds it) is recorded in
    ``store.json``, so that a datamodule can refuse a store built with other split arguments.

    ``max_shards`` processes at most that many new shards and raises :class:`IncompleteRun`
    (re-run to continue). Returns the report dict (also in ``out/report.json``).
    ``part`` (:class:`affect.prepare_shard.Part`, ``--shard I/N``) prepares only that part's
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
        raise ValueError("the manifest is empty: nothing to prepare")
    out, root = Path(out), Path(root)
    sdir = out / "shards"
    sdir.mkdir(parents=True, exist_ok=True)

    job = {"format": STORE_FORMAT, "version": STORE_VERSION, "manifest_sha256": manifest_digest(df),
           "n_manifest_rows": len(df), "shard_size": shard_size, "options": opts.__dict__}
    if part is not None:
        job["part"] = part.spec()
    job_path = out / "job.json"
    job_bytes = json.dumps(job, indent=1, sort_keys=True).encode()
    if job_path.exists():
        if job_path.read_bytes() != job_bytes:
            raise ValueError(
                f"{out} holds a store of a different job (manifest or options changed; see {job_path}); "
                "use a new --out folder or delete this one"
            )
    else:
        _atomic_write(job_path, job_bytes)
    for leftover in sdir.glob("*.tmp-*"):  # half-written files of a killed run: never read
        leftover.unlink(missing_ok=True)

    n_shards = (len(df) + shard_size - 1) // shard_size
    chunks = {k: df.iloc[k * shard_size : (k + 1) * shard_size] for k in range(n_shards)}
    if part is not None:
        chunks = part.select(df, chunks)
    headers: dict[int, dict] = {}
    for k, rows in chunks.items():
        h = _committed(sdir, k, len(rows))
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
    return _finalise(out, headers, n_shards, opts, df, parser)


def _finalise(out: Path, headers: dict[int, dict], n_shards: int, opts: PrepareOptions, df: pd.DataFrame,
              parser: dict | None = None) -> dict:
    sdir = out / "shards"
    tables, offset = [], 0
    counts: Counter = Counter()
    examples: dict[str, list[str]] = {}
    for k in range(n_shards):
        h = headers[k]
        t = pd.read_csv(sdir / f"{h['name']}.csv", keep_default_na=False, na_values=[""],
                        dtype={"path": str, "subject": str, "video": str})
        if len(t) != h["n"]:
            raise ValueError(f"shard {h['name']}: csv has {len(t)} rows, header says {h['n']}")
        t.insert(0, "row", np.arange(offset, offset + len(t), dtype=np.int64))
        t.insert(1, "shard", k)
        t.insert(2, "offset", np.arange(len(t), dtype=np.int64))
        offset += len(t)
        tables.append(t)
        counts.update(h["counts"])
        for r, ex in h["examples"].items():
            examples.setdefault(r, [])
            examples[r].extend(ex[: max(0, 5 - len(examples[r]))])
    labels = pd.concat(tables, ignore_index=True)
    for col in ("subject", "video"):
        labels[col] = labels[col].fillna("").astype(str)
    front = ["row", "shard", "offset", "src_row", *MANIFEST_COLUMNS]
    rest = [c for c in labels.columns if c not in front]
    labels = labels[front + rest]
    _atomic_write(out / "labels.csv", labels.to_csv(index=False, float_format=FLOAT_FORMAT).encode())
    counts_ = {k: int(counts.get(k, 0)) for k in ("frames_in", "faces", "no_face", "corrupt")}
    counts_.update({k: int(v) for k, v in sorted(counts.items()) if k not in counts_})
    report = {
        **counts_,
        "frames_with_face": counts_["frames_in"] - counts_["no_face"] - counts_["corrupt"],
        "stored_rows": int(len(labels)), "usable_rows": int((labels["status"] == "ok").sum()),
        "examples": examples,
        "per_split": {s: int(n) for s, n in labels.loc[labels["status"] == "ok", "split"].value_counts().sort_index().items()},
    }
    _atomic_write(out / "report.json", json.dumps(report, indent=1, sort_keys=True).encode())
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
    _atomic_write(out / "store.json", json.dumps(header, indent=1, sort_keys=True).encode())
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="affect prepare", description=__doc__.split("\n")[0],
                                epilog="affect prepare merge STORE PART...: one store from the parts of --shard runs")
    p.add_argument("corpus", help="corpus slug (a key of affect.data.corpora.MANIFEST_PARSERS) or 'csv'")
    p.add_argument("--root", required=True, help="raw corpus folder (manifest paths are relative to it)")
    p.add_argument("--out", required=True, help="store folder to create or resume")
    p.add_argument("--manifest", default=None, help="manifest CSV to use instead of the corpus parser")
    p.add_argument("--parser-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="an argument of the corpus parser (repeatable; YAML value), e.g. fold=1, camera=right; "
                        "recorded in store.json, and a datamodule with other values refuses the store")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--shard-size", type=int, default=1024)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--detect", dest="detect", action="store_const", const="always",
                   help="run MTCNN on every row (given landmarks are carried through)")
    g.add_argument("--no-detect", dest="detect", action="store_const", const="never",
                   help="never detect: use given landmarks / boxes, else resize the image as a face crop")
    p.set_defaults(detect="auto")
    p.add_argument("--select", choices=SELECT_MODES, default="largest")
    p.add_argument("--image-size", type=int, default=96)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=16, help="images per MTCNN call")
    p.add_argument("--min-face-size", type=int, default=20)
    p.add_argument("--audio", action="store_true", help="also store one spectrogram image per video frame")
    p.add_argument("--max-shards", type=int, default=None, help="stop after this many new shards (exit 3)")
    p.add_argument("--shard", type=Part.parse, default=None, metavar="I/N",
                   help="prepare only part I of N (whole videos) into --out; then `affect prepare merge`")
    p.add_argument("--no-progress", action="store_true")
    return p


def parse_parser_args(items: Sequence[str]) -> dict:
    """``["fold=1", "aus=[1, 2]"]`` -> ``{"fold": 1, "aus": [1, 2]}`` (values read as YAML)."""
    import yaml

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"--parser-arg expects KEY=VALUE, got {item!r}")
        out[key.strip()] = yaml.safe_load(value)
    return out


def bind_parser_args(parser, root: str, args: dict) -> dict:
    """Every argument ``parser(root, **args)`` runs with (defaults filled in), JSON-normalised, root left out."""
    import inspect

    sig = inspect.signature(parser)
    names = list(sig.parameters)
    unknown = [k for k in args if k not in names[1:]]
    if unknown:
        raise SystemExit(f"{parser.__name__} has no argument {unknown[0]!r}; its arguments: {names[1:]}")
    bound = sig.bind(root, **args)
    bound.apply_defaults()
    return json.loads(json.dumps({k: v for k, v in bound.arguments.items() if k != names[0]}, default=str))


def _corpus_manifest(corpus: str, root: str, parser_args: dict | None = None) -> tuple[pd.DataFrame, dict]:
    """The corpus parser's manifest (``affect.data.corpora``: ``MANIFEST_PARSERS`` dict or ``manifest_parser``)
    and the record ``{"corpus", "args"}`` of the arguments it ran with."""
    try:
        import affect.data.corpora as corpora
    except ImportError as e:
        raise SystemExit(f"no corpus parsers available ({e}); pass --manifest file.csv") from e
    parsers = getattr(corpora, "MANIFEST_PARSERS", None)
    if parsers is not None:
        if corpus not in parsers:
            raise SystemExit(f"unknown corpus {corpus!r}; known: {sorted(parsers)} (or use --manifest)")
        parser = parsers[corpus]
    else:
        try:
            parser = corpora.manifest_parser(corpus)
        except ValueError as e:
            raise SystemExit(f"{e} (or use --manifest)") from e
    args = parser_args or {}
    record = {"corpus": corpus, "args": bind_parser_args(parser, root, args)}
    df, load_report = parser(root, **args)
    print(load_report, file=sys.stderr)
    return df, record


def main(argv: Sequence[str] | None = None) -> int:
    """``affect prepare <corpus> --root RAW --out STORE [...]``; exit 0 done, 3 incomplete (--max-shards)."""
    if argv and argv[0] == "merge":
        return merge_main(argv[1:])
    args = build_parser().parse_args(argv)
    parser_args = parse_parser_args(args.parser_arg)
    if args.manifest:
        if parser_args:
            raise SystemExit("--parser-arg applies to a corpus parser, not to --manifest")
        df, record = read_manifest_csv(args.manifest), None  # a user's manifest: its arguments are unknown
    else:
        df, record = _corpus_manifest(args.corpus, args.root, parser_args)
    opts = PrepareOptions(image_size=args.image_size, detect=args.detect, select=args.select, device=args.device,
                          batch_size=args.batch_size, min_face_size=args.min_face_size, audio=args.audio)
    try:
        report = prepare_store(df, args.root, args.out, workers=args.workers, shard_size=args.shard_size,
                               options=opts, max_shards=args.max_shards, progress=not args.no_progress,
                               part=args.shard, parser=record)
    except IncompleteRun as e:
        print(e, file=sys.stderr)
        return 3
    if args.shard is not None:
        print(format_part_report(report, args.out))
        return 0
    print(format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
