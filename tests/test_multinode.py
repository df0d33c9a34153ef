"""Multi-node DDP for real on one machine: two ``torchrun`` agents (``--nnodes 2``), one gloo process each.

Lightning's DDP is the distributed engine (no home-made launcher): under ``torchrun`` it picks
``TorchElasticEnvironment`` and checks ``num_nodes x devices`` against the world size. The
validation metrics of the 2-node ``fit`` must equal a 1-process ``validate`` of its checkpoint,
as in the 2-process test of ``test_cli.py`` (whose helpers this reuses). Only 127.0.0.1 is used.
"""

from __future__ import annotations

import math
import socket
import subprocess
import sys

import pytest
from test_cli import affect_cmd, affect_env, read_metrics, write_config


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.ddp
def test_two_node_torchrun_fit_metrics_equal_one_process_validate(tmp_path):
    cfg = write_config(tmp_path, model="facebehaviornet.FaceBehaviorNetModule", num_aus=17, multi_domain=True)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
                "--master-addr", "127.0.0.1", "--master-port", str(free_port())]  # fmt: skip
    fit = ["-m", "affect", "fit", "--config", str(cfg), "--trainer.accelerator", "cpu", "--trainer.devices", "1",
           "--trainer.num_nodes", "2", "--trainer.strategy", "ddp", "--trainer.max_epochs", "1",
           "--trainer.default_root_dir", str(tmp_path / "2node")]  # fmt: skip
    # one agent per "node"; node 0 hosts the rendezvous store, both write to one folder (a shared filesystem)
    nodes = [subprocess.Popen([*torchrun, "--node-rank", str(r), *fit], cwd=tmp_path, env=affect_env(), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for r in (0, 1)]  # fmt: skip
    try:
        logs = [p.communicate(timeout=240)[0] for p in nodes]
    finally:
        for p in nodes:
            if p.poll() is None:
                p.kill()
    for r, (p, log) in enumerate(zip(nodes, logs, strict=True)):
        assert p.returncode == 0, f"node {r}:\n{log[-3000:]}"
    assert "MEMBER: 2/2" in "".join(logs)  # Lightning saw a world of 2 (one process on each node)
    (ckpt,) = (tmp_path / "2node").glob("lightning_logs/version_0/checkpoints/last.ckpt")
    one = affect_cmd("validate", "--config", str(cfg), "--trainer.accelerator", "cpu", "--trainer.devices", "1",
                     "--ckpt_path", str(ckpt), "--trainer.default_root_dir", str(tmp_path / "one"), cwd=tmp_path)  # fmt: skip
    assert one.returncode == 0, one.stderr[-3000:]
    multi, single = read_metrics(tmp_path / "2node"), read_metrics(tmp_path / "one")
    keys = sorted(k for k in single if k.startswith("val/") and not k.endswith("loss"))
    assert len(keys) > 30 and "val/p_mtl" in keys
    for k in keys:
        if math.isnan(single[k]):
            assert math.isnan(multi[k]), k
        else:
            assert multi[k] == pytest.approx(single[k], abs=1e-5), k
