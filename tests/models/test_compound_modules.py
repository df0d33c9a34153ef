"""Compound expressions (Sec. VI-B, eq. 10, Table VI): ZeroShotCompound on a FaceBehaviorNet checkpoint
with forced outputs, CompoundFineTune on a RAF-DB compound fixture, and the Table VI configs through the
real CLI."""

from __future__ import annotations

import logging
import shlex
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from helpers.toy_datamodule import FrameDictDataset, ToyDataModule
from sklearn.metrics import f1_score, recall_score
from torch.utils.data import DataLoader

from affect.cli import main as cli_main
from affect.data.corpora.emotionet import EMOTIONET_CLASSES, EmotioNetDataModule
from affect.data.corpora.rafdb import RafDbDataModule
from affect.data.fixtures.emotionet import write_emotionet
from affect.data.fixtures.rafdb import write_rafdb
from affect.labels import AU_SET, EXPR_CLASSES, RAFDB_COMPOUND_CLASSES
from affect.losses import expr_ce_loss
from affect.models.compound import CompoundFineTune, ZeroShotCompound, resolve_compound_classes
from affect.models.facebehaviornet import FaceBehaviorNetModule
from affect.models.weights import WeightsFileError

TINY = {"backbone": "test_resnet", "hidden": 16, "image_size": 32}
REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "experiments" / "table6"
RAF = list(RAFDB_COMPOUND_CLASSES)

# Independent copy of the compound table (the design notes, Du, Tao & Martinez 2014) and of Table V's
# prototypical AUs of the basic emotions, for the hand references below.
AUS = {
    "Happily Surprised": (1, 2, 12, 25), "Happily Disgusted": (10, 12, 25), "Sadly Fearful": (1, 4, 20, 25),
    "Sadly Angry": (4, 15), "Sadly Surprised": (1, 4, 25, 26), "Sadly Disgusted": (4, 10),
    "Fearfully Angry": (4, 20, 25), "Fearfully Surprised": (1, 2, 5, 20, 25), "Angrily Surprised": (4, 25, 26),
    "Angrily Disgusted": (4, 10, 17), "Disgustedly Surprised": (1, 2, 5, 10),
    "Happiness": (12, 25), "Sadness": (4, 15), "Fear": (1, 4, 20, 25), "Anger": (4, 7, 24),
    "Surprise": (1, 2, 25, 26), "Disgust": (9, 10, 17),
}  # fmt: skip
PARTS = {
    "Happily Surprised": ("Happiness", "Surprise"), "Happily Disgusted": ("Happiness", "Disgust"),
    "Sadly Fearful": ("Sadness", "Fear"), "Sadly Angry": ("Sadness", "Anger"),
    "Sadly Surprised": ("Sadness", "Surprise"), "Sadly Disgusted": ("Sadness", "Disgust"),
    "Fearfully Angry": ("Fear", "Anger"), "Fearfully Surprised": ("Fear", "Surprise"),
    "Angrily Surprised": ("Anger", "Surprise"), "Angrily Disgusted": ("Anger", "Disgust"),
    "Disgustedly Surprised": ("Disgust", "Surprise"),
}  # fmt: skip
POSITIVE = {"Happily Surprised", "Happily Disgusted", "Happiness"}


def trainer(root, **kwargs) -> L.Trainer:
    opts = {
        "accelerator": "cpu", "devices": 1, "default_root_dir": root, "enable_progress_bar": False,
        "enable_model_summary": False, "log_every_n_steps": 1, "num_sanity_val_steps": 0,
    }  # fmt: skip
    opts.update(kwargs)
    return L.Trainer(**opts)


@pytest.fixture(scope="module")
def fbn_checkpoint(tmp_path_factory) -> Path:
    """A tiny FaceBehaviorNet (VA + EXPR + 17 AUs, 32x32 input) after one training step."""
    root = tmp_path_factory.mktemp("fbn")
    torch.manual_seed(0)
    module = FaceBehaviorNetModule(**TINY)
    tr = trainer(root, max_steps=1, limit_val_batches=0, logger=False, enable_checkpointing=False)
    tr.fit(module, ToyDataModule(num_train=4, num_val=4, batch_size=4, image_size=32, num_aus=len(AU_SET)))
    path = root / "fbn.ckpt"
    tr.save_checkpoint(path)
    return path


