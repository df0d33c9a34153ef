"""Training throughput and MFU on a GPU: FaceBehaviorNet (401/247/103) and the sequence models.

Runs the real modules through a Lightning ``Trainer`` on one device and, for the same module, a
bare step (``forward_batch`` + the module's loss + backward + the module's own optimiser, under the
same autocast, no Trainer, no logging, no metrics) and prints per configuration:

- images/s and ms/step of the Lightning step and of the bare step, and their ratio;
- FLOPs per image of one training step (forward + backward, counted by
  ``torch.utils.flop_counter.FlopCounterMode``; the optimiser's element-wise work is not counted);
- MFU = counted FLOPs x steps/s / the device's dense bf16 peak (``PEAK_BF16_TFLOPS``, from the
  vendors' data sheets, matched on the device name; ``--peak-tflops`` overrides; also used for
  fp32/TF32 runs so that precisions compare on one scale).

Models (``--models``): ``facebehaviornet`` (eq. 7 + soft co-annotation + distribution matching,
batches of 401 VA + 247 AU + 103 EXPR images, Sec. VI-B), ``affwildnet`` (4 sequences x 80 frames
with 68 landmarks, Sec. V-A), ``mt_vgg_gru`` (10 x 90 frames, VA + EXPR + AU, Sec. VI-A); 96x96.

- ``synthetic``: random uint8 batches pre-built in pinned host memory (model-bound upper limit;
  includes the host-to-device copy and on-device normalisation);
- ``store`` (``--store-images N``, FaceBehaviorNet): the same model fed by ``MultiDomainDataModule``
  over a prepared store (``affect.store.reader``) — what a real run sees after ``affect prepare``.

    python benchmarks/bench_train_gpu.py --steps 30 --warmup 10
    python benchmarks/bench_train_gpu.py --smoke      # CPU, tiny backbone and batches: proves it runs
"""

from __future__ import annotations

import argparse
import math
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import lightning as L  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from affect.labels import NUM_AU  # noqa: E402

SIZES = {"va": 401, "au": 247, "expr": 103}
SEQUENCES = {"affwildnet": (4, 80), "mt_vgg_gru": (10, 90)}  # (sequences, frames) per batch
# dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, by a substring of torch.cuda.get_device_name()
PEAK_BF16_TFLOPS = {
    "H200": 989.0,
    "H100 PCIe": 756.0,
    "H100 NVL": 835.0,
    "H100": 989.0,  # SXM ("NVIDIA H100 80GB HBM3")
    "GH200": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "A10G": 70.0,
    "L4": 121.0,
}


def assumed_peak(device_name: str, override: float | None = None) -> float | None:
    """The dense bf16 peak in TFLOP/s assumed for ``device_name`` (first matching key), or None.

    >>> assumed_peak("NVIDIA H100 80GB HBM3"), assumed_peak("NVIDIA H100 PCIe"), assumed_peak("cpu")
    (989.0, 756.0, None)
    """
    if override:
        return override
    for key, tflops in PEAK_BF16_TFLOPS.items():
        if key in device_name:
            return tflops
    return None


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


def sequence_batch(b: int, t: int, size: int, gen: torch.Generator) -> dict:
    """``b`` sequences of ``t`` frames, every frame labelled for VA, EXPR and the 17 AUs, with 68 landmarks."""
    batch = {
        "image": torch.randint(0, 256, (b, t, 3, size, size), dtype=torch.uint8, generator=gen),
        "landmarks": torch.rand(b, t, 68, 2, generator=gen),
        "landmarks_mask": torch.ones(b, t, dtype=torch.bool),
        "va": torch.rand(b, t, 2, generator=gen) * 2 - 1,
        "va_mask": torch.ones(b, t, 2, dtype=torch.bool),
        "expr": torch.randint(0, 7, (b, t), generator=gen),
        "au": (torch.rand(b, t, NUM_AU, generator=gen) > 0.7).float(),
        "au_mask": torch.ones(b, t, NUM_AU, dtype=torch.bool),
        "frame_mask": torch.ones(b, t, dtype=torch.bool),
        "face_mask": torch.ones(b, t, dtype=torch.bool),
    }
    return {k: v.pin_memory() if torch.cuda.is_available() else v for k, v in batch.items()}


def images_in(batch: dict) -> int:
    """Face images in a batch: a domain dict {va, au, expr} or one (sequence) batch."""
    if "image" in batch:
        return math.prod(batch["image"].shape[:-3])
    return sum(images_in(b) for b in batch.values())


class PrebuiltBatches(Dataset):
    """``n`` distinct pre-built batches (from ``make(generator)``), cycled for ``steps`` steps."""

    def __init__(self, n: int, steps: int, make) -> None:
        gen = torch.Generator().manual_seed(0)
        self.batches = [make(gen) for _ in range(n)]
        self.steps = steps

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, i: int) -> dict:
        return self.batches[i % len(self.batches)]


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class Timer(L.Callback):
    """Images/s and s/step of the training steps after ``warmup``, by ``clock`` (wall time by default)."""

    def __init__(self, warmup: int, clock=time.perf_counter) -> None:
        self.warmup, self.t0, self.images, self.steps, self.clock = warmup, None, 0, 0, clock

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if batch_idx == self.warmup:
            sync()
            self.t0 = self.clock()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if batch_idx >= self.warmup:
            self.images += images_in(batch)
            self.steps += 1

    def rate(self) -> tuple[float, float]:
        sync()
        dt = self.clock() - self.t0
        return self.images / dt, dt / self.steps


