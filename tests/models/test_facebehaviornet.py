"""FaceBehaviorNet (Sec. VI-B): 17-AU MT-VGG, multi-domain batches (Fig. 4) and per-domain evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.toy_datamodule import FrameDictDataset, make_frames, np_ccc
from helpers.toy_datamodule import tiny_trainer as trainer
from lightning.pytorch.utilities import CombinedLoader
from sklearn.metrics import accuracy_score
from torch.utils.data import DataLoader

from affect.labels import AU_SET
from affect.losses import MultiTaskLoss
from affect.models.facebehaviornet import FaceBehaviorNet, FaceBehaviorNetModule
from affect.models.mt_vgg import MTVGG

TINY = {"backbone": "test_resnet", "hidden": 32}


def loader(
    n: int, seed: int, annotate: tuple[str, ...], batch_size: int = 4, shuffle: bool = False
) -> DataLoader:
    return DataLoader(
        FrameDictDataset(make_frames(n, 32, 17, seed, annotate)), batch_size=batch_size, shuffle=shuffle
    )


def test_is_mt_vgg_with_17_aus():
    net = FaceBehaviorNet(**TINY, image_size=96)
    assert isinstance(net, MTVGG) and net.head.sizes == (2, 7, 17)
    assert net.state_dict().keys() == MTVGG(**TINY, num_aus=17, image_size=96).state_dict().keys()
    out = net(torch.zeros(2, 3, 96, 96))
    assert {k: tuple(v.shape) for k, v in out.items()} == {"va": (2, 2), "expr": (2, 7), "au": (2, 17)}


def test_single_task_baseline_has_one_metric_set():
    module = FaceBehaviorNetModule(**TINY, image_size=32, tasks=["expr"])
    assert sorted(module.metrics.per_task) == ["test_expr", "train_expr", "val_expr"]
    assert sorted(module.metrics.eval_losses) == ["test_expr", "test_loss", "val_expr", "val_loss"]
    assert module.hparams.au_set == AU_SET and isinstance(module.net, FaceBehaviorNet)


def test_multi_domain_training_concatenates_domain_batches(tmp_path):
    torch.manual_seed(0)
    coupled = MultiTaskLoss(au_set=AU_SET, distribution_matching=True, soft_co_annotation=True)
    module = FaceBehaviorNetModule(**TINY, image_size=32, lr=1e-3, loss=coupled)
    assert module.loss_fn is coupled
    seen: list[int] = []
    forward_batch = module.forward_batch
    module.forward_batch = lambda batch: (seen.append(len(batch["image"])), forward_batch(batch))[1]
    train = CombinedLoader(
        {
            "va": loader(12, 0, ("va",), 6, True),
            "au": loader(8, 1, ("au",), 4, True),
            "expr": loader(4, 2, ("expr",), 2, True),
        },
        mode="max_size_cycle",
    )  # 2 steps per epoch: the VA-Set is the longest
    val = {"va": loader(8, 3, ("va",)), "au": loader(8, 4, ("au",)), "expr": loader(8, 5, ("expr",))}
    tr = trainer(tmp_path, max_epochs=1)
    tr.fit(module, train_dataloaders=train, val_dataloaders=val)
    assert seen[:2] == [12, 12]  # one forward pass over 6 + 4 + 2 frames per step
    assert tr.global_step == 2
    names = set(tr.callback_metrics)
    for name in ("train/loss", "train/dm/loss", "train/soft/loss", "train/va/ccc", "val/loss", "val/dm/loss",
                 "val/va/ccc", "val/expr/f1", "val/au/f1", "val/au/f1_AU12", "val/au/f1_AU26", "val/p_mtl"):  # fmt: skip
        assert name in names, f"{name} not logged; have {sorted(names)}"
    assert not any("dataloader_idx" in n for n in names)
    assert np.isfinite(tr.callback_metrics["val/p_mtl"].item())


def test_eval_domains_restrict_metrics_to_their_task(tmp_path):
    """Every loader here carries all three labels, but the "va" loader may only update VA metrics, etc."""
    torch.manual_seed(0)
    module = FaceBehaviorNetModule(**TINY, image_size=32).eval()
    full = ("va", "expr", "au")
    data = {d: make_frames(8, 32, 17, seed, full) for d, seed in (("va", 10), ("au", 11), ("expr", 12))}
    val = {d: DataLoader(FrameDictDataset(b), batch_size=4) for d, b in data.items()}
    # as MultiDomainDataModule hands them over: a CombinedLoader over a dict, "sequential" mode
    res = trainer(tmp_path).validate(
        module, dataloaders=CombinedLoader(val, mode="sequential"), verbose=False
    )
    merged = {k: v for r in res for k, v in r.items()}
    with torch.no_grad():
        out = {d: module.forward_batch(b) for d, b in data.items()}
    expr_pred = out["expr"]["expr"].argmax(1).numpy()
    assert merged["val/expr/acc"] == pytest.approx(accuracy_score(data["expr"]["expr"], expr_pred), abs=1e-6)
    va_pred = out["va"]["va"].numpy()
    assert merged["val/va/ccc_v"] == pytest.approx(
        np_ccc(va_pred[:, 0], data["va"]["va"][:, 0].numpy()), abs=1e-5
    )
    au_pred = (out["au"]["au"].sigmoid() > 0.5).numpy()
    total_acc = (au_pred == data["au"]["au"].numpy().astype(bool)).mean()
    assert merged["val/au/total_acc"] == pytest.approx(total_acc, abs=1e-6)

    # loaders named by corpus (not by task): every labelled task of every loader counts
    res = trainer(tmp_path).validate(
        module, dataloaders={"corpus_a": val["va"], "corpus_b": val["expr"]}, verbose=False
    )
    merged = {k: v for r in res for k, v in r.items()}
    both = np.concatenate([out["va"]["expr"].argmax(1).numpy(), expr_pred])
    target = np.concatenate([data["va"]["expr"].numpy(), data["expr"]["expr"].numpy()])
    assert merged["val/expr/acc"] == pytest.approx(accuracy_score(target, both), abs=1e-6)


def test_test_time_flip_averages_outputs_of_faces_and_mirrors(tmp_path):
    """Validation metrics and predictions of ``test_time_flip`` use (net(x) + net(mirror x)) / 2."""
    torch.manual_seed(0)
    module = FaceBehaviorNetModule(**TINY, image_size=32, test_time_flip=True).eval()
    data = make_frames(12, 32, 17, 7, ("va", "expr", "au"))
    with torch.no_grad():
        plain = module.forward_batch(data)
        mirrored = module.forward_batch({**data, "image": data["image"].flip(-1)})
    mean = {k: (plain[k] + mirrored[k]) / 2 for k in plain}
    assert not torch.allclose(mean["expr"], plain["expr"], atol=1e-4)  # the mirror changes the outputs
    res = trainer(tmp_path).validate(module, dataloaders=DataLoader(FrameDictDataset(data), batch_size=4), verbose=False)
    expected_acc = accuracy_score(data["expr"].numpy(), mean["expr"].argmax(1).numpy())
    assert res[0]["val/expr/acc"] == pytest.approx(expected_acc, abs=1e-6)
    assert res[0]["val/va/ccc_v"] == pytest.approx(np_ccc(mean["va"][:, 0].numpy(), data["va"][:, 0].numpy()), abs=1e-5)
    pred = trainer(tmp_path).predict(module, dataloaders=DataLoader(FrameDictDataset(data), batch_size=12))[0]
    torch.testing.assert_close(pred["expr"], mean["expr"].softmax(-1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pred["au"], mean["au"].sigmoid(), atol=1e-5, rtol=1e-5)


def test_test_time_flip_refuses_networks_that_take_landmarks():
    from affect.errors import ConfigError
    from affect.models.affwildnet import AffWildNetModule

    with pytest.raises(ConfigError, match="test_time_flip mirrors face images only"):
        AffWildNetModule(backbone="test_resnet", image_size=32, test_time_flip=True)
