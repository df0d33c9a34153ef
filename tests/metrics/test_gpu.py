"""The metrics on a CUDA device give the CPU numbers (float64 sums, bincount, per-AU thresholds)."""

from __future__ import annotations

import pytest
import torch
from torchmetrics import MetricCollection

from affect.metrics import AUMetrics, ExprMetrics, VAMetrics, ccc

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    va_t = torch.rand(500, 2, generator=g) * 2 - 1
    va_m = torch.rand(500, 2, generator=g) > 0.2
    y = torch.randint(-1, 7, (500,), generator=g)
    au_t = (torch.rand(500, 17, generator=g) < 0.3).float()
    au_m = torch.rand(500, 17, generator=g) > 0.3
    return {
        "va": (0.7 * va_t + 0.2 * torch.randn(500, 2, generator=g), torch.where(va_m, va_t, torch.nan), va_m),
        "expr": (torch.randn(500, 7, generator=g), y),
        "au": (torch.rand(500, 17, generator=g), au_t, au_m),
    }


def test_cuda_matches_cpu():
    data = _inputs()
    thr = torch.linspace(0.3, 0.7, 17).tolist()
    for task, cls in (("va", VAMetrics), ("expr", ExprMetrics), ("au", lambda: AUMetrics(threshold=thr))):
        cpu = MetricCollection([cls()]).clone(prefix=f"val/{task}/")
        gpu = MetricCollection([cls()]).clone(prefix=f"val/{task}/").to("cuda")
        for sl in torch.split(torch.arange(500), 128):
            cpu.update(*(x[sl] for x in data[task]))
            gpu.update(*(x[sl].cuda() for x in data[task]))
        out_cpu, out_gpu = cpu.compute(), gpu.compute()
        for k, v in out_cpu.items():
            assert out_gpu[k].device.type == "cuda", k
            torch.testing.assert_close(out_gpu[k].cpu(), v, equal_nan=True, atol=1e-6, rtol=0, msg=k)
    assert VAMetrics().to("cuda").sum_pt.dtype == torch.float64


def test_ccc_loss_gradient_under_bf16_autocast():
    p, t, m = (x.cuda() for x in _inputs(1)["va"])
    p = p.clone().requires_grad_()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = ccc(p.bfloat16(), t, m)
    loss = 1 - out.mean()
    loss.backward()
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.cpu(), ccc(*(x.cpu() for x in (p.detach(), t, m))), atol=1e-2, rtol=0)
    assert torch.isfinite(p.grad).all() and (p.grad[~m] == 0).all()
