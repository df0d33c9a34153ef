"""MT-VGG-GRU and A/V-MT-VGG-GRU (paper Sec. VI-A.2-3, Fig. 3, Table IV)."""

from __future__ import annotations

import sys

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from affect.losses import MultiTaskLoss
from affect.models.mt_vgg.torch_model import MTVGG
from affect.models.mt_vgg_gru import AVMTVGGGRU, MTVGGGRU, AVMTVGGGRUModule, MTVGGGRUModule
from affect.models.weights import WeightsFileError

TINY = dict(backbone="test_resnet", hidden=16, rnn_hidden=8, image_size=32)
TINY_AV = {**TINY, "audio_size": 32}


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def seq_batch(b: int = 2, t: int = 6, size: int = 32, seed: int = 0, num_aus: int = 8) -> dict:
    g = torch.Generator().manual_seed(seed)
    frame_mask = torch.ones(b, t, dtype=torch.bool)
    frame_mask[-1, t - 2 :] = False
    expr = torch.randint(0, 7, (b, t), generator=g)
    expr[0, 0] = -1  # an unlabelled frame
    au_mask = torch.rand(b, t, num_aus, generator=g) > 0.2
    return {
        "image": torch.randint(0, 256, (b, t, 3, size, size), generator=g, dtype=torch.uint8),
        "audio": torch.rand(b, t, 1, size, size, generator=g) * 2 - 1,
        "va": torch.rand(b, t, 2, generator=g) * 2 - 1,
        "va_mask": torch.ones(b, t, 2, dtype=torch.bool),
        "expr": expr,
        "au": (torch.rand(b, t, num_aus, generator=g) > 0.5).float(),
        "au_mask": au_mask,
        "frame_mask": frame_mask,
    }


def _float(batch: dict) -> torch.Tensor:
    return batch["image"].float() / 127.5 - 1


def test_mt_vgg_gru_shapes_and_structure() -> None:
    net = MTVGGGRU(**TINY)
    out = net(_float(seq_batch()))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "va": (2, 6, 2),
        "expr": (2, 6, 7),
        "au": (2, 6, 8),
    }
    assert net.rnn.rnn.input_size == 16 and net.rnn.rnn.num_layers == 2  # GRU on the first FC
    # MT-VGG's second FC and output layer are not part of MT-VGG-GRU (no unused parameters)
    assert isinstance(net.cnn.fc2, torch.nn.Identity) and isinstance(net.cnn.head, torch.nn.Identity)
    stream = MTVGGGRU(**TINY, output_layer=False)
    assert stream.head is None and stream(_float(seq_batch()))["features"].shape == (2, 6, 8)
    with pytest.raises(ValueError, match=r"sequence batch \[B, T, C, H, W\]"):
        net(_float(seq_batch())[:, 0])


def test_mt_vgg_gru_initialised_from_mt_vgg_at_fit(tmp_path) -> None:
    mtvgg = MTVGG(backbone="test_resnet", hidden=16, image_size=32)
    torch.save(
        {"state_dict": {f"net.{k}": v for k, v in mtvgg.state_dict().items()}}, tmp_path / "mtvgg.ckpt"
    )
    module = MTVGGGRUModule(**TINY, mtvgg_checkpoint=str(tmp_path / "mtvgg.ckpt"))
    src = mtvgg.state_dict()
    assert not torch.equal(module.net.cnn.state_dict()["fc1.weight"], src["fc1.weight"])  # not in __init__
    module.setup("fit")
    for k, v in module.net.cnn.state_dict().items():
        torch.testing.assert_close(v, src[k])  # conv layers and the first FC
    # the audio stream: a 1-channel first conv initialised from the RGB one by summing over channels
    audio = MTVGGGRUModule(**TINY, input_key="audio", mtvgg_checkpoint=str(tmp_path / "mtvgg.ckpt"))
    audio.setup("fit")
    first = [k for k, v in src.items() if v.dim() == 4][0]
    torch.testing.assert_close(audio.net.cnn.state_dict()[first], src[first].sum(1, keepdim=True))
    assert audio.net.cnn.state_dict()[first].shape[1] == 1


def test_av_mt_vgg_gru_shapes_structure_and_errors() -> None:
    net = AVMTVGGGRU(**TINY_AV)
    batch = seq_batch()
    out = net(_float(batch), batch["audio"])
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "va": (2, 6, 2),
        "expr": (2, 6, 7),
        "au": (2, 6, 8),
    }
    assert net.fusion.rnn.input_size == 16 and net.fusion.rnn.num_layers == 2  # 2 x 8 concatenated
    assert net.visual.head is None and net.audio.head is None
    first_audio = [v for v in net.audio.cnn.state_dict().values() if v.dim() == 4][0]
    assert first_audio.shape[1] == 1
    rep = AVMTVGGGRU(**TINY_AV, audio_in_chans=3)
    assert rep(_float(batch), batch["audio"])["va"].shape == (2, 6, 2)
    with pytest.raises(ValueError, match=r"audio must be spectrogram images \[B, T, 1, H, W\]"):
        net(_float(batch), batch["audio"].expand(-1, -1, 3, -1, -1))
    with pytest.raises(ValueError, match=r"must be 32x32 \(audio_size\), found \(16, 16\)"):
        net(_float(batch), batch["audio"][..., :16, :16])
    with pytest.raises(ValueError, match="must match images"):
        net(_float(batch), batch["audio"][:, :4])
    with pytest.raises(ValueError, match="audio_in_chans must be 1 or 3"):
        AVMTVGGGRU(**TINY_AV, audio_in_chans=2)