def eq10_reference(au: np.ndarray, expr: np.ndarray, valence: np.ndarray, names: list[str]) -> np.ndarray:
    """Eq. 10 as read in zero_shot.py, from the literal tables above (numpy, loops)."""
    out = np.zeros((len(au), len(names)))
    for n in range(len(au)):
        for k, name in enumerate(names):
            au_term = np.mean([au[n, AU_SET.index(a)] for a in AUS[name] if a in AU_SET])
            parts = PARTS.get(name, (name, name))
            emo = sum(expr[n, EXPR_CLASSES.index(p)] for p in parts)
            val = (1.0 if valence[n] > 0 else 0.0) if name in POSITIVE else 0.0
            out[n, k] = au_term + emo + val
    return out


def forced_outputs(predicted: list[str]) -> dict[str, torch.Tensor]:
    """Logits that make eq. 10 pick ``predicted[i]`` for sample i: its AUs on (others off), its two
    components at p = 0.5 each, valence positive only for the happy classes."""
    n = len(predicted)
    au = torch.full((n, len(AU_SET)), -30.0)
    expr = torch.full((n, len(EXPR_CLASSES)), -30.0)
    va = torch.zeros(n, 2)
    for i, name in enumerate(predicted):
        for a in AUS[name]:
            au[i, AU_SET.index(a)] = 30.0
        for p in PARTS[name]:
            expr[i, EXPR_CLASSES.index(p)] = 0.0
        va[i, 0] = 0.5 if name in POSITIVE else -0.5
    return {"va": va, "expr": expr, "au": au}


def force(module: ZeroShotCompound, outputs: dict[str, torch.Tensor]) -> None:
    """Replace the net's forward: image i (pixel [0, 0, 0] = 10 i) gets row i of ``outputs``."""

    def fake(x: torch.Tensor) -> dict[str, torch.Tensor]:
        idx = ((x[:, 0, 0, 0] + 1) * 127.5 / 10).round().long()
        return {k: v[idx] for k, v in outputs.items()}

    module.net.forward = fake


def crafted_batch(target: list[int]) -> dict:
    n = len(target)
    image = torch.full((n, 3, 32, 32), 128, dtype=torch.uint8)
    image[:, 0, 0, 0] = torch.arange(n, dtype=torch.uint8) * 10
    return {
        "image": image,
        "compound": torch.tensor(target),
        "corpus": ["rafdb"] * n,
        "frame": torch.full((n,), -1),
    }


def test_zero_shot_logged_diag_equals_hand_computation(fbn_checkpoint, tmp_path):
    module = ZeroShotCompound(str(fbn_checkpoint), log_media=False)
    assert module.class_names == RAF and module.au_set == tuple(AU_SET)
    # truth: HS, HS, SA, SA, FS, AD and one unlabelled row; forced predictions below
    predicted = ["Happily Surprised", "Happily Disgusted", "Sadly Angry", "Sadly Angry", "Angrily Surprised",
                 "Angrily Disgusted", "Fearfully Surprised"]  # fmt: skip
    target = [0, 0, 3, 3, 7, 9, -1]
    force(module, forced_outputs(predicted))
    # 2 batches: the metric is over the epoch
    loader = DataLoader(FrameDictDataset(crafted_batch(target)), batch_size=4)
    tr = trainer(tmp_path, logger=False)
    res = tr.test(module, loader, verbose=False)[0]
    # rows with samples: HS recall 1/2, SA 2/2, FS 0/1, AD 1/1 -> Diag = (0.5 + 1 + 0 + 1) / 4
    assert res["test/compound/diag"] == pytest.approx(0.625, abs=1e-6)
    assert res["test/compound/acc"] == pytest.approx(4 / 6, abs=1e-6)
    y, p = [0, 0, 3, 3, 7, 9], [RAF.index(c) for c in predicted[:6]]
    assert res["test/compound/uar"] == pytest.approx(
        recall_score(y, p, labels=range(11), average="macro", zero_division=0), abs=1e-6
    )
    assert res["test/compound/f1"] == pytest.approx(
        f1_score(y, p, labels=range(11), average="macro", zero_division=0), abs=1e-6
    )
    val = tr.validate(module, loader, verbose=False)[0]
    assert val["val/compound/diag"] == pytest.approx(0.625, abs=1e-6)

    # the scores themselves equal an independent eq. 10 on the forced probabilities
    preds = tr.predict(module, loader)
    scores = torch.cat([b["scores"] for b in preds]).numpy()
    out = forced_outputs(predicted)
    ref = eq10_reference(
        out["au"].sigmoid().numpy(), out["expr"].softmax(1).numpy(), out["va"][:, 0].numpy(), RAF
    )
    np.testing.assert_allclose(scores, ref, atol=1e-5)
    assert [name for b in preds for name in b["label"]] == predicted
    assert torch.cat([b["compound"] for b in preds]).tolist() == [RAF.index(c) for c in predicted]
    assert set(preds[0]) >= {"scores", "compound", "label", "va", "expr", "au", "corpus", "frame"}


