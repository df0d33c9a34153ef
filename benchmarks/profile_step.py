"""Where a FaceBehaviorNet training step goes: aten ops, host syncs and ms per part, on a CPU or a GPU.

The real ``FaceBehaviorNetModule`` with the coupled loss (eq. 7 + co-annotation + distribution matching
+ soft co-annotation, Sec. VI-B) on generated VA / AU / EXPR domain batches (Fig. 4). Per part, one
line with the aten ops of one call (≈ kernel launches on a GPU; :class:`affect.profiling.OpCounter`),
the host syncs a GPU would wait on (:class:`affect.profiling.HostSyncCounter`) and ms per call:

- ``network``: ``forward_batch`` + backward of the outputs' sum (the net alone);
- ``loss``: ``MultiTaskLoss`` forward + backward on fixed network outputs;
- ``metric update``: the training metrics' ``update`` of the three tasks;
- ``optimizer``: the module's own Adam ``step``;
- ``bare step``: network + loss + backward + optimiser, no Trainer (as ``bench_train_gpu.py``);
- ``lightning step``: the same module through ``Trainer.fit`` (logging, metric updates, hooks);

then the Lightning step's time over the bare step's (on a CPU the process's CPU time, which a shared
machine does not inflate the way it does wall time; on a GPU wall time). A tiny network (the CPU default: ``test_resnet``,
32x32, hidden 16) leaves the part that is not the network visible.

    python benchmarks/profile_step.py                                   # CPU, tiny network
    python benchmarks/profile_step.py --device cuda --backbone vgg16 --hidden 4096 --image-size 96 \\
        --scale 1 --precision bf16-mixed                                 # the paper's step on a GPU
    python benchmarks/profile_step.py --smoke                           # proves it runs (tests)
"""

from __future__ import annotations

import argparse
import logging
import os
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import lightning as L  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from affect.losses import MultiTaskLoss  # noqa: E402
from affect.models.facebehaviornet import FaceBehaviorNetModule  # noqa: E402
from affect.profiling import HostSyncCounter  # noqa: E402
from benchmarks.bench_train_gpu import (  # noqa: E402
    SIZES,
    PrebuiltBatches,
    Timer,
    autocast,
    bare_step,
    domain_batch,
    images_in,
    sync,
    timed,
)

COUPLED = {"co_annotation": True, "distribution_matching": True, "soft_co_annotation": True}


def count(fn) -> tuple[int, int]:
    """``(aten ops, host syncs)`` of one call of ``fn``."""
    with HostSyncCounter() as counter:
        fn()
    return counter.total, sum(counter.counts().values())


class CountStep(L.Callback):
    """Counts ops and host syncs of training step ``at`` (the ones before build states and slots)."""

    def __init__(self, at: int) -> None:
        self.at, self.counter = at, HostSyncCounter()
        self.counter.stop()

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if batch_idx == self.at:
            torch.autograd.set_detect_anomaly(True, check_nan=False)  # backward syncs get their forward line
            self.counter.start()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if self.counter.active:
            torch.autograd.set_detect_anomaly(False)
        self.counter.stop()


def make_module(args) -> FaceBehaviorNetModule:
    torch.manual_seed(0)
    loss = MultiTaskLoss(**COUPLED)
    return FaceBehaviorNetModule(backbone=args.backbone, hidden=args.hidden, image_size=args.image_size, loss=loss)


def fit(module, loader, args, callbacks) -> None:
    trainer = L.Trainer(
        accelerator="gpu" if args.device == "cuda" else "cpu", devices=1, precision=args.precision,
        max_steps=len(loader), logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, callbacks=callbacks,
    )  # fmt: skip
    trainer.fit(module, train_dataloaders=loader)


