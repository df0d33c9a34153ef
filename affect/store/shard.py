"""One shard of ``affect prepare``: its manifest rows -> decoded frames -> aligned faces -> committed files.

How the face of a row is found (``detect``):

- ``"auto"`` (default): rows with ``landmarks`` (iBUG 68) are aligned from them; the others
  are detected with MTCNN;
- ``"always"`` (``--detect``): MTCNN for every row; given 68 landmarks are still carried
  through the detection-based transform;
- ``"never"`` (``--no-detect``): rows with landmarks are aligned from them, rows with a box
  ``box_x, box_y, box_w, box_h`` are cropped to it, the rest are taken as already-cropped
  faces and only resized (FER2013, RAF-DB aligned).

Video rows: ``path`` is a video file and ``frame`` the 0-based index of the decoded frame
(consecutive rows of one video are decoded in one pass). With ``audio`` each row also gets
the spectrogram image of that frame (:mod:`affect.data.audio`) from the video in the optional
``audio_path`` column (frame index ``audio_frame``, 0-based, when given), or from ``path``
itself when it is a video; rows without an audio source get silence (``audio_no_source``).

Every row ends with a status: a row whose decoding, detection or alignment fails for any reason
(an undecodable file, a decompression bomb, NaN or degenerate landmarks) is a ``corrupt`` row
with the reason in the report's examples; the shard still commits. A shard's content depends
only on its rows and the options (never on timing or on the number of workers).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from affect.errors import ConfigError
from affect.face.align import align_face, resize_crop, to_rgb
from affect.face.detect import REFINE_PASSES, SELECT_MODES, too_small
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
from affect.store.format import (
    BOX_COLUMNS,
    DETECT_MODES,
    FLOAT_FORMAT,
    P5_COLUMNS,
    atomic_write,
    shard_name,
    to_bytes,
)
from affect.store.manifest import parse_landmarks

MAX_EXAMPLES = 5


@dataclass(frozen=True)
class PrepareOptions:
    """The options a store's content depends on (recorded in ``job.json``)."""

    image_size: int = 96
    detect: str = "auto"
    select: str = "largest"
    device: str = "cpu"
    batch_size: int = 16
    min_face_size: int = 20
    refine_passes: int = REFINE_PASSES
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
        for name, least in (("image_size", 8), ("batch_size", 1), ("min_face_size", 1), ("refine_passes", 0),
                            ("audio_height", 1), ("audio_width", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or value < least:
                raise ConfigError(f"--{name.replace('_', '-')} must be an integer >= {least}; got {value!r}")
        if not self.audio_context_s > 0:
            raise ConfigError(f"audio_context_s must be > 0; got {self.audio_context_s!r}")


_DETECTOR = None


def _detector(opts: PrepareOptions):
    global _DETECTOR
    if _DETECTOR is None:
        import torch

        from affect.face.detect import FaceDetector

        if opts.device == "cpu":
            torch.set_num_threads(1)  # one process per core; also makes results independent of load
        _DETECTOR = FaceDetector(device=opts.device, min_face_size=opts.min_face_size, batch_size=opts.batch_size,
                                 refine=opts.refine_passes)
    return _DETECTOR


def detect_batch(images: list[np.ndarray], opts: PrepareOptions) -> list[list | Exception]:
    """The selected faces of RGB images (:func:`affect.face.pipeline.detect_faces`, batched); if the batch
    fails, image by image, so that only the image at fault fails (its entry is the exception)."""
    try:
        return list(detect_faces(images, _detector(opts), opts.select))
    except Exception:  # noqa: BLE001 - find the one image at fault; its row becomes "corrupt"
        out: list[list | Exception] = []
        for img in images:
            try:
                out.append(detect_faces([img], _detector(opts), opts.select)[0])
            except Exception as e:  # noqa: BLE001
                out.append(e)
        return out


def row_faces(img: np.ndarray, row: dict, opts: PrepareOptions, detected: list | None) -> list[AlignedFace]:
    """The aligned faces of one row's RGB image: from the detections (``detected``, when the row was
    detected), else from its landmarks, its box, or the whole image as a crop. Raises on bad input."""
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


def needs_detection(row: dict, opts: PrepareOptions) -> bool:
    if opts.detect == "always":
        return True
    if opts.detect == "never":
        return False
    return parse_landmarks(row.get("landmarks")) is None


def iter_rows(rows: list[dict], root: Path):
    """Yield ``(index, RGB image or the exception that stopped its decoding)`` in row order, streaming
    video frames: consecutive rows of one video share a decoder pass while their frame numbers increase."""
    decoder, dec_path, cur = None, None, (-1, None)
    for i, row in enumerate(rows):
        p = root / row["path"]
        if not is_video(p):
            try:
                yield i, to_rgb(load_image(p))
            except Exception as e:  # noqa: BLE001 - any decoding failure is this row's "corrupt" status
                yield i, e
            continue
        want = int(row["frame"])
        if decoder is None or dec_path != p or want < cur[0]:
            decoder, dec_path, cur = iter_video_frames(p), p, (-1, None)
        try:
            while cur[0] < want:
                cur = next(decoder)
            yield i, to_rgb(cur[1])
        except StopIteration:
            decoder = None
            yield i, CorruptInputError(f"video {str(p)!r} has no frame {want}")
        except Exception as e:  # noqa: BLE001
            decoder = None
            yield i, e


def _reason(row: dict, err: Exception) -> str:
    if isinstance(err, CorruptInputError):  # its message names the file
        return str(err)
    where = row["path"] if int(row.get("frame", -1)) < 0 or not is_video(row["path"]) else f"{row['path']}#{row['frame']}"
    return f"{where}: {type(err).__name__}: {' '.join(str(err).split())}"


def audio_images(rows: pd.DataFrame, root: Path, opts: PrepareOptions, counts: Counter) -> np.ndarray:
    """The uint8 spectrogram image of each row's video frame (silence where there is none, counted):
    each video read once, a window of frames at a time, keeping only the images the rows ask for."""
    out = np.zeros((len(rows), 1, opts.audio_height, opts.audio_width), np.uint8)  # 0 == -1 == silence
    src = rows["audio_path"] if "audio_path" in rows.columns else rows["path"]
    frames = rows["audio_frame"] if "audio_frame" in rows.columns else rows["frame"]
    wanted: dict[str, dict[int, list[int]]] = {}  # video -> frame -> the rows (positions) that want it
    for j, (path, frame) in enumerate(zip(src, frames, strict=True)):
        if not isinstance(path, str) or not path or not is_video(path):
            counts["audio_no_source"] += 1  # stored as silence, and said in the report
            continue
        wanted.setdefault(path, {}).setdefault(int(frame), []).append(j)
    for path, by_frame in wanted.items():
        images = video_audio_images(root / path, set(by_frame), opts)
        if images is None:
            counts["audio_unreadable"] += 1
            continue
        for frame, at in by_frame.items():
            if frame in images:
                out[at] = images[frame]
            else:
                counts["audio_frame_out_of_range"] += len(at)
    return out


def video_audio_images(path: Path, frames: set[int], opts: PrepareOptions) -> dict[int, np.ndarray] | None:
    """``{frame: uint8 [1, H, W]}`` for the decoded frames ``frames`` of one video that exist (those of
    :func:`affect.data.audio.video_spectrogram_frames`, made by :class:`affect.data.audio_windows.VideoWindows`
    a window at a time: memory is the wanted images plus one window's audio, not the whole video's);
    None when the video or its audio cannot be read."""
    from affect.data.audio import to_uint8
    from affect.data.audio_windows import VideoWindows

    got: dict[int, np.ndarray] = {}
    try:
        with VideoWindows(path, opts.audio_height, opts.audio_width, opts.audio_context_s, window=256) as video:
            for window in video:
                need = [k for k in window if k in frames]
                if need:
                    got.update(zip(need, to_uint8(video.images(need)), strict=True))
    except (CorruptInputError, ValueError):
        return None
    return got


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
        if len(examples.setdefault(reason, [])) < MAX_EXAMPLES:
            examples[reason].append(text)

    def faces_or_error(batch: list[tuple[int, np.ndarray | Exception]]) -> dict[int, list | Exception]:
        result: dict[int, list | Exception] = {}
        want: list[int] = []
        for i, img in batch:
            if isinstance(img, Exception):
                result[i] = img
                continue
            try:
                if needs_detection(recs[i], opts):
                    want.append(i)
            except Exception as e:  # noqa: BLE001 - e.g. a malformed landmarks cell
                result[i] = e
        dets = dict(zip(want, detect_batch([img for i, img in batch if i in want], opts), strict=True)) if want else {}
        for i, img in batch:
            if i in result:
                continue
            try:
                if isinstance(dets.get(i), Exception):
                    raise dets[i]
                result[i] = row_faces(img, recs[i], opts, dets.get(i))
            except Exception as e:  # noqa: BLE001 - NaN / degenerate landmarks, a failed transform, ...
                result[i] = e
            if result[i] == [] and i in dets and too_small(img.shape, opts.min_face_size):
                note("too_small", f"{recs[i]['path']}#{recs[i]['frame']} ({img.shape[1]}x{img.shape[0]} px < "
                                  f"--min-face-size {opts.min_face_size})")
        return result

    def emit(batch: list[tuple[int, np.ndarray | Exception]]) -> None:
        found = faces_or_error(batch)
        for i, _ in batch:
            row = recs[i]
            counts["frames_in"] += 1
            base = {c: row[c] for c in columns}
            faces = found[i]
            if isinstance(faces, Exception):
                note("corrupt", _reason(row, faces))
                faces, status = [], "corrupt"
            else:
                status = "ok" if faces else "no_face"
                if any(f.source == "whole_image" for f in faces):
                    note("whole_image", f"{row['path']}#{row['frame']}")
                if not faces:
                    note("no_face", f"{row['path']}#{row['frame']}")
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
    for item in iter_rows(recs, root_p):
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
        spec = audio_images(rows, root_p, opts, counts)
        files[f"{name}.spec"] = spec[np.asarray(src_pos, dtype=np.int64)].tobytes() if n else b""
    table = pd.DataFrame.from_records(records)
    files[f"{name}.csv"] = table.to_csv(index=False, float_format=FLOAT_FORMAT).encode()
    for fname, data in files.items():
        atomic_write(sdir / fname, data)
    header = {
        "name": name, "index": k, "n": n, "first_src_row": int(rows["src_row"].iloc[0]),
        "n_src_rows": len(rows), "files": {f: len(d) for f, d in files.items()},
        "sha256": {f: hashlib.sha256(d).hexdigest() for f, d in files.items()},
        "counts": dict(sorted(counts.items())), "examples": examples,
    }
    atomic_write(sdir / f"{name}.json", to_bytes(header))
    return header
