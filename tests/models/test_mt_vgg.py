"""MT-VGG (Sec. VI-A.1): the plain network, the shared Lightning logic (affect.models.multitask) and
the thin MTVGGModule, on synthetic frames from ``tests/helpers/toy_datamodule.py``."""

from __future__ import annotations

import math

import lightning as L
import numpy as np
import pytest
import torch
from helpers.toy_datamodule import FrameDictDataset, ToyDataModule, make_frames, np_ccc
from helpers.toy_datamodule import tiny_trainer as trainer
from sklearn.metrics import accuracy_score, f1_score
from torch.utils.data import DataLoader

from affect.labels import EXPR_CLASSES
from affect.losses import MultiTaskLoss
from affect.models.affwildnet import AffWildNet
from affect.models.backbones import VGGFACE_CONV_INDEX
from affect.models.batching import concat_batches, normalise_images
from affect.models.callbacks import EvaluationFigures
from affect.models.mt_vgg import ABAW2020_AU_SET, MTVGG, MTVGGModule, MultiTaskHead
from affect.models.multitask import MultiTaskModule
from affect.models.optim import adam_with_decay
from affect.models.weights import WeightsFileError, load_weights

TINY = {"backbone": "test_resnet", "hidden": 32}


def test_shapes_at_96_and_first_fc_features():
    net = MTVGG(**TINY, image_size=96).eval()
    x = torch.rand(3, 3, 96, 96) * 2 - 1
    out = net(x, return_features=True)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "va": (3, 2),
        "expr": (3, 7),
        "au": (3, 8),
        "features": (3, 32),
    }
    assert (out["features"] >= 0).all()  # after the ReLU
    seq = net.embed(torch.stack([x, x.flip(0)]))  # [B=2, T=3, ...] through the CNN frame by frame
    assert seq.shape == (2, 3, 32)
    torch.testing.assert_close(seq[0], out["features"])
    torch.testing.assert_close(seq[1], out["features"].flip(0))


def test_vgg16_layout_parameter_count():
    """VGG-FACE conv/pool (14,714,688) + FC 4608->4096 + FC 4096->4096 + one output layer 4096->2+7+8."""
    net = MTVGG("vgg16", hidden=4096, image_size=96)
    expected = 14_714_688 + (512 * 3 * 3 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * 17 + 17)
    assert sum(p.numel() for p in net.parameters()) == expected
    assert net.head.linear.out_features == 2 + 7 + len(ABAW2020_AU_SET)


def test_head_is_one_linear_layer_split():
    head = MultiTaskHead(5, num_aus=3)
    x = torch.randn(4, 5)
    full = head.linear(x)
    out = head(x)
    torch.testing.assert_close(torch.cat([out["va"], out["expr"], out["au"]], 1), full)
    assert [out[k].shape[1] for k in ("va", "expr", "au")] == [2, 7, 3]


def test_known_loss_then_overfits_8_samples():
    """With a zeroed output layer the eq. 4-6 loss is known: CE = log 7, BCE = log 2, CCC loss = 1.
    Training on 8 fixed frames (96x96) must then drive it down."""
    torch.manual_seed(0)
    batch = make_frames(8, image_size=96, num_aus=8, seed=3)
    net = MTVGG(backbone="test_efficientnet", hidden=64, dropout=0.0, image_size=96)  # the cheapest at 96
    torch.nn.init.zeros_(net.head.linear.weight)
    torch.nn.init.zeros_(net.head.linear.bias)
    loss_fn = MultiTaskLoss(relatedness=None, au_set=ABAW2020_AU_SET)
    x = normalise_images(batch["image"])
    first = loss_fn(net(x), batch)
    assert first["expr"].item() == pytest.approx(math.log(7), abs=1e-5)
    assert first["au"].item() == pytest.approx(math.log(2), abs=1e-5)
    assert first["va"].item() == pytest.approx(1.0, abs=1e-5)
    assert first["loss"].item() == pytest.approx(math.log(7) + math.log(2) + 1.0, abs=1e-4)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    for _ in range(15):
        terms = loss_fn(net(x), batch)
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
    last = loss_fn(net(x), batch)
    assert last["loss"].item() < 0.5 * first["loss"].item()
    for k in ("expr", "au", "va"):
        assert last[k].item() < first[k].item()


