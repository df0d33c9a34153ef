"""Where a FaceBehaviorNet training step spends its time on a GPU (net vs loss vs metrics/logging)."""

from __future__ import annotations

import time

import torch

from affect.losses import MultiTaskLoss
from affect.models.facebehaviornet.torch_model import FaceBehaviorNet
from benchmarks.bench_train_gpu import SIZES, domain_batch


def timed(fn, n=10, warm=3):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / n * 1000


def main():
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    gen = torch.Generator().manual_seed(0)
    batches = {d: domain_batch(d, b, 96, gen) for d, b in SIZES.items()}
    flat = {k: torch.cat([b[k] for b in batches.values()]).cuda() for k in batches["va"]}
    x = flat["image"].float() / 127.5 - 1
    loss_fn = MultiTaskLoss(soft_co_annotation=True, distribution_matching=True).cuda()
    for backbone in ("vgg16", "resnet50"):
        for cl in (False, True):
            net = FaceBehaviorNet(backbone=backbone, hidden=4096, image_size=96).cuda()
            xin = x.contiguous(memory_format=torch.channels_last) if cl else x
            if cl:
                net = net.to(memory_format=torch.channels_last)
            opt = torch.optim.Adam(net.parameters(), 1e-4)

            def step(net=net, xin=xin, opt=opt, with_loss=True):
                with torch.autocast("cuda", torch.bfloat16):
                    out = net(xin)
                loss = loss_fn(out, flat)["loss"] if with_loss else sum(v.float().mean() for v in out.values())
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

            ms_net = timed(lambda: step(with_loss=False))
            ms_all = timed(step)
            print(f"{backbone:9s} channels_last={cl!s:5s} bf16 net fwd+bwd+adam {ms_net:6.1f} ms  (+ loss) {ms_all:6.1f} ms"
                  f"  -> {751 / ms_all * 1000:7.0f} images/s", flush=True)
    with torch.no_grad():
        out = {k: v.float() for k, v in FaceBehaviorNet(backbone="resnet50", hidden=64, image_size=96).cuda()(x).items()}
    print(f"loss alone (forward) {timed(lambda: loss_fn(out, flat)):.1f} ms", flush=True)


if __name__ == "__main__":
    main()
