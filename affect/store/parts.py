"""``affect prepare --shard I/N``: a corpus cut into ``N`` parts of whole videos, one per machine.

Every row of one video (``corpus`` + ``video``; a still image is its own group) goes to the same
part, so a machine needs only its own videos' files and decodes each video in one place. Groups
are assigned to parts by frame count, largest first, each to the part with the fewest frames so
far (ties: the lower part number), which is deterministic given the manifest and keeps the parts
within one video of each other. A part keeps the one-machine run's work units: the store shard
``k`` restricted to the part's rows, processed by the same :func:`affect.store.shard.process_shard`
(so a part resumes like a store does); :mod:`affect.store.merge` joins the parts.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from affect.errors import ConfigError
from affect.store.format import PART_FILE, atomic_write


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
        raise ConfigError(f"the number of parts must be >= 1; got {count}")
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
        """``"0/4"`` -> ``Part(0, 4)``; a one-line :class:`ConfigError` otherwise."""
        try:
            i, n = (int(v) for v in str(text).split("/"))
        except ValueError:
            raise ConfigError(f"--shard takes I/N (part I of N, 0 <= I < N), e.g. 0/4; got {text!r}") from None
        if not 0 <= i < n:
            raise ConfigError(f"--shard {text}: need 0 <= I < N")
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
        counts: Counter = Counter()
        for h in headers.values():
            counts.update(h["counts"])
        report = {"part": self.spec(), "shards": sorted(headers), "counts": dict(sorted(counts.items()))}
        atomic_write(out / PART_FILE, json.dumps(report, indent=1, sort_keys=True).encode())
        return report


def format_part_report(report: dict, out: str) -> str:
    p = report["part"]
    c = report["counts"]
    return (f"part {p['index']}/{p['count']} complete in {out}: {len(report['shards'])} partial shards, "
            f"{c.get('frames_in', 0)} frames in, {c.get('faces', 0)} faces, {c.get('no_face', 0)} without a face, "
            f"{c.get('corrupt', 0)} corrupt\nmerge all parts with: affect prepare merge STORE PART_0 ... PART_{p['count'] - 1}")
