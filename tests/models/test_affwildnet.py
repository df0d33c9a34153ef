"""AffWildNet (paper Sec. V-A, Table II): shapes, the Table II rows, causality, landmarks, training."""

from __future__ import annotations

import sys

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from affect.losses import ccc_loss
from affect.models.affwildnet import AffWildNet, AffWildNetModule, SequenceRNN
from affect.models.affwildnet.torch_model import landmark_features
from affect.models.callbacks import SequenceMedianEvaluation
from affect.models.weights import WeightsFileError, load_weights

TINY = dict(backbone="test_resnet", fc_units=16, rnn_hidden=8, image_size=32)


@pytest.fixture(autouse=True)
def _one_thread():
    """The CI box is shared: one intra-op thread is much faster than oversubscribed ones."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def seq_batch(b: int = 2, t: int = 6, size: int = 32, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    frame_mask = torch.ones(b, t, dtype=torch.bool)
    frame_mask[-1, t - 2 :] = False  # trailing padding in the last sequence
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


def test_forward_shapes_sequence_and_frames() -> None:
    net = AffWildNet(**TINY)
    batch = seq_batch()
    assert net(_float(batch), batch["landmarks"])["va"].shape == (2, 6, 2)
    # a frame batch is a batch of one-frame sequences
    assert net(_float(batch)[:, 0], batch["landmarks"][:, 0])["va"].shape == (2, 2)
    # the FC takes the last pool + 2 x 68 landmark coordinates
    assert net.encoder.fc[0].in_features == net.encoder.last_dim + 136
    assert (
        isinstance(net.rnn.rnn, torch.nn.GRU) and net.rnn.rnn.num_layers == 2 and net.rnn.rnn.hidden_size == 8
    )


def test_table2_rows_are_constructor_settings() -> None:
    lstm = AffWildNet(**{**TINY, "rnn": "lstm", "use_landmarks": False})  # VGG-FACE-LSTM
    assert isinstance(lstm.rnn.rnn, torch.nn.LSTM) and lstm.encoder.fc[0].in_features == lstm.encoder.last_dim
    cnn = AffWildNet(**{**TINY, "rnn": "none", "use_landmarks": False, "fc_layers": 2})  # VGG-16 / VGG-FACE
    assert cnn.rnn is None and sum(isinstance(m, torch.nn.Linear) for m in cnn.encoder.fc) == 2
    res = AffWildNet(**{**TINY, "rnn": "none", "use_landmarks": False, "global_pool": True, "fc_units": 15})
    assert res.encoder.fc[0].in_features == 96  # ResNet: global average pool of the last tap
    x = _float(seq_batch())
    for net in (lstm, cnn, res):
        assert net(x)["va"].shape == (2, 6, 2)
    with pytest.raises(ValueError, match="rnn must be"):
        AffWildNet(**{**TINY, "rnn": "transformer"})


def test_causality_and_frame_independence() -> None:
    torch.manual_seed(0)
    batch = seq_batch()
    x, lm = _float(batch), batch["landmarks"]
    x2 = x.clone()
    x2[:, 3] = -x2[:, 3]  # change frame 3 only
    gru = AffWildNet(**TINY).eval()
    a, b = gru(x, lm)["va"], gru(x2, lm)["va"]
    torch.testing.assert_close(a[:, :3], b[:, :3])  # the GRU is causal: earlier frames unchanged
    assert not torch.allclose(a[:, 4:], b[:, 4:])  # later frames see the change (temporal context)
    cnn = AffWildNet(**{**TINY, "rnn": "none"}).eval()
    a, b = cnn(x, lm)["va"], cnn(x2, lm)["va"]
    torch.testing.assert_close(a[:, [0, 1, 2, 4, 5]], b[:, [0, 1, 2, 4, 5]])  # CNN-only: per frame


def test_landmarks_are_an_input() -> None:
    net = AffWildNet(**TINY).eval()
    batch = seq_batch()
    x = _float(batch)
    out = net(x, batch["landmarks"])["va"]
    assert not torch.allclose(out, net(x, batch["landmarks"].flip(-1))["va"])
    # an absent landmark set is fed as zeros (= the [-1, 1]-mapped centre of the crop, 0.5)
    mask = torch.zeros(2, 6, dtype=torch.bool)
    torch.testing.assert_close(
        net(x, batch["landmarks"], mask)["va"], net(x, torch.full_like(batch["landmarks"], 0.5))["va"]
    )
    with pytest.raises(ValueError, match="use_landmarks=True: pass landmarks"):
        net(x)
    with pytest.raises(ValueError, match=r"landmarks must be \[..., 68, 2\]"):
        net(x, torch.rand(2, 6, 5, 2))
    np.testing.assert_allclose(
        landmark_features(torch.tensor([[0.25, 0.75]] * 68)).numpy(), np.tile([-0.5, 0.5], 68)
    )


def test_sequence_rnn_dropout_is_first_layer_only() -> None:
    rnn = SequenceRNN(4, hidden_size=3, num_layers=2, dropout=0.2)
    assert rnn.rnn.dropout == 0.2  # PyTorch applies it to layer 1's output only (2 layers)
    assert SequenceRNN(4, 3, num_layers=1, dropout=0.2).rnn.dropout == 0.0
    with pytest.raises(ValueError, match="drop probability"):
        SequenceRNN(4, dropout=1.0)


def test_optimisation_reduces_ccc_loss_on_a_fixed_batch() -> None:
    torch.manual_seed(0)
    net = AffWildNet(**{**TINY, "dropout": 0.0})
    batch = seq_batch()
    x, m = _float(batch), batch["frame_mask"]
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        pred = net(x, batch["landmarks"])["va"]
        loss = ccc_loss(pred[m], batch["va"][m])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.1, losses


def test_load_weights_plain_lightning_and_errors(tmp_path) -> None:
    """A Lightning checkpoint of a module (``net.`` names) loads into the bare network, through the
    one safe weights reader (affect.models.weights)."""
    src, dst = AffWildNet(**TINY), AffWildNet(**TINY)
    torch.save(
        {"state_dict": {f"net.{k}": v for k, v in src.state_dict().items()}, "epoch": 3}, tmp_path / "a.ckpt"
    )
    load_weights(dst, str(tmp_path / "a.ckpt"), strict=True)
    for k, v in src.state_dict().items():
        torch.testing.assert_close(dst.state_dict()[k], v)
    partial = {k: v for k, v in src.state_dict().items() if not k.startswith("out.")}
    with pytest.raises(WeightsFileError, match=r"not in the file \['out.bias', 'out.weight'\]"):
        load_weights(dst, partial, strict=True)
    result = load_weights(dst, partial, strict=True, exclude=("out.",))
    assert "out.weight" not in result.loaded and result.skipped == []
    with pytest.raises(WeightsFileError, match="nope.ckpt does not exist"):
        load_weights(dst, str(tmp_path / "nope.ckpt"))


def test_lightning_fast_dev_run_with_sequence_median_callback() -> None:
    torch.manual_seed(0)
    module = AffWildNetModule(**TINY)
    train = DataLoader([seq_batch(seed=i) for i in range(2)], batch_size=None)
    val_batch = seq_batch(b=4, seed=9)
    val = DataLoader([val_batch], batch_size=None)
    trainer = L.Trainer(accelerator="cpu", fast_dev_run=1, enable_progress_bar=False, enable_model_summary=False,
                        logger=False, callbacks=[SequenceMedianEvaluation()])  # fmt: skip
    trainer.fit(module, train, val)
    metrics = trainer.callback_metrics
    assert {"train/loss", "val/loss", "val/va/ccc", "val/va_median/ccc", "val/va_median/ccc_v"} <= set(
        metrics
    )
    # the per-sequence-median CCC against an independent numpy computation on the same batch
    module.eval()
    with torch.no_grad():
        pred = module.forward_batch(val_batch)["va"]
    m = val_batch["frame_mask"]
    est = np.stack([np.median(pred[i][m[i]].numpy(), 0) for i in range(4)])
    ref = np.stack([np.median(val_batch["va"][i][m[i]].numpy(), 0) for i in range(4)])

    def ccc(x, y):
        return 2 * np.mean((x - x.mean()) * (y - y.mean())) / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)

    expected = np.mean([ccc(est[:, d], ref[:, d]) for d in range(2)])
    assert float(metrics["val/va_median/ccc"]) == pytest.approx(expected, abs=1e-4)
    # the callback adds the per-sequence medians to the predictions
    out = trainer.predict(module, DataLoader([val_batch], batch_size=None))[0]
    torch.testing.assert_close(out["va_median"], torch.from_numpy(est).float())
    assert module.hparams.fc_units == 16


def test_checkpoint_round_trip_and_cli_parsing(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", ["affect"])
    from lightning.pytorch.cli import LightningCLI

    module = AffWildNetModule(**{**TINY, "rnn": "lstm", "use_landmarks": False})
    trainer = L.Trainer(accelerator="cpu", max_steps=0, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.strategy.connect(module)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    loaded = AffWildNetModule.load_from_checkpoint(tmp_path / "m.ckpt")
    assert isinstance(loaded.net.rnn.rnn, torch.nn.LSTM) and not loaded.net.encoder.use_landmarks
    for k, v in module.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v)
    # typed constructor arguments parse through LightningCLI (what `affect fit --config` uses)
    cli = LightningCLI(
        AffWildNetModule, run=False, save_config_callback=None,
        args=["--model.backbone=test_resnet", "--model.fc_units=8", "--model.rnn=none", "--model.image_size=32",
              "--model.rnn_hidden=4", "--trainer.accelerator=cpu", "--trainer.logger=false"],
    )  # fmt: skip
    assert cli.model.net.rnn is None and cli.model.net.encoder.fc_dim == 8
