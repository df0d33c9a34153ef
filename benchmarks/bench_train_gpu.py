"""Training throughput of FaceBehaviorNet on a GPU (paper-sized: VGG-16 layout, 96x96, 401/247/103).

Runs the real ``FaceBehaviorNetModule`` (eq. 7 + soft co-annotation + distribution matching)
through a Lightning ``Trainer`` on one device and prints images/s per configuration:

- ``synthetic``: random uint8 domain batches pre-built in pinned host memory (model-bound
  upper limit; includes the host-to-device copy and on-device normalisation);
- ``store``: the same model fed by ``MultiDomainDataModule`` over prepared stores
  (``affect.data.store``: memory-mapped uint8 shards, whole-batch gathers) with DataLoader
  workers — what a real run sees once ``affect prepare`` has been run.

    python benchmarks/bench_train_gpu.py --steps 30 --warmup 10

Needs a CUDA device; prints one line per configuration.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import lightning as L  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from affect.labels import NUM_AU  # noqa: E402
from affect.models.facebehaviornet.lightning_model import FaceBehaviorNetModule  # noqa: E402

SIZES = {"va": 401, "au": 247, "expr": 103}


def domain_batch(domain: str, n: int, size: int, gen: torch.Generator) -> dict:
    batch = {
        "image": torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=gen),
        "va": torch.rand(n, 2, generator=gen) * 2 - 1,
        "va_mask": torch.full((n, 2), domain == "va"),
        "expr": torch.randint(0, 7, (n,), generator=gen) if domain == "expr" else torch.full((n,), -1),
        "au": (torch.rand(n, NUM_AU, generator=gen) > 0.7).float(),
        "au_mask": torch.full((n, NUM_AU), domain == "au"),
    }
    return {k: v.pin_memory() if torch.cuda.is_available() else v for k, v in batch.items()}


class PrebuiltBatches(Dataset):
    """``n`` distinct pre-built multi-domain batches, cycled."""

    def __init__(self, n: int, steps: int, size: int) -> None:
        gen = torch.Generator().manual_seed(0)
        self.batches = [{d: domain_batch(d, b, size, gen) for d, b in SIZES.items()} for _ in range(n)]
        self.steps = steps

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, i: int) -> dict:
        return self.batches[i % len(self.batches)]


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class Timer(L.Callback):
    def __init__(self, warmup: int) -> None:
        self.warmup, self.t0, self.images, self.steps = warmup, None, 0, 0

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if batch_idx == self.warmup:
            sync()
            self.t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if batch_idx >= self.warmup:
            self.images += sum(int(b["image"].shape[0]) for b in batch.values())
            self.steps += 1

    def rate(self) -> tuple[float, float]:
        sync()
        dt = time.perf_counter() - self.t0
        return self.images / dt, dt / self.steps


def run(backbone: str, precision: str, loader, warmup: int, steps: int, compile_model: bool = False,
        accelerator: str = "gpu", hidden: int = 4096) -> str:
    module = FaceBehaviorNetModule(
        backbone=backbone, hidden=hidden, image_size=96, soft_co_annotation=True, distribution_matching=True,
        log_media=False,
    )
    if compile_model:
        module.net = torch.compile(module.net)
    timer = Timer(warmup)
    trainer = L.Trainer(
        accelerator=accelerator, devices=1, precision=precision, max_steps=warmup + steps, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        limit_val_batches=0, callbacks=[timer],
    )
    trainer.fit(module, train_dataloaders=loader)
    rate, step = timer.rate()
    mem = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    return f"{backbone:9s} {precision:11s} compile={compile_model!s:5s} {rate:9.0f} images/s  {step * 1000:7.1f} ms/step  peak {mem:5.1f} GiB"


def build_store(out: str, n: int, workers: int) -> str:
    """A prepared store of ``n`` random 96x96 faces split over the three domains' labels."""
    from pathlib import Path

    import numpy as np
    import pandas as pd
    from PIL import Image

    from affect.data.manifest import AU_COLUMNS
    from affect.prepare import PrepareOptions, prepare_store

    root = Path(out) / "raw"
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        path = f"{i:06d}.jpg"
        if not (root / path).exists():
            Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(root / path, quality=90)
        domain = ("va", "au", "expr")[i % 3]
        row = {"path": path, "corpus": "bench", "split": "train"}
        if domain == "va":
            row.update(valence=float(rng.uniform(-1, 1)), arousal=float(rng.uniform(-1, 1)))
        elif domain == "expr":
            row.update(expr=int(rng.integers(0, 7)))
        else:
            row.update({c: float(rng.random() > 0.7) for c in AU_COLUMNS})
        rows.append(row)
    store = str(Path(out) / "store")
    prepare_store(pd.DataFrame(rows), root, store, workers=workers, options=PrepareOptions(detect="never"), progress=False)
    return store


def store_loader(store: str):
    from affect.data.datamodule import CorpusDataModule
    from affect.data.multidomain import MultiDomainDataModule

    def corpus(task: str) -> CorpusDataModule:
        return CorpusDataModule(root=store, store=store, task=task)

    dm = MultiDomainDataModule(va=[corpus("va")], au=[corpus("au")], expr=[corpus("expr")], batch_sizes="paper")
    return dm.train_dataloader()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--backbones", nargs="+", default=["vgg16", "resnet50"])
    parser.add_argument("--precisions", nargs="+", default=["32-true", "bf16-mixed"])
    parser.add_argument("--store-images", type=int, default=0,
                        help="also build a store of this many images and train from it (MultiDomainDataModule)")
    parser.add_argument("--store-dir", default="/tmp/affect-bench-store")
    parser.add_argument("--workers", type=int, default=6)
    parser.add_argument("--accelerator", default="gpu", help="cpu: a smoke run of this script with a tiny model")
    parser.add_argument("--hidden", type=int, default=4096)
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(f"device: {name}, torch {torch.__version__}, batch 401/247/103 = 751 images/step")
    data = PrebuiltBatches(4, args.warmup + args.steps, 96)
    for backbone in args.backbones:
        for precision in args.precisions:
            loader = DataLoader(data, batch_size=None, shuffle=False)
            print("synthetic", run(backbone, precision, loader, args.warmup, args.steps,
                                          accelerator=args.accelerator, hidden=args.hidden), flush=True)
    if args.store_images:
        t = time.perf_counter()
        store = build_store(args.store_dir, args.store_images, args.workers)
        print(f"store: {args.store_images} images prepared in {time.perf_counter() - t:.1f} s", flush=True)
        for backbone in args.backbones:
            for precision in args.precisions:
                print("store    ", run(backbone, precision, store_loader(store), args.warmup, args.steps,
                                       accelerator=args.accelerator, hidden=args.hidden), flush=True)


if __name__ == "__main__":
    main()