# --------------------------------------------------------------------------- models
def make_module(model: str, backbone: str, hidden: int, size: int) -> L.LightningModule:
    """The real module of ``model`` at the paper's settings (VGG-FACE-sized heads unless ``hidden``)."""
    if model == "facebehaviornet":
        from affect.losses import MultiTaskLoss
        from affect.models.facebehaviornet import FaceBehaviorNetModule

        loss = MultiTaskLoss(soft_co_annotation=True, distribution_matching=True)
        return FaceBehaviorNetModule(backbone=backbone, hidden=hidden, image_size=size, loss=loss)
    if model == "affwildnet":
        from affect.models.affwildnet import AffWildNetModule

        return AffWildNetModule(backbone=backbone, fc_units=hidden, image_size=size)
    if model == "mt_vgg_gru":
        from affect.models.mt_vgg_gru import MTVGGGRUModule

        return MTVGGGRUModule(backbone=backbone, hidden=hidden, image_size=size)
    raise ValueError(f"unknown model {model!r}")


def batch_maker(model: str, size: int, scale: float = 1.0):
    """``make(generator) -> batch`` of the model's paper batch size (times ``scale``, for smoke runs)."""
    if model == "facebehaviornet":
        sizes = {d: max(2, round(n * scale)) for d, n in SIZES.items()}
        return lambda gen: {d: domain_batch(d, n, size, gen) for d, n in sizes.items()}
    b, t = SEQUENCES[model]
    b, t = max(1, round(b * scale)), max(2, round(t * scale))
    return lambda gen: sequence_batch(b, t, size, gen)


def autocast(precision: str, device: torch.device):
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def _optimizer(module: L.LightningModule):
    opt = module.configure_optimizers()
    return opt["optimizer"] if isinstance(opt, dict) else opt


def bare_step(module: L.LightningModule, batch: dict, precision: str):
    """A training step of the network and loss alone: ``step()`` runs forward, loss, backward, optimiser."""
    module.train()
    opt = _optimizer(module)
    device = next(module.parameters()).device

    def loss_only() -> torch.Tensor:
        with autocast(precision, device):
            out = module.forward_batch(batch)
        return module.loss_fn({t: out[t] for t in module.tasks}, batch)["loss"]

    def step() -> None:
        loss = loss_only()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, loss_only


def step_flops(loss_only) -> int:
    """FLOPs of one forward + backward (``FlopCounterMode``: matmuls and convolutions)."""
    counter = FlopCounterMode(display=False)
    with counter:
        loss_only().backward()
    return counter.get_total_flops()


def timed(fn, warmup: int, steps: int, clock=time.perf_counter) -> float:
    """Seconds per call of ``fn`` after ``warmup`` calls, by ``clock`` (wall time by default)."""
    for _ in range(warmup):
        fn()
    sync()
    t = clock()
    for _ in range(steps):
        fn()
    sync()
    return (clock() - t) / steps


def lightning_rate(module, precision: str, loader, warmup: int, steps: int, accelerator: str) -> tuple[float, float]:
    timer = Timer(warmup)
    trainer = L.Trainer(
        accelerator=accelerator, devices=1, precision=precision, max_steps=warmup + steps, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        limit_val_batches=0, callbacks=[timer],
    )
    trainer.fit(module, train_dataloaders=loader)
    return timer.rate()


def run(model: str, backbone: str, precision: str, loader, warmup: int, steps: int, accelerator: str = "gpu",
        hidden: int = 4096, size: int = 96, peak: float | None = None, sample=None) -> str:
    """One configuration: Lightning step, bare step, ratio, FLOPs per image and MFU, as one line."""
    rate, step_s = lightning_rate(make_module(model, backbone, hidden, size), precision, loader, warmup, steps,
                                  accelerator)  # fmt: skip
    mem = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
    line = f"{model:15s} {backbone:9s} {precision:10s} lightning {rate:8.0f} images/s {step_s * 1000:7.1f} ms/step"
    if sample is None:
        return line + f"  peak {mem:5.1f} GiB"
    device = torch.device("cuda" if accelerator == "gpu" else accelerator)
    bare = make_module(model, backbone, hidden, size).to(device)
    batch = bare.prepare_batch({k: ({kk: vv.to(device) for kk, vv in v.items()} if isinstance(v, dict) else v.to(device))
                                for k, v in sample.items()})  # fmt: skip
    step, loss_only = bare_step(bare, batch, precision)
    n = images_in(sample)
    flops = step_flops(loss_only)
    bare_s = timed(step, warmup, steps)
    line += (f" | bare {n / bare_s:8.0f} images/s {bare_s * 1000:7.1f} ms/step | lightning/bare {bare_s / step_s:4.2f}"
             f" | {flops / n / 1e9:6.2f} GFLOP/image")
    if peak:
        line += (f" | MFU lightning {flops / step_s / (peak * 1e12):6.1%} bare {flops / bare_s / (peak * 1e12):6.1%}"
                 f" of {peak:.0f} TFLOP/s")
    else:
        line += f" | {flops / step_s / 1e12:.3f} TFLOP/s (no peak known: --peak-tflops)"
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    return line + f"  peak {mem:5.1f} GiB"


