"""CNN-1RNN, CNN-3RNN and model-level fusion (paper Sec. V-B, Fig. 2, Table III)."""

from __future__ import annotations

import sys

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from affect.losses import ccc_loss
from affect.models.callbacks import SequenceMedianEvaluation
from affect.models.cnn_rnn import CNNRNN, CNNRNNModule, ModelLevelFusion, ModelLevelFusionModule
from affect.models.weights import WeightsFileError

NODES = ["layer1", "layer4"]  # test_resnet: a low-level tap (stands for the 2nd pool) and the last tap
TINY = dict(backbone="test_resnet", backbone_nodes=NODES, fc_units=16, rnn_hidden=8, image_size=32)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def seq_batch(b: int = 2, t: int = 6, size: int = 32, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    frame_mask = torch.ones(b, t, dtype=torch.bool)
    frame_mask[-1, t - 2 :] = False
    return {
        "image": torch.randint(0, 256, (b, t, 3, size, size), generator=g, dtype=torch.uint8),
        "landmarks": torch.rand(b, t, 68, 2, generator=g),
        "landmarks_mask": torch.ones(b, t, dtype=torch.bool),
        "va": torch.rand(b, t, 2, generator=g) * 2 - 1,
        "va_mask": torch.ones(b, t, 2, dtype=torch.bool),
        "frame_mask": frame_mask,
    }


def _float(batch: dict) -> torch.Tensor:
    return batch["image"].float() / 127.5 - 1


def test_cnn_3rnn_structure() -> None:
    net = CNNRNN("3rnn", **TINY)
    enc = net.encoder
    # RNN_1 <- FC (after the landmark concat), RNN_2 <- last pool (before it), RNN_3 <- 2nd pool
    assert net.rnns["fc"].rnn.input_size == 16
    assert net.rnns["last"].rnn.input_size == enc.last_dim == 96 * 1 * 1
    assert net.rnns["low"].rnn.input_size == enc.low_dim == 32 * 8 * 8
    assert enc.fc[0].in_features == enc.last_dim + 136
    assert all(r.rnn.num_layers == 2 and r.rnn.hidden_size == 8 for r in net.rnns.values())
    assert net.out.in_features == 24 == net.rnn_out_dim
    batch = seq_batch()
    assert net.rnn_features(_float(batch), batch["landmarks"]).shape == (2, 6, 24)
    assert net(_float(batch), batch["landmarks"])["va"].shape == (2, 6, 2)


def test_cnn_1rnn_structure_and_low_pool_option() -> None:
    net = CNNRNN("1rnn", **TINY)
    assert list(net.rnns) == ["all"] and net.rnns["all"].rnn.input_size == 32 * 8 * 8 + 96 + 16
    assert net.rnn_out_dim == 8 and net.out.in_features == 8
    pooled = CNNRNN("1rnn", **TINY, low_pool_size=2)
    assert pooled.encoder.low_dim == 32 * 2 * 2 and pooled.rnns["all"].rnn.input_size == 128 + 96 + 16
    batch = seq_batch()
    assert pooled(_float(batch), batch["landmarks"])["va"].shape == (2, 6, 2)


def test_rnn_dropout_reading_and_argument_errors() -> None:
    net = CNNRNN("3rnn", **TINY)
    assert net.rnns["fc"].rnn.dropout == pytest.approx(0.2)  # the paper's 0.8 read as keep probability
    assert CNNRNN("1rnn", **TINY, rnn_dropout=0.8).rnns["all"].rnn.dropout == pytest.approx(0.8)
    with pytest.raises(ValueError, match="mode must be"):
        CNNRNN("2rnn", **TINY)
    with pytest.raises(ValueError, match=r"only the VGG-16 layouts \(vgg16, vggface\) have a default"):
        CNNRNN("3rnn", backbone="test_resnet", image_size=32)
    with pytest.raises(ValueError, match="must name 2 taps"):
        CNNRNN("3rnn", **{**TINY, "backbone_nodes": ["layer4"]})


@pytest.mark.parametrize("fusion", ["rnn", "fc"])
def test_model_level_fusion_structure(fusion: str) -> None:
    net = ModelLevelFusion(fusion, fusion_units=5, **TINY)
    if fusion == "rnn":
        assert (
            net.fuse.rnn.input_size == 8 + 24
            and net.fuse.rnn.num_layers == 1
            and net.fuse.rnn.hidden_size == 5
        )
    else:
        assert net.fuse[0].in_features == 32 and net.fuse[0].out_features == 5
    assert isinstance(net.one_rnn.out, torch.nn.Identity) and isinstance(net.three_rnn.out, torch.nn.Identity)
    batch = seq_batch()
    assert net(_float(batch), batch["landmarks"])["va"].shape == (2, 6, 2)
    with pytest.raises(ValueError, match="fusion must be"):
        ModelLevelFusion("mean", **TINY)


def test_fusion_initialised_from_the_two_networks_at_fit(tmp_path) -> None:
    one, three = CNNRNN("1rnn", **TINY), CNNRNN("3rnn", **TINY)
    torch.save(one.state_dict(), tmp_path / "one.pt")  # plain state dict
    torch.save(
        {"state_dict": {f"net.{k}": v for k, v in three.state_dict().items()}}, tmp_path / "three.ckpt"
    )
    module = ModelLevelFusionModule(
        fusion="rnn",
        **TINY,
        one_rnn_checkpoint=str(tmp_path / "one.pt"),
        three_rnn_checkpoint=str(tmp_path / "three.ckpt"),
    )
    net = module.net
    key = "encoder.fc.0.weight"
    assert not torch.equal(net.one_rnn.state_dict()[key], one.state_dict()[key])  # nothing read in __init__
    module.setup("validate")
    assert not torch.equal(net.one_rnn.state_dict()[key], one.state_dict()[key])  # nor for evaluation
    module.setup("fit")
    for src, dst in ((one, net.one_rnn), (three, net.three_rnn)):
        got = dst.state_dict()
        for k, v in src.state_dict().items():
            if not k.startswith("out."):
                torch.testing.assert_close(got[k], v)
    # a branch checkpoint of the other kind does not fit (strict): an error naming the key and file
    swapped = ModelLevelFusionModule(fusion="rnn", **TINY, one_rnn_checkpoint=str(tmp_path / "three.ckpt"))
    with pytest.raises(WeightsFileError, match=r"one_rnn_checkpoint: .*three\.ckpt does not fit CNNRNN"):
        swapped.setup("fit")


@pytest.mark.parametrize("make", [lambda: CNNRNN("3rnn", **TINY, dropout=0.0, rnn_dropout=0.0),
                                  lambda: CNNRNN("1rnn", **TINY, dropout=0.0, rnn_dropout=0.0, low_pool_size=2),
                                  lambda: ModelLevelFusion("rnn", **TINY, dropout=0.0, rnn_dropout=0.0)])  # fmt: skip
def test_optimisation_reduces_ccc_loss(make) -> None:
    torch.manual_seed(0)
    net = make()
    batch = seq_batch()
    x, m = _float(batch), batch["frame_mask"]
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(8):
        loss = ccc_loss(net(x, batch["landmarks"])["va"][m], batch["va"][m])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.1, losses


@pytest.mark.parametrize(
    "module",
    [
        lambda: CNNRNNModule(mode="3rnn", **TINY),
        lambda: ModelLevelFusionModule(fusion="fc", **TINY),
    ],
)
def test_lightning_fast_dev_run(module) -> None:
    torch.manual_seed(0)
    model = module()
    train = DataLoader([seq_batch(seed=i) for i in range(2)], batch_size=None)
    val = DataLoader([seq_batch(b=3, seed=7)], batch_size=None)
    trainer = L.Trainer(accelerator="cpu", fast_dev_run=1, enable_progress_bar=False, enable_model_summary=False,
                        logger=False, callbacks=[SequenceMedianEvaluation()])  # fmt: skip
    trainer.fit(model, train, val)
    assert {"train/loss", "val/va/ccc", "val/va_median/ccc", "val/va_median/mse"} <= set(
        trainer.callback_metrics
    )
    pred = trainer.predict(model, DataLoader([seq_batch(b=3, seed=7)], batch_size=None))[0]
    assert pred["va"].shape == (3, 6, 2) and pred["va_median"].shape == (3, 2)


def test_cli_parses_the_modules(monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["affect"])
    from lightning.pytorch import LightningModule
    from lightning.pytorch.cli import LightningCLI

    for cls, extra in (
        (CNNRNNModule, ["--model.init_args.mode=1rnn"]),
        (ModelLevelFusionModule, ["--model.init_args.fusion=fc"]),
    ):
        args = [f"--model.class_path={cls.__module__}.{cls.__name__}", "--model.init_args.backbone=test_resnet",
                "--model.init_args.backbone_nodes=[layer1, layer4]", "--model.init_args.fc_units=8",
                "--model.init_args.rnn_hidden=4", "--model.init_args.image_size=32",
                "--trainer.accelerator=cpu", "--trainer.logger=false", *extra]  # fmt: skip
        cli = LightningCLI(
            LightningModule, subclass_mode_model=True, run=False, save_config_callback=None, args=args
        )
        assert isinstance(cli.model, cls) and cli.model.hparams.backbone_nodes == ["layer1", "layer4"]


@pytest.mark.slow
def test_paper_size_vgg_feature_dims() -> None:
    """VGG-FACE layout at 96x96 (Fig. 2): 2nd pool [128, 24, 24], last pool [512, 3, 3], FC 4096."""
    net = CNNRNN("1rnn")
    enc = net.encoder
    assert (enc.low_dim, enc.last_dim, enc.fc_dim) == (128 * 24 * 24, 512 * 3 * 3, 4096)
    assert enc.fc[0].in_features == 4608 + 136
    assert net.rnns["all"].rnn.input_size == 73728 + 4608 + 4096
    net.eval()
    with torch.no_grad():
        out = net(torch.zeros(1, 2, 3, 96, 96), torch.rand(1, 2, 68, 2))
    assert out["va"].shape == (1, 2, 2)