def parts(args, sample: dict) -> dict[str, tuple[int, int, float]]:
    """``{part: (aten ops, host syncs, ms per call)}`` of the parts outside a Trainer."""
    device = torch.device(args.device)
    module = make_module(args).to(device)
    batch = module.prepare_batch({d: {k: v.to(device) for k, v in b.items()} for d, b in sample.items()})
    tasks = module.tasks
    module.train()
    results = {}

    def network():
        with autocast(args.precision, device):
            out = module.forward_batch(batch)
        sum(v.float().mean() for v in out.values()).backward()

    with torch.no_grad(), autocast(args.precision, device):
        fixed = module.forward_batch(batch)
    leaves = {t: fixed[t].detach().requires_grad_() for t in tasks}

    def loss():
        module.loss_fn(leaves, batch)["loss"].backward()

    rows = module.frame_rows({t: fixed[t].detach() for t in tasks}, batch)
    terms = {k: v.detach() for k, v in module.loss_fn(rows).items()}
    samples = int(batch["image"].shape[0])

    def metrics():
        module.metrics.update("train", terms, rows, samples, tasks)

    network()  # gradients for the optimiser
    step, _ = bare_step(module, batch, args.precision)
    optimizer = module.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    for name, fn in (("network", network), ("loss", loss), ("metric update", metrics),
                     ("optimizer", optimizer.step), ("bare step", step)):  # fmt: skip
        ms = timed(fn, args.warmup, args.steps, args.clock) * 1000
        results[name] = (*count(fn), ms)
    return results


def lightning(args, make) -> tuple[int, int, float, list[str]]:
    """``(aten ops, host syncs, ms per step, where the syncs are)`` of the Lightning step."""
    counted = CountStep(at=1)
    with counted.counter:
        fit(make_module(args), DataLoader(PrebuiltBatches(2, 2, make), batch_size=None), args, [counted])
    timer = Timer(args.warmup, args.clock)
    loader = DataLoader(PrebuiltBatches(4, args.warmup + args.steps, make), batch_size=None)
    fit(make_module(args), loader, args, [timer])
    _, step_s = timer.rate()
    c = counted.counter
    return c.total, sum(c.counts().values()), step_s * 1000, c.where()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--backbone", default="test_resnet")
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--scale", type=float, default=0.1,
                        help="domain batch sizes as a fraction of the paper's 401 / 247 / 103")
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (0: torch's default; 1, the default, gives stable CPU figures on a "
                             "shared machine, where several threads spin against other jobs)")
    parser.add_argument("--smoke", action="store_true", help="tiny batches, 2 timed calls: proves the script runs")
    args = parser.parse_args(argv)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    for message in (".*val_dataloader.*", ".*LeafSpec.*", ".*not in the model's AU set.*"):
        warnings.filterwarnings("ignore", message=message)
    # CPU: the process's CPU time (a shared machine deschedules it; wall time then swings 3x between runs)
    args.clock = time.process_time if args.device == "cpu" else time.perf_counter
    if args.smoke:
        args.scale, args.steps, args.warmup, args.image_size = 0.02, 2, 1, 16
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    sizes = {d: max(2, round(n * args.scale)) for d, n in SIZES.items()}

    def make(gen):
        return {d: domain_batch(d, n, args.image_size, gen) for d, n in sizes.items()}

    sample = make(torch.Generator().manual_seed(1))
    name = torch.cuda.get_device_name() if args.device == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device: {name}, torch {torch.__version__}; FaceBehaviorNet {args.backbone} hidden {args.hidden}, "
          f"{args.image_size}x{args.image_size}, {args.precision}, {images_in(sample)} images/step "
          f"({sizes['va']} VA + {sizes['au']} AU + {sizes['expr']} EXPR); loss: eq. 7 + co-annotation + DM + soft "
          f"co-annotation; {args.steps} timed calls after {args.warmup}; "
          f"{'CPU time of the process' if args.device == 'cpu' else 'wall time'}", flush=True)
    print(f"{'part':16s} {'aten ops':>9s} {'host syncs':>11s} {'ms/call':>9s}")
    results = parts(args, sample)
    results["lightning step"] = (*(light := lightning(args, make))[:3],)
    for part, (ops, syncs, ms) in results.items():
        print(f"{part:16s} {ops:9d} {syncs:11d} {ms:9.2f}", flush=True)
    bare, step = results["bare step"][2], results["lightning step"][2]
    print(f"lightning/bare time per step: {step / bare:.2f} (lightning {step:.2f} ms, bare {bare:.2f} ms; "
          f"throughput ratio bare/lightning {bare / step:.2f})")
    for line in light[3]:
        print(f"  lightning step sync: {line}")
    sync()


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - t0:.1f} s")