def test_zero_shot_real_forward_and_sum_variant(fbn_checkpoint):
    """Unforced: the scores are eq. 10 on the checkpoint's own FaceBehaviorNet outputs."""
    fbn = FaceBehaviorNetModule.load_from_checkpoint(fbn_checkpoint, map_location="cpu").eval()
    images = torch.randint(
        0, 256, (5, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )
    with torch.no_grad():
        raw = fbn.forward_batch({"image": images})
        for au_term in ("mean", "sum"):
            module = ZeroShotCompound(str(fbn_checkpoint), au_term=au_term).eval()
            got = module(images)["scores"].numpy()
            au, expr, v = raw["au"].sigmoid().numpy(), raw["expr"].softmax(1).numpy(), raw["va"][:, 0].numpy()
            ref = eq10_reference(au, expr, v, RAF)
            if au_term == "sum":  # mean * number of the class's AUs
                sizes = np.array([len(AUS[c]) for c in RAF])
                emo_val = eq10_reference(np.zeros_like(au), expr, v, RAF)
                ref = (ref - emo_val) * sizes + emo_val
            np.testing.assert_allclose(got, ref, atol=1e-5)


def test_zero_shot_errors(fbn_checkpoint, tmp_path):
    module = ZeroShotCompound(str(fbn_checkpoint), log_media=False)
    with pytest.raises(RuntimeError, match="zero-shot .* cannot be fitted: run `affect test`"):
        trainer(tmp_path, max_steps=1, logger=False).fit(
            module, DataLoader(FrameDictDataset(crafted_batch([0])), batch_size=1)
        )
    with pytest.raises(ValueError, match=r"built for 32x32 images but the batch holds \(40, 40\)"):
        module(torch.zeros(1, 3, 40, 40, dtype=torch.uint8))
    with pytest.raises(KeyError, match="no 'compound' target"):
        module.test_step({"image": torch.zeros(1, 3, 32, 32, dtype=torch.uint8)}, 0)
    with pytest.raises(ValueError, match="unknown compound class 'Contempt'"):
        ZeroShotCompound(str(fbn_checkpoint), classes=["Happily Surprised", "Contempt"])
    with pytest.raises(WeightsFileError, match="FaceBehaviorNet checkpoint: .*missing.ckpt does not exist"):
        ZeroShotCompound(str(tmp_path / "missing.ckpt"))
    with pytest.raises(ValueError, match="au_term must be"):
        ZeroShotCompound(str(fbn_checkpoint), au_term="max")
    # a FaceBehaviorNet trained without the VA head cannot give eq. 10's valence term
    ckpt = torch.load(fbn_checkpoint, map_location="cpu", weights_only=True)
    ckpt["hyper_parameters"]["tasks"] = ckpt["affect"]["tasks"] = ["expr", "au"]
    torch.save(ckpt, tmp_path / "no_va.ckpt")
    with pytest.raises(ValueError, match=r"trained on \['expr', 'au'\] only"):
        ZeroShotCompound(str(tmp_path / "no_va.ckpt"))


def test_emotionet_classes_and_override_table(tmp_path):
    classes = resolve_compound_classes(list(EMOTIONET_CLASSES))
    assert [c.name for c in classes] == list(EMOTIONET_CLASSES)
    for c in classes:
        assert c.aus == AUS[c.name] and c.components == PARTS.get(c.name, (c.name, c.name))
        assert c.positive_valence == (c.name in POSITIVE)
    table = tmp_path / "table.json"
    table.write_text('{"classes": {"Sadly Angry": {"aus": [4], "components": ["Sadness", "Anger"]}}}')
    (custom,) = resolve_compound_classes(["Sadly Angry"], str(table))
    assert custom.aus == (4,)


def test_zero_shot_on_emotionet_fixture_matches_sklearn(fbn_checkpoint, tmp_path):
    root = write_emotionet(tmp_path / "EmotioNet", n_per_split=1, n_compound=16, specials=False, size=32)
    dm = EmotioNetDataModule(str(root), image_size=32, batch_size=8)
    module = ZeroShotCompound(str(fbn_checkpoint), classes=list(EMOTIONET_CLASSES))
    tr = trainer(tmp_path)
    res = tr.test(module, datamodule=dm, verbose=False)[0]
    preds = tr.predict(module, datamodule=dm)  # predict = the test split (the 16 compound rows)
    y = dm.manifest.loc[dm.manifest["split"] == "test", "compound"].tolist()
    p = torch.cat([b["compound"] for b in preds]).tolist()
    assert sorted(y) == list(range(16))
    assert res["test/compound/f1"] == pytest.approx(
        f1_score(y, p, labels=range(16), average="macro", zero_division=0), abs=1e-6
    )
    assert res["test/compound/uar"] == pytest.approx(
        recall_score(y, p, labels=range(16), average="macro", zero_division=0), abs=1e-6
    )
    media = list((tmp_path / "lightning_logs" / "version_0" / "media").iterdir())
    assert [m.name.split("_step")[0] for m in media] == ["test_compound_confmat"]


@pytest.fixture(scope="module")
def rafdb_root(tmp_path_factory) -> Path:
    return write_rafdb(
        tmp_path_factory.mktemp("RAF-DB"), n_train=11, n_test=11, subsets=("compound",), specials=False
    )


def test_finetune_loss_decreases_and_metrics(rafdb_root, tmp_path):
    torch.manual_seed(0)
    dm = RafDbDataModule(str(rafdb_root), subset="compound", image_size=32, batch_size=11)
    fixed = next(iter(dm.dataloader("train", shuffle=False)))
    assert sorted(fixed["compound"].tolist()) == list(range(11))
    module = CompoundFineTune(**{**TINY, "hidden": 64}, dropout=0.0, lr=1e-2, log_media=False)
    module.eval()
    with torch.no_grad():
        before = expr_ce_loss(module(fixed["image"]), fixed["compound"]).item()
    assert before == pytest.approx(np.log(11), abs=0.1)  # a fresh 11-way head is close to uniform
    module.train()
    tr = trainer(tmp_path, max_steps=10, limit_val_batches=0, logger=False, enable_checkpointing=False)
    tr.fit(module, dm)  # one batch of all 11 images per epoch: 10 Adam steps
    module.eval()
    with torch.no_grad():
        after = expr_ce_loss(module(fixed["image"]), fixed["compound"]).item()
    assert after < 0.85 * before, (before, after)
    assert "train/compound/diag" in tr.callback_metrics and "train/loss_step" in tr.callback_metrics
    res = tr.test(module, datamodule=dm, verbose=False)[0]
    with torch.no_grad():
        test = next(iter(dm.dataloader("test", shuffle=False)))
        p = module(test["image"]).argmax(1).numpy()
    y = test["compound"].numpy()
    assert res["test/compound/uar"] == pytest.approx(
        recall_score(y, p, labels=range(11), average="macro", zero_division=0), abs=1e-6
    )
    # every class occurs in the test split, so Diag = UAR
    assert res["test/compound/diag"] == pytest.approx(res["test/compound/uar"], abs=1e-6)
    assert res["test/loss"] == pytest.approx(
        expr_ce_loss(module(test["image"]), test["compound"]).item(), abs=1e-5
    )


def test_finetune_from_facebehaviornet_copies_shared_weights(fbn_checkpoint, rafdb_root, tmp_path, caplog):
    fbn = FaceBehaviorNetModule.load_from_checkpoint(fbn_checkpoint, map_location="cpu")
    with caplog.at_level(logging.WARNING):
        module = CompoundFineTune(
            init_checkpoint=str(fbn_checkpoint), image_size=32, freeze_backbone=True, lr=1e-3, log_media=False
        )
    assert "random weights" not in caplog.text
    # architecture from the checkpoint, not from the (vgg16 / 4096) defaults
    assert (module.hparams.backbone, module.hparams.hidden, module.hparams.image_size) == (
        "test_resnet",
        16,
        32,
    )
    shared = {k: v for k, v in fbn.net.state_dict().items() if not k.startswith("head.")}
    got = module.net.state_dict()
    assert set(got) - set(shared) == {"head.linear.weight", "head.linear.bias"}
    for k, v in shared.items():
        torch.testing.assert_close(got[k], v, rtol=0, atol=0, msg=k)
    assert module.net.head.linear.weight.shape == (11, 16)
    # freeze_backbone: 3 steps change FC1 / the new head, not the conv backbone
    dm = RafDbDataModule(str(rafdb_root), subset="compound", image_size=32, batch_size=4)
    tr = trainer(tmp_path, max_steps=3, limit_val_batches=0, logger=False, enable_checkpointing=False)
    tr.fit(module, dm)
    after = module.net.state_dict()
    for k in shared:
        if k.startswith("backbone."):
            torch.testing.assert_close(after[k], shared[k], rtol=0, atol=0, msg=k)
    assert not torch.equal(after["fc1.weight"], shared["fc1.weight"])
    # the fine-tuned checkpoint reloads without the FaceBehaviorNet file
    path = tmp_path / "ft.ckpt"
    tr.save_checkpoint(path)
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert ckpt["hyper_parameters"]["init_checkpoint"] is None
    assert ckpt["affect"]["init_checkpoint"] == str(fbn_checkpoint)
    assert ckpt["affect"]["compound_classes"] == RAF
    reloaded = CompoundFineTune.load_from_checkpoint(path, map_location="cpu").eval()
    module.eval()
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x), module(x))