def build_store(out: str, n: int, workers: int, size: int = 96) -> str:
    """A prepared store of ``n`` random ``size`` x ``size`` faces split over the three domains' labels."""
    from pathlib import Path

    import numpy as np
    import pandas as pd
    from PIL import Image

    from affect.data.manifest import AU_COLUMNS
    from affect.store.writer import PrepareOptions, prepare_store

    root = Path(out) / "raw"
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        path = f"{i:06d}.jpg"
        if not (root / path).exists():
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / path, quality=90)
        domain = ("va", "au", "expr")[i % 3]
        row = {"path": path, "corpus": "bench", "split": "train"}
        if domain == "va":
            row.update(valence=float(rng.uniform(-1, 1)), arousal=float(rng.uniform(-1, 1)))
        elif domain == "expr":
            row.update(expr=int(rng.integers(0, 7)))
        else:
            row.update({c: float(rng.random() > 0.7) for c in AU_COLUMNS})
        rows.append(row)
    store = str(Path(out) / f"store-{size}")
    prepare_store(pd.DataFrame(rows), root, store, workers=workers,
                  options=PrepareOptions(detect="never", image_size=size), progress=False)
    return store


def store_loader(store: str, size: int = 96, scale: float = 1.0):
    from affect.data.datamodule import CorpusDataModule
    from affect.data.multidomain import MultiDomainDataModule

    def corpus(task: str) -> CorpusDataModule:
        return CorpusDataModule(root=store, store=store, task=task, image_size=size)

    sizes = {f"{d}_batch_size": max(2, round(n * scale)) for d, n in SIZES.items()}
    dm = MultiDomainDataModule(va=[corpus("va")], au=[corpus("au")], expr=[corpus("expr")], batch_sizes="fixed", **sizes)
    return dm.train_dataloader()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--models", nargs="+", default=["facebehaviornet", "affwildnet", "mt_vgg_gru"],
                        choices=["facebehaviornet", "affwildnet", "mt_vgg_gru"])
    parser.add_argument("--backbones", nargs="+", default=["vgg16", "resnet50"],
                        help="FaceBehaviorNet's backbones (the sequence models use the first)")
    parser.add_argument("--precisions", nargs="+", default=["32-true", "bf16-mixed"])
    parser.add_argument("--store-images", type=int, default=0,
                        help="also build a store of this many images and train FaceBehaviorNet from it")
    parser.add_argument("--store-dir", default="/tmp/affect-bench-store")
    parser.add_argument("--workers", type=int, default=6)
    parser.add_argument("--accelerator", default="gpu")
    parser.add_argument("--hidden", type=int, default=4096)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak to assume for MFU")
    parser.add_argument("--smoke", action="store_true",
                        help="CPU, tiny backbone, tiny batches, 1 step after 1 warm-up: proves the script runs")
    args = parser.parse_args(argv)
    scale = 1.0
    if args.smoke:
        args.accelerator, args.backbones, args.precisions, args.hidden = "cpu", ["test_resnet"], ["32-true"], 16
        args.image_size, args.steps, args.warmup, scale = 32, 1, 1, 0.02
        args.store_images, args.workers = min(args.store_images, 30), 1
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name() if args.accelerator == "gpu" else args.accelerator
    peak = assumed_peak(name, args.peak_tflops)
    print(f"device: {name}, torch {torch.__version__}; assumed dense bf16 peak: "
          f"{f'{peak:.0f} TFLOP/s' if peak else 'unknown'}", flush=True)
    for model in args.models:
        make = batch_maker(model, args.image_size, scale)
        sample = make(torch.Generator().manual_seed(1))
        backbones = args.backbones if model == "facebehaviornet" else args.backbones[:1]
        print(f"{model}: {images_in(sample)} images/step", flush=True)
        for backbone in backbones:
            for precision in args.precisions:
                loader = DataLoader(PrebuiltBatches(4, args.warmup + args.steps, make), batch_size=None, shuffle=False)
                print("synthetic", run(model, backbone, precision, loader, args.warmup, args.steps, args.accelerator,
                                       args.hidden, args.image_size, peak, sample), flush=True)  # fmt: skip
    if args.store_images:
        t = time.perf_counter()
        store = build_store(args.store_dir, args.store_images, args.workers, args.image_size)
        print(f"store: {args.store_images} images prepared in {time.perf_counter() - t:.1f} s", flush=True)
        for backbone in args.backbones:
            for precision in args.precisions:
                print("store    ", run("facebehaviornet", backbone, precision, store_loader(store, args.image_size, scale), args.warmup,
                                       args.steps, args.accelerator, args.hidden, args.image_size), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