def test_av_phase_two_loads_the_streams_at_fit(tmp_path) -> None:
    visual = MTVGGGRU(**TINY)
    audio = MTVGGGRU(**TINY, in_chans=1, input_key="audio")
    torch.save({"state_dict": {f"net.{k}": v for k, v in visual.state_dict().items()}}, tmp_path / "v.ckpt")
    torch.save(audio.state_dict(), tmp_path / "a.pt")
    module = AVMTVGGGRUModule(
        **TINY_AV, visual_checkpoint=str(tmp_path / "v.ckpt"), audio_checkpoint=str(tmp_path / "a.pt")
    )
    module.setup("fit")
    for src, dst in ((visual, module.net.visual), (audio, module.net.audio)):
        got = dst.state_dict()
        assert not any(k.startswith("head.") for k in got)
        for k, v in src.state_dict().items():
            if not k.startswith("head."):
                torch.testing.assert_close(got[k], v)
    # an MT-VGG checkpoint is not a stream checkpoint (other names, no GRU): an error naming key and file
    torch.save({"state_dict": {f"net.{k}": v for k, v in MTVGG(backbone="test_resnet", hidden=16,
                                                                image_size=32).state_dict().items()}},
               tmp_path / "mtvgg.ckpt")  # fmt: skip
    wrong = AVMTVGGGRUModule(**TINY_AV, visual_checkpoint=str(tmp_path / "mtvgg.ckpt"))
    with pytest.raises(WeightsFileError, match=r"visual_checkpoint: no tensor of .*mtvgg\.ckpt fits MTVGGGRU"):
        wrong.setup("fit")


@pytest.mark.parametrize("av", [False, True])
def test_optimisation_reduces_multitask_loss(av: bool) -> None:
    torch.manual_seed(0)
    net = AVMTVGGGRU(**TINY_AV, dropout=0.0) if av else MTVGGGRU(**TINY, dropout=0.0)
    loss_fn = MultiTaskLoss(relatedness=None, au_set=(1, 2, 4, 6, 12, 15, 20, 25))
    batch = seq_batch()
    x = _float(batch)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(8):
        out = net(x, batch["audio"]) if av else net(x)
        terms = loss_fn(out, batch)
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
        losses.append(terms["loss"].item())
    assert set(terms) >= {"va", "expr", "au"}
    assert losses[-1] < losses[0] - 0.2, losses


@pytest.mark.parametrize(
    "module",
    [
        lambda: MTVGGGRUModule(**TINY),
        lambda: MTVGGGRUModule(**TINY, input_key="audio"),
        lambda: AVMTVGGGRUModule(**TINY_AV),
    ],
)
def test_lightning_fast_dev_run(module) -> None:
    torch.manual_seed(0)
    model = module()
    train = DataLoader([seq_batch(seed=i) for i in range(2)], batch_size=None)
    val = DataLoader([seq_batch(b=3, seed=5)], batch_size=None)
    trainer = L.Trainer(accelerator="cpu", fast_dev_run=1, enable_progress_bar=False, enable_model_summary=False,
                        logger=False)  # fmt: skip
    trainer.fit(model, train, val)
    assert {"train/loss", "val/va/ccc", "val/expr/f1", "val/au/f1", "val/p_mtl"} <= set(
        trainer.callback_metrics
    )
    pred = model.predict_step(seq_batch(b=3, seed=5), 0)
    assert pred["va"].shape == (3, 6, 2) and pred["expr"].shape == (3, 6, 7) and pred["au"].shape == (3, 6, 8)
    torch.testing.assert_close(pred["expr"].sum(-1), torch.ones(3, 6))


def test_module_input_errors() -> None:
    with pytest.raises(ValueError, match="input_key must be"):
        MTVGGGRUModule(**TINY, input_key="video")
    batch = seq_batch()
    del batch["audio"]
    with pytest.raises(KeyError, match="AVMTVGGGRU reads batch\\['audio'\\], which this batch lacks"):
        AVMTVGGGRUModule(**TINY_AV).forward_batch(batch)


def test_cli_parses_the_modules(monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["affect"])
    from lightning.pytorch import LightningModule
    from lightning.pytorch.cli import LightningCLI

    for cls, extra in ((MTVGGGRUModule, ["--model.init_args.input_key=audio"]),
                       (AVMTVGGGRUModule, ["--model.init_args.audio_size=32"])):  # fmt: skip
        args = [f"--model.class_path={cls.__module__}.{cls.__name__}", "--model.init_args.backbone=test_resnet",
                "--model.init_args.hidden=8", "--model.init_args.rnn_hidden=4", "--model.init_args.image_size=32",
                "--trainer.accelerator=cpu", "--trainer.logger=false", *extra]  # fmt: skip
        cli = LightningCLI(
            LightningModule, subclass_mode_model=True, run=False, save_config_callback=None, args=args
        )
        assert isinstance(cli.model, cls)
