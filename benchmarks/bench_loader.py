"""Images/s of the store-backed train loader vs a plain JPEG-folder loader (``docs/benchmarks.md``, "Loader").

Both loaders serve the same FER2013 training images as uint8 [B, 3, 96, 96] batches of 401
(the VA batch size of the paper's holistic training):

- store: ``affect prepare --no-detect`` writes the 48x48 grey crops resized to 96x96x3 into
  memory-mapped shards; ``StoreFrameDataset`` + ``DataLoader(collate_fn=ds.collate_fn)``
  fetches a whole batch per call (one gather, no decoding);
- JPEG: a ``Dataset`` that opens each JPEG with PIL, converts to RGB, resizes to 96x96 and
  the default collate stacks them.

Run: ``python benchmarks/bench_loader.py --limit 8000`` (prints one line per configuration).
The store's shards are in the page cache after preparation (warm-cache numbers, as in
training after the first epoch).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from affect.io import open_image  # noqa: E402
from affect.labels import FER2013_FOLDERS, expr_index  # noqa: E402
from affect.store.reader import StoreFrameDataset  # noqa: E402
from affect.store.writer import PrepareOptions, prepare_store  # noqa: E402

DEFAULT_FER = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "fer2013"


def fer_manifest(root: Path, limit: int | None) -> pd.DataFrame:
    """FER2013 ``train/<class>/<name>.jpg`` -> manifest rows (first ``limit`` files in sorted order)."""
    files = sorted((root / "train").glob("*/*.jpg"))
    if not files:
        raise SystemExit(f"no FER2013 images under {root / 'train'}")
    rng = np.random.default_rng(0)
    if limit and limit < len(files):
        files = [files[i] for i in np.sort(rng.choice(len(files), limit, replace=False))]
    return pd.DataFrame({
        "path": [str(f.relative_to(root)) for f in files], "corpus": "fer2013", "split": "train",
        "expr": [expr_index(FER2013_FOLDERS[f.parent.name]) for f in files],
    })


class JpegFolderDataset(Dataset):
    """The baseline: decode + resize per item."""

    def __init__(self, root: Path, df: pd.DataFrame, size: int = 96):
        self.paths = [root / p for p in df["path"]]
        self.expr = df["expr"].to_numpy()
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict:
        img = np.asarray(open_image(self.paths[i]).resize((self.size, self.size), Image.BILINEAR))
        return {"image": torch.from_numpy(img.transpose(2, 0, 1).copy()), "expr": int(self.expr[i])}


def measure(loader: DataLoader, min_seconds: float) -> tuple[float, int]:
    """Images/s over whole epochs (at least ``min_seconds``), excluding the first batch (worker start)."""
    n, t0 = 0, None
    while True:
        for batch in loader:
            if t0 is None:
                t0 = time.perf_counter()
                continue
            n += len(batch["image"])
        if t0 is not None and time.perf_counter() - t0 >= min_seconds:
            return n / (time.perf_counter() - t0), n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--fer", type=Path, default=DEFAULT_FER, help="FER2013 folder holding train/")
    p.add_argument("--limit", type=int, default=8000, help="images used (0 = all 28,709)")
    p.add_argument("--store", type=Path, default=None, help="store folder (default: a temp folder)")
    p.add_argument("--batch-size", type=int, default=401)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--seconds", type=float, default=3.0, help="minimum timed seconds per configuration")
    p.add_argument("--prepare-workers", type=int, default=2)
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)

    df = fer_manifest(args.fer, args.limit or None)
    tmp = None
    store = args.store
    if store is None:
        tmp = tempfile.TemporaryDirectory(prefix="affect-bench-")
        store = Path(tmp.name) / "fer2013"
    t = time.perf_counter()
    report = prepare_store(df, args.fer, store, workers=args.prepare_workers, shard_size=2048,
                           options=PrepareOptions(detect="never"), progress=False)
    prep_s = time.perf_counter() - t
    print(f"images: {len(df)} FER2013 48x48 grey JPEGs -> 96x96x3 store; cpus: {os.cpu_count()}; "
          f"torch threads: {torch.get_num_threads()}; load average: {os.getloadavg()[0]:.1f}")
    print(f"prepare --no-detect (workers={args.prepare_workers}): {prep_s:.1f} s = {len(df) / prep_s:,.0f} images/s "
          f"(stored {report['usable_rows']}, corrupt {report['corrupt']})")

    results = {}
    ds = StoreFrameDataset(str(store), "train")
    for w in args.workers:
        dl = DataLoader(ds, batch_size=args.batch_size, shuffle=True, collate_fn=ds.collate_fn, num_workers=w,
                        persistent_workers=w > 0)
        rate, n = measure(dl, args.seconds)
        results[("store", w)] = rate
        print(f"store loader  workers={w}: {rate:>10,.0f} images/s  ({n} images timed)")
    jds = JpegFolderDataset(args.fer, df)
    for w in args.workers:
        dl = DataLoader(jds, batch_size=args.batch_size, shuffle=True, num_workers=w, persistent_workers=w > 0)
        rate, n = measure(dl, args.seconds)
        results[("jpeg", w)] = rate
        print(f"JPEG loader   workers={w}: {rate:>10,.0f} images/s  ({n} images timed)")
    best_store = max(v for (k, _), v in results.items() if k == "store")
    best_jpeg = max(v for (k, _), v in results.items() if k == "jpeg")
    print(f"best store {best_store:,.0f} images/s vs best JPEG {best_jpeg:,.0f} images/s: "
          f"{best_store / best_jpeg:.1f}x")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