def test_normalise_images_and_dtype_error():
    x = torch.tensor([0, 127, 255], dtype=torch.uint8)
    torch.testing.assert_close(normalise_images(x), torch.tensor([-1.0, 127 / 127.5 - 1, 1.0]))
    with pytest.raises(TypeError, match="images must be uint8.*found torch.float32"):
        normalise_images(x.float())


def test_concat_batches_fills_and_pads():
    a = make_frames(3, 8, 4, seed=0)
    b = {k: v for k, v in make_frames(2, 8, 4, seed=1).items() if k not in ("va", "va_mask")}
    out = concat_batches({"va": a, "au": b})
    assert out["image"].shape == (5, 3, 8, 8) and out["corpus"] == ["toy"] * 5
    assert out["va_mask"][3:].sum() == 0 and out["va_mask"][:3].all()
    torch.testing.assert_close(out["va"][:3], a["va"])
    # sequences of different length: padded on time, padding masked out
    s1 = {"image": torch.zeros(1, 4, 3, 2, 2, dtype=torch.uint8), "expr": torch.ones(1, 4, dtype=torch.long),
          "frame_mask": torch.ones(1, 4, dtype=torch.bool)}  # fmt: skip
    s2 = {
        "image": torch.zeros(2, 2, 3, 2, 2, dtype=torch.uint8),
        "frame_mask": torch.ones(2, 2, dtype=torch.bool),
    }
    seq = concat_batches({"expr": s1, "va": s2})
    assert seq["image"].shape == (3, 4, 3, 2, 2)
    assert seq["frame_mask"].sum(1).tolist() == [4, 2, 2]
    assert seq["expr"].tolist() == [[1, 1, 1, 1], [-1, -1, -1, -1], [-1, -1, -1, -1]]
    with pytest.raises(
        ValueError, match=r"key 'landmarks' is in the \['va'\] batches but missing from \['au'\]"
    ):
        concat_batches({"va": {**a, "landmarks": torch.zeros(3, 68, 2)}, "au": b})


def test_module_argument_errors():
    with pytest.raises(ValueError, match="tasks must be a non-empty subset"):
        MTVGGModule(**TINY, image_size=32, tasks=["va", "pain"])
    coupled = MultiTaskLoss(au_set=ABAW2020_AU_SET, distribution_matching=True)
    with pytest.raises(ValueError, match="tasks must contain 'expr' and 'au'"):
        MTVGGModule(**TINY, image_size=32, tasks=["va"], loss=coupled)
    with pytest.raises(ValueError, match=r"loss.au_set \[1, 2, 4, 5, 6, 7, 9,.*\] differs from the model's au_set \[1, 2, 4, 6, 12"):
        MTVGGModule(**TINY, image_size=32, loss=MultiTaskLoss(relatedness=None))  # the 17 AUs of AU_SET
    with pytest.raises(TypeError, match="MultiTaskModule has no default network: pass net="):
        MultiTaskModule()


def test_module_is_composed_of_net_and_loss_parts():
    """The shared task module takes any network and loss; an architecture's module only builds its net."""
    net = MTVGG(**TINY, image_size=32)
    loss = MultiTaskLoss(au_set=ABAW2020_AU_SET, relatedness=None, lambda_va=2.0)
    module = MultiTaskModule(net=net, loss=loss, au_set=ABAW2020_AU_SET, image_size=32)
    assert module.net is net and module.loss_fn is loss
    module.eval()
    assert "net" not in module.hparams and "loss" not in module.hparams  # parts are weights, not settings
    batch = make_frames(4, 32, 8, seed=2)
    out = module.forward_batch(batch)
    with torch.no_grad():
        torch.testing.assert_close(out["va"], net(normalise_images(batch["image"]))["va"])
    # the default loss of an architecture's module is eq. 7 on its AU set, without coupling
    default = MTVGGModule(**TINY, image_size=32).loss_fn
    assert tuple(default.au_set) == ABAW2020_AU_SET and not default.coupled
    with pytest.raises(ValueError, match=r"predicts only \['va'\]"):
        MultiTaskModule(net=AffWildNet(backbone="test_resnet", fc_units=8, rnn_hidden=4, image_size=32))


