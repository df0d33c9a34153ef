"""Real 2-process gloo DDP on CPU: synced metrics equal the single-process value over all batches.

Rank r updates batches r, r + 2, r + 4, ... (7 batches of unequal size, so rank 0 sees 4 and rank 1
sees 3); after ``compute()`` (which all-gathers and sums the states) every rank must hold the
reference over all 7 batches to 1e-6, for VA (with per-dimension masks), EXPR (with -1 targets)
and AU (with masks and per-AU thresholds).
"""

from __future__ import annotations

import datetime
import os
import socket
import time

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from affect.metrics import AUMetrics, ExprMetrics, VAMetrics, ccc

WORLD_SIZE = 2
SIZES = [37, 50, 13, 64, 5, 41, 30]  # 7 unequal batches
A = 17


def make_batches(seed: int = 0) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for i, n in enumerate(SIZES):
        va_t = torch.rand(n, 2, generator=g) * 2 - 1
        # batch-dependent offsets make per-batch CCCs differ from the whole-set CCC
        va_p = 0.6 * va_t + 0.3 * torch.randn(n, 2, generator=g) + 0.15 * (i % 3 - 1)
        va_m = torch.rand(n, 2, generator=g) > 0.25
        y = torch.randint(0, 7, (n,), generator=g)
        logits = torch.randn(n, 7, generator=g) + 1.5 * torch.nn.functional.one_hot(y, 7)
        y[torch.rand(n, generator=g) < 0.2] = -1
        au_t = (torch.rand(n, A, generator=g) < 0.3).float()
        au_p = (0.5 * au_t + 0.6 * torch.rand(n, A, generator=g)).clamp(0, 1)
        au_m = torch.rand(n, A, generator=g) > 0.3
        au_m[:, 2] = False  # never annotated on any rank
        out.append(
            {
                "va": (va_p, torch.where(va_m, va_t, torch.tensor(float("nan"))), va_m),
                "expr": (logits, y),
                "au": (au_p, au_t, au_m),
            }
        )
    return out


def new_metrics() -> dict:
    return {
        "va": VAMetrics(),
        "expr": ExprMetrics(),
        "au": AUMetrics(threshold=torch.linspace(0.4, 0.6, A).tolist()),
    }


def _worker(rank: int, port: int, batches: list, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=WORLD_SIZE,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        metrics = new_metrics()
        for batch in batches[rank::WORLD_SIZE]:
            for task, m in metrics.items():
                m.update(*batch[task])
        local_n = metrics["va"].n.clone()  # compute() syncs, then restores the local state
        result = {task: m.compute() for task, m in metrics.items()}
        torch.save({"result": result, "local_n": local_n}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.ddp
@pytest.mark.slow
def test_two_process_gloo_sync_equals_single_process(tmp_path):
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with the gloo backend is not available")
    batches = make_batches()
    ctx = mp.spawn(_worker, args=(_free_port(), batches, str(tmp_path)), nprocs=WORLD_SIZE, join=False)
    deadline = time.monotonic() + 90
    while not ctx.join(timeout=2):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("DDP workers did not finish within 90 s")

    ref_metrics = new_metrics()
    for batch in batches:
        for task, m in ref_metrics.items():
            m.update(*batch[task])
    ref = {task: m.compute() for task, m in ref_metrics.items()}

    # an independent check of the reference itself (sklearn macro F1 over all labelled samples);
    # sklearn is imported here so that the spawned workers, which import this module, skip it
    from sklearn.metrics import f1_score

    y = torch.cat([b["expr"][1] for b in batches])
    yp = torch.cat([b["expr"][0].argmax(1) for b in batches])
    f1 = f1_score(
        y[y >= 0].numpy(), yp[y >= 0].numpy(), average="macro", labels=list(range(7)), zero_division=0
    )
    assert ref["expr"]["f1"].item() == pytest.approx(f1, abs=1e-6)

    for rank in range(WORLD_SIZE):
        saved = torch.load(tmp_path / f"rank{rank}.pt")
        local_rows = sum(SIZES[rank::WORLD_SIZE])
        assert saved["local_n"].max().item() <= local_rows < sum(SIZES)  # each rank saw only its share
        for task, res in ref.items():
            for k, v in res.items():
                got = saved["result"][task][k]
                if v.is_floating_point():
                    np.testing.assert_allclose(
                        got.numpy(),
                        v.numpy(),
                        atol=1e-6,
                        rtol=0,
                        equal_nan=True,
                        err_msg=f"rank {rank} {task}/{k}",
                    )
                else:
                    torch.testing.assert_close(got, v, msg=f"rank {rank} {task}/{k}")
        assert torch.isnan(saved["result"]["au"]["f1_per_au"][2])

    # a mean of per-batch (or per-rank) CCCs is NOT the whole-set CCC: this test would catch it
    per_batch = torch.stack([ccc(*b["va"]) for b in batches]).mean(0)
    assert (per_batch - torch.stack([ref["va"]["ccc_v"], ref["va"]["ccc_a"]])).abs().min() > 1e-2
    per_rank = torch.stack(
        [
            ccc(*(torch.cat([b["va"][i] for b in batches[r::WORLD_SIZE]]) for i in range(3)))
            for r in range(WORLD_SIZE)
        ]
    ).mean(0)
    assert (per_rank - torch.stack([ref["va"]["ccc_v"], ref["va"]["ccc_a"]])).abs().max() > 1e-4
