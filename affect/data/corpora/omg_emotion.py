"""OMG-Emotion (Barros et al., IJCNN 2018): YouTube monologue utterances with utterance-level labels.

Native layout read here (``data_cards/omg_emotion.md``; conforms to the real CSVs in
``shared/data/corpora/omg_emotion``)::

    <root>/omg_TrainVideos.csv                  link,start,end,video,utterance,arousal,valence,EmotionMaxVote
    <root>/omg_ValidationVideos.csv             (same header)
    <root>/omg_TestVideos_WithoutLabels.csv     link,start,end,video,utterance   (``include_test``)
    <root>/<video>/<utterance>                  e.g. 5b44393ed/utterance_4.mp4: clips the user cut from
                                                the links with start/end (``clips_dir``, default root)

Labels are one value per utterance: arousal in [0, 1] is mapped to ``2a - 1`` in [-1, 1]
(the VA label space of ``docs/corpora.md``; ``rescale_arousal=False`` keeps it, documented as
[0, 1]), valence is in [-1, 1],
``EmotionMaxVote`` ids follow ``labels.OMG_EXPR_ORDER`` (0 Anger, 1 Disgust, 2 Fear, 3 Happy,
4 Neutral, 5 Sad, 6 Surprise). Every frame of an utterance's clip carries the utterance's
labels, with ``video = "<video>/<utterance stem>"`` so that utterance-level evaluation can
group the frames (median per sequence, mean per utterance). Subject = the YouTube id of the
link (several ``video`` ids cut from one YouTube video show the same speaker).

Splits are the official ones: Train -> "train", Validation -> "val", Test (no labels) ->
"test". ``require_media=False`` parses the CSVs only: one row per utterance, ``frame = -1``,
``path`` = the clip path. Counted: malformed lines (``file:line`` examples; the official train
CSV ends with two lines that lack link/video/utterance), labels out of range, duplicate
utterances, clips missing or undecodable.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pandas as pd

from affect.data.corpora._video import VideoCorpusDataModule
from affect.data.manifest import LoadReport, counted
from affect.data.textio import read_text
from affect.data.video import video_frame_paths
from affect.io import MediaReadError
from affect.labels import OMG_EXPR_ORDER, map_expr

CORPUS = "omg_emotion"
SPLIT_FILES: dict[str, str] = {
    "train": "omg_TrainVideos.csv",
    "val": "omg_ValidationVideos.csv",
    "test": "omg_TestVideos_WithoutLabels.csv",
}
ID_FIELDS = ("link", "start", "end", "video", "utterance")
LABEL_FIELDS = ("arousal", "valence", "EmotionMaxVote")


def youtube_id(link: str) -> str:
    """The ``v=`` id of a YouTube link (the link itself if it has none).

    >>> youtube_id("https://www.youtube.com/watch?v=CROcsl0lIec")
    'CROcsl0lIec'
    """
    query = parse_qs(urlparse(link).query)
    return query["v"][0] if query.get("v") else link


def read_omg_csv(path: Path, labelled: bool, report: LoadReport, rescale_arousal: bool = True) -> list[dict]:
    """Rows of one OMG CSV as dicts (utterance level); malformed lines are counted."""
    fields = ID_FIELDS + (LABEL_FIELDS if labelled else ())
    reader = csv.reader(io.StringIO(read_text(path)))
    header = [h.strip() for h in next(reader, [])]
    missing = [f for f in fields if f not in header]
    if missing:
        raise ValueError(f"{path}: header lacks {missing}; expected {','.join(fields)}, found {','.join(header)}")
    col = {f: header.index(f) for f in fields}
    rows, seen = [], set()
    for lineno, raw in enumerate(reader, start=2):
        if not raw or not any(c.strip() for c in raw):
            continue
        where = f"{path.name}:{lineno}"
        cells = {f: (raw[i].strip() if i < len(raw) else "") for f, i in col.items()}
        if len(raw) != len(header) or any(not cells[f] for f in ID_FIELDS):
            report.skip("malformed line", example=f"{where}: {','.join(raw)[:70]!r}")
            continue
        row = {"link": cells["link"], "video_id": cells["video"], "utterance": cells["utterance"]}
        if labelled:
            try:
                arousal, valence = float(cells["arousal"]), float(cells["valence"])
                emotion = int(cells["EmotionMaxVote"])
            except ValueError:
                report.skip("malformed line", example=f"{where}: {','.join(raw)[:70]!r}")
                continue
            if not (0.0 <= arousal <= 1.0 and -1.0 <= valence <= 1.0 and emotion in OMG_EXPR_ORDER) or not (
                math.isfinite(arousal) and math.isfinite(valence)
            ):
                report.skip("label out of range", example=f"{where}: a={arousal}, v={valence}, emotion={emotion}")
                continue
            row.update(
                arousal=2.0 * arousal - 1.0 if rescale_arousal else arousal,
                valence=valence,
                expr=int(map_expr([emotion], OMG_EXPR_ORDER)[0]),
            )
        key = (row["video_id"], row["utterance"])
        if key in seen:
            report.skip("duplicate utterance", example=f"{where}: {key[0]}/{key[1]}")
            continue
        seen.add(key)
        rows.append(row)
    return rows


def make_omg_emotion_manifest(
    root: str | Path,
    clips_dir: str | None = None,
    frames_dir: str | None = None,
    extract: bool = True,
    include_test: bool = False,
    rescale_arousal: bool = True,
    require_media: bool = True,
    quality: int = 95,
) -> tuple[pd.DataFrame, LoadReport]:
    """Parse OMG-Emotion into one row per clip frame (or per utterance with ``require_media=False``).

    Args:
        root: folder holding the CSVs.
        clips_dir: folder of the cut clips ``<video>/<utterance>`` (default ``root``).
        frames_dir: where clip frames are extracted / read (default ``<root>/frames``), as
            ``<frames_dir>/<video>/<utterance stem>/00001.jpg``.
        extract: decode clips (cached); False reads user-extracted frames.
        include_test: also parse the unlabelled test CSV (split "test").
        rescale_arousal: arousal 2a - 1 (True) or kept in [0, 1].
        require_media: False = labels only (no clips needed).
        quality: JPEG quality of extracted frames.
    """
    root = Path(root)
    clips = Path(clips_dir) if clips_dir is not None else root
    frames_root = Path(frames_dir) if frames_dir is not None else root / "frames"
    report = LoadReport(CORPUS)
    root_abs, clips_abs = root.resolve(), clips.resolve()
    clips_rel = clips_abs.relative_to(root_abs) if clips_abs.is_relative_to(root_abs) else clips_abs
    records: list[dict] = []
    for split, name in SPLIT_FILES.items():
        if split == "test" and not include_test:
            continue
        path = root / name
        if not path.is_file():
            raise FileNotFoundError(f"OMG-Emotion {split} labels not found: expected the file {path}")
        for row in read_omg_csv(path, split != "test", report, rescale_arousal):
            stem = Path(row["utterance"]).stem
            base = {
                "corpus": CORPUS, "split": split, "subject": youtube_id(row["link"]),
                "video": f"{row['video_id']}/{stem}",
                "valence": row.get("valence", math.nan), "arousal": row.get("arousal", math.nan),
                "expr": row.get("expr", -1),
            }
            if not require_media:
                records.append({**base, "path": (clips_rel / row["video_id"] / row["utterance"]).as_posix(), "frame": -1})
                continue
            clip = clips / row["video_id"] / row["utterance"]
            try:
                files, _ = video_frame_paths(clip, frames_root / row["video_id"] / stem, root, extract, quality)
            except MediaReadError as err:
                report.skip("clip missing or undecodable", example=str(err))
                continue
            records.extend({**base, "path": files[k], "frame": k} for k in sorted(files))
    df = pd.DataFrame.from_records(records) if records else pd.DataFrame(columns=["path", "corpus"])
    return counted(df, report)


class OMGEmotionDataModule(VideoCorpusDataModule):
    """OMG-Emotion frames (or sequences per utterance) for VA and EXPR; official train/val splits."""

    corpus = CORPUS

    def __init__(
        self,
        root: str,
        clips_dir: str | None = None,
        frames_dir: str | None = None,
        extract: bool = True,
        include_test: bool = False,
        rescale_arousal: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(root, **kwargs)
        self.hold_parser_args(locals())