def test_lr_decays_exponentially_after_n_epochs():
    module = MTVGGModule(**TINY, image_size=32, lr=1e-4, lr_decay_after=2, lr_decay_gamma=0.5)
    sched = module.configure_optimizers()["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(5):
        lrs.append(sched.get_last_lr()[0])
        sched.optimizer.step()
        sched.step()
    np.testing.assert_allclose(lrs, [1e-4, 1e-4, 5e-5, 2.5e-5, 1.25e-5])
    assert isinstance(MTVGGModule(**TINY, image_size=32).configure_optimizers(), torch.optim.Adam)


def test_cosine_schedule_anneals_to_zero_over_the_fit(tmp_path):
    dm = ToyDataModule(num_train=16, num_val=4, batch_size=4, image_size=32, num_aus=8)
    module = MTVGGModule(**TINY, image_size=32, lr=1e-3, lr_schedule="cosine")
    seen = []

    class Record(L.Callback):
        def on_train_batch_start(self, trainer, *args):
            seen.append(trainer.optimizers[0].param_groups[0]["lr"])

    tr = trainer(tmp_path, max_epochs=2, limit_val_batches=0, callbacks=[Record()])
    tr.fit(module, dm)
    steps = 2 * 4  # 2 epochs of 16 / 4 batches
    np.testing.assert_allclose(seen, [1e-3 * 0.5 * (1 + np.cos(np.pi * s / steps)) for s in range(steps)], rtol=1e-6)
    with pytest.raises(ValueError, match="no step decay"):
        adam_with_decay(module.parameters(), 1e-3, decay_after=1, cosine_steps=steps)


def test_module_trains_logs_and_metrics_match_references(tmp_path):
    torch.manual_seed(0)
    dm = ToyDataModule(num_train=16, num_val=12, batch_size=4, image_size=32, num_aus=8)
    module = MTVGGModule(**TINY, image_size=32, lr=1e-3)
    tr = trainer(tmp_path, max_steps=4, limit_val_batches=3, callbacks=[EvaluationFigures()])
    tr.fit(module, dm)
    names = set(tr.callback_metrics)
    for stage in ("train", "val"):
        for name in ("va/ccc", "va/ccc_v", "va/ccc_a", "va/mse", "expr/f1", "expr/acc", "expr/diag", "expr/e_total",
                     "au/f1", "au/acc", "au/afa", "au/f1_AU12", "au/f1_AU25", "p_mtl", "loss", "va/loss"):  # fmt: skip
            assert f"{stage}/{name}" in names, f"{stage}/{name} not logged; have {sorted(names)}"
    assert not any("dataloader_idx" in n for n in names)
    media = sorted(p.name for p in (tmp_path / "lightning_logs" / "version_0" / "media").iterdir())
    assert [m.split("_step")[0] for m in media] == ["val_au_f1_per_au", "val_expr_confmat", "val_va_hist"]

    # the logged validation metrics equal independent references on the model's predictions
    val = tr.validate(module, datamodule=dm, verbose=False)[0]
    module.eval()
    data = make_frames(12, 32, 8, seed=1)
    with torch.no_grad():
        out = module.forward_batch(data)
    va, expr = out["va"].numpy(), out["expr"].argmax(1).numpy()
    assert val["val/va/ccc_v"] == pytest.approx(np_ccc(va[:, 0], data["va"][:, 0].numpy()), abs=1e-5)
    assert val["val/va/ccc_a"] == pytest.approx(np_ccc(va[:, 1], data["va"][:, 1].numpy()), abs=1e-5)
    assert val["val/expr/acc"] == pytest.approx(accuracy_score(data["expr"], expr), abs=1e-6)
    assert val["val/expr/f1"] == pytest.approx(
        f1_score(data["expr"], expr, average="macro", labels=range(7), zero_division=0), abs=1e-6
    )
    au_pred = (out["au"].sigmoid() > 0.5).numpy()
    f1_au12 = f1_score(
        data["au"][:, ABAW2020_AU_SET.index(12)], au_pred[:, ABAW2020_AU_SET.index(12)], zero_division=0
    )
    assert val["val/au/f1_AU12"] == pytest.approx(f1_au12, abs=1e-6)
    assert val["val/p_mtl"] == pytest.approx(
        val["val/va/ccc"] + val["val/expr/f1"] + val["val/au/f1"], abs=1e-6
    )


def test_checkpoint_holds_what_predict_needs(tmp_path):
    torch.manual_seed(0)
    dm = ToyDataModule(num_train=8, num_val=8, batch_size=4, image_size=32, num_aus=8)
    module = MTVGGModule(**TINY, image_size=32, tasks=["va", "expr"])
    tr = trainer(tmp_path, max_steps=2, limit_val_batches=1)
    tr.fit(module, dm)
    path = tmp_path / "m.ckpt"
    tr.save_checkpoint(path)
    ckpt = torch.load(path, weights_only=True)  # plain types only: opens with the safe reader
    assert ckpt["affect"] == {
        "expr_classes": list(EXPR_CLASSES), "au_set": list(ABAW2020_AU_SET), "tasks": ["va", "expr"],
        "image_size": 32, "normalisation": ckpt["affect"]["normalisation"], "format": 2,
    }  # fmt: skip
    assert not (tmp_path / "lightning_logs" / "version_0" / "media").exists()  # figures only with the callback
    assert "127.5" in ckpt["affect"]["normalisation"]
    assert ckpt["hyper_parameters"]["backbone"] == "test_resnet"
    loaded = MTVGGModule.load_from_checkpoint(path).eval()
    module.eval()
    batch = make_frames(4, 32, 8, seed=5)
    loader = DataLoader(FrameDictDataset(batch), batch_size=4)
    preds = trainer(tmp_path).predict(loaded, loader)
    assert sorted(preds[0]) == ["corpus", "expr", "frame", "va", "video"]  # only the trained tasks
    torch.testing.assert_close(preds[0]["expr"].sum(1), torch.ones(4))
    with torch.no_grad():
        torch.testing.assert_close(preds[0]["expr"], module.forward_batch(batch)["expr"].softmax(1))
        torch.testing.assert_close(preds[0]["va"], module.forward_batch(batch)["va"])


def test_single_task_logs_only_its_task(tmp_path):
    dm = ToyDataModule(num_train=8, num_val=8, batch_size=4, image_size=32, num_aus=8)
    module = MTVGGModule(**TINY, image_size=32, tasks=["va"])
    tr = trainer(tmp_path, max_steps=2, limit_val_batches=1)
    tr.fit(module, dm)
    names = set(tr.callback_metrics)
    assert "val/va/ccc" in names and "train/va/loss" in names
    assert not [n for n in names if "/expr/" in n or "/au/" in n or "p_mtl" in n]


def _lightning_checkpoint(module: MTVGGModule, path) -> None:
    """What ``Trainer.save_checkpoint`` writes, minus the trainer state."""
    import lightning

    ckpt = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
            "pytorch-lightning_version": lightning.__version__}  # fmt: skip
    module.on_save_checkpoint(ckpt)
    torch.save(ckpt, path)