def test_finetune_argument_errors():
    with pytest.raises(ValueError, match="at least 2 distinct names"):
        CompoundFineTune(**TINY, classes=["A", "A"])
    module = CompoundFineTune(**TINY)
    with pytest.raises(ValueError, match="built for 32x32"):
        module(torch.zeros(1, 3, 96, 96, dtype=torch.uint8))


@pytest.mark.slow
def test_finetune_config_fit_then_test_from_checkpoint(fbn_checkpoint, tmp_path, monkeypatch):
    """Both header commands of the fine-tune config: ``affect fit`` (one short epoch, ModelCheckpoint on
    val/compound/diag) then ``affect test --ckpt_path best.ckpt``; the checkpoint's hyper-parameters (tiny
    architecture, init_checkpoint None) replace the config's, so the FaceBehaviorNet file is not needed."""
    data = tmp_path / "data"
    write_rafdb(data / "RAF-DB", n_train=12, n_test=4, subsets=("compound",), specials=False)
    monkeypatch.setenv("AFFECT_DATA", str(data))
    words = shlex.split((CONFIGS / "finetune_rafdb_compound.yaml").read_text().splitlines()[0].lstrip("# "))
    assert words[:2] == ["affect", "fit"]
    configs = [a for flag, path in zip(words, words[1:], strict=False) if flag == "--config" for a in (flag, str(REPO / path))]
    overrides = [
        "--data.init_args.image_size", "32", "--data.init_args.num_workers", "0", "--data.init_args.batch_size", "4",
        "--trainer.accelerator", "cpu", "--trainer.precision", "32", "--trainer.logger", "false",
        "--trainer.enable_progress_bar", "false",
    ]  # fmt: skip
    fit = ["fit", *configs, *overrides, "--model.init_args.init_checkpoint", str(fbn_checkpoint),
           "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
           "--trainer.default_root_dir", str(tmp_path / "run"), "--checkpoint.dirpath", str(tmp_path / "run" / "checkpoints")]  # fmt: skip
    assert cli_main(fit) == 0
    best = tmp_path / "run" / "checkpoints" / "best.ckpt"
    assert best.is_file() and (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()
    moved = fbn_checkpoint.with_suffix(".moved")
    fbn_checkpoint.rename(moved)
    try:
        test = ["test", *configs, *overrides, "--ckpt_path", str(best), "--trainer.default_root_dir", str(tmp_path / "test")]
        assert cli_main(test) == 0
    finally:
        moved.rename(fbn_checkpoint)