def test_init_checkpoint_loads_matching_weights_at_fit_only(tmp_path):
    source = MTVGGModule(**TINY, image_size=32)
    path = tmp_path / "pretrained.ckpt"
    _lightning_checkpoint(source, path)
    fc1 = "net.fc1.weight"

    other_aus = MTVGGModule(**TINY, image_size=32, au_set=[1, 2, 4], init_checkpoint=str(path))
    assert not torch.equal(other_aus.state_dict()[fc1], source.state_dict()[fc1])  # nothing read in __init__
    other_aus.setup("validate")
    assert not torch.equal(other_aus.state_dict()[fc1], source.state_dict()[fc1])  # nor for evaluation
    with pytest.warns(UserWarning, match=r"init_checkpoint: 2 tensors of .*pretrained.ckpt not loaded .*net\.head\.linear\.weight"):
        other_aus.setup("fit")  # the 2+7+3 output layer cannot take the 2+7+8 one
    for name, value in source.state_dict().items():
        if not name.startswith("net.head."):
            torch.testing.assert_close(other_aus.state_dict()[name], value)
    with torch.no_grad():
        other_aus.net.fc1.weight.zero_()
    other_aus.setup("fit")  # once per module: a second fit does not wipe what was trained
    assert other_aus.net.fc1.weight.abs().sum() == 0

    fresh_head = MTVGGModule(**TINY, image_size=32, init_checkpoint=str(path), reset_head=True)
    fresh_head.setup("fit")
    torch.testing.assert_close(fresh_head.state_dict()[fc1], source.state_dict()[fc1])
    assert not torch.equal(fresh_head.net.head.linear.weight, source.net.head.linear.weight)

    # restored from its own checkpoint: the init file named in its hyper-parameters is never read again
    own = tmp_path / "own.ckpt"
    _lightning_checkpoint(fresh_head, own)
    path.unlink()
    restored = MTVGGModule.load_from_checkpoint(own)
    restored.setup("fit")
    torch.testing.assert_close(restored.net.head.linear.weight, fresh_head.net.head.linear.weight)

    with pytest.raises(WeightsFileError, match=r"init_checkpoint: no tensor of .*own.ckpt fits MTVGGModule"):
        load_weights(MTVGGModule(**TINY, image_size=32), str(own), exclude=("net.",), key="init_checkpoint")


def test_vggface_checkpoint_loaded_into_the_backbone_at_fit(tmp_path):
    module = MTVGGModule(
        backbone="vggface", hidden=8, image_size=32, backbone_weights=str(tmp_path / "vgg_face.pth")
    )
    own = module.net.backbone.body.state_dict()
    sd = {
        f"{name}.{p}": torch.randn_like(own[f"features.{i}.{p}"])
        for name, i in VGGFACE_CONV_INDEX.items()
        for p in ("weight", "bias")
    }
    torch.save(sd, tmp_path / "vgg_face.pth")  # Oxford names conv1_1 ... conv5_3
    module.setup("fit")
    torch.testing.assert_close(
        module.net.backbone.body.state_dict()["features.28.weight"], sd["conv5_3.weight"]
    )
    # vgg16 = the same layout from random weights; its backbone_weights are a state dict of it (strict)
    rand = MTVGGModule(backbone="vgg16", hidden=8, image_size=32, backbone_weights=str(tmp_path / "vgg_face.pth"))
    with pytest.raises(WeightsFileError, match=r"backbone_weights: no tensor of .*vgg_face.pth fits VGG"):
        rand.setup("fit")


def test_corpus_au_targets_are_narrowed_to_the_model_au_set():
    """Corpora give the 17 AUs of labels.AU_SET; MT-VGG's 8 ABAW 2020 AUs pick their columns."""
    import pytest
    import torch

    from affect.labels import AU_SET
    from affect.models.mt_vgg import MTVGGModule

    module = MTVGGModule(backbone="test_resnet", hidden=16, image_size=32)
    au = torch.tensor([AU_SET], dtype=torch.float32)  # the value of each column is its AU number
    batch = module.prepare_batch({"image": torch.zeros(1, 3, 32, 32, dtype=torch.uint8), "au": au,
                                  "au_mask": au > 4})
    assert batch["au"][0].tolist() == [1, 2, 4, 6, 12, 15, 20, 25]
    assert batch["au_mask"][0].tolist() == [False, False, False, True, True, True, True, True]
    with pytest.raises(ValueError, match="batch\\['au'\\] has 5 AUs"):
        module.prepare_batch({"au": torch.zeros(1, 5)})
