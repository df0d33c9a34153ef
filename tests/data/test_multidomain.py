"""MultiDomainDataModule: per-step composition, epoch alignment, DDP sharding (paper Fig. 4)."""

from __future__ import annotations

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from affect.data.datamodule import CorpusDataModule
from affect.data.manifest import LoadReport
from affect.data.multidomain import MultiDomainDataModule


class ToyCorpus(CorpusDataModule):
    """Tiny PNG corpus: every row annotated for one task; frame id = global row id."""

    corpus = "toy"

    def __init__(self, root: str, n: int = 20, label_task: str = "va", offset: int = 0, **kwargs) -> None:
        super().__init__(root, **kwargs)
        self.n, self.label_task, self.offset = n, label_task, offset

    def make_manifest(self):
        rows = []
        for i in range(self.n):
            path = f"{self.label_task}_{i}.png"
            if not (self.root_path / path).exists():
                Image.fromarray(np.full((8, 8, 3), i % 255, np.uint8)).save(self.root_path / path)
            row = {"path": path, "corpus": "toy", "subject": f"s{i % 5}", "frame": self.offset + i,
                   "split": "train" if i < self.n - 4 else "val"}
            if self.label_task == "va":
                row.update(valence=0.1, arousal=-0.1)
            elif self.label_task == "expr":
                row.update(expr=i % 7)
            elif self.label_task == "au":
                row.update(AU12=1.0, AU1=0.0)
            else:  # "all": every row annotated for the three tasks (as Aff-Wild2 frames can be)
                row.update(valence=0.1, arousal=-0.1, expr=i % 7, AU12=1.0, AU1=0.0)
            rows.append(row)
        report = LoadReport("toy")
        report.kept = len(rows)
        return pd.DataFrame(rows), report

    @property
    def root_path(self):
        from pathlib import Path

        return Path(self.root)


def make_dm(tmp_path, sizes=(40, 26, 12), **kwargs) -> MultiDomainDataModule:
    mods = {}
    for (task, n), offset in zip(zip(("va", "au", "expr"), sizes, strict=True), (0, 1000, 2000), strict=True):
        (tmp_path / task).mkdir(exist_ok=True)
        mods[task] = [ToyCorpus(str(tmp_path / task), n=n, label_task=task, offset=offset, image_size=8)]
    return MultiDomainDataModule(**mods, **kwargs)


def test_each_step_has_one_batch_per_domain_with_its_labels(tmp_path):
    dm = make_dm(tmp_path, batch_sizes="fixed", va_batch_size=6, au_batch_size=4, expr_batch_size=2)
    loader = dm.train_dataloader()
    iter(loader)
    batch, _, _ = next(iter(loader))
    assert set(batch) == {"va", "au", "expr"}
    assert batch["va"]["image"].shape == (6, 3, 8, 8) and batch["va"]["image"].dtype == torch.uint8
    assert batch["au"]["image"].shape[0] == 4 and batch["expr"]["image"].shape[0] == 2
    assert batch["va"]["va_mask"].all() and not batch["va"]["au_mask"].any()
    assert batch["au"]["au_mask"].any(dim=1).all() and (batch["au"]["expr"] == -1).all()
    assert (batch["expr"]["expr"] >= 0).all() and not batch["expr"]["va_mask"].any()


def test_auto_batch_sizes_align_epochs(tmp_path):
    # train sets: 36 / 22 / 8 rows -> proportional sizes; every domain needs the same number of steps
    dm = make_dm(tmp_path, batch_sizes="auto", total_batch_size=33)
    assert dm.batch_sizes == {"va": 18, "au": 11, "expr": 4}
    steps = dm.steps_per_domain()
    assert set(steps.values()) == {2}
    loader = dm.train_dataloader()
    iter(loader)
    seen = {d: [] for d in dm.domains}
    for batch, _, _ in loader:
        for d in dm.domains:
            seen[d].extend(batch[d]["frame"].tolist())
    # one epoch visits every training image of every domain exactly once
    assert sorted(seen["va"]) == list(range(0, 36))
    assert sorted(seen["au"]) == list(range(1000, 1022))
    assert sorted(seen["expr"]) == list(range(2000, 2008))


def test_paper_batch_sizes_and_single_domain(tmp_path):
    dm = make_dm(tmp_path)
    assert dm.batch_sizes == {"va": 401, "au": 247, "expr": 103}
    (tmp_path / "only").mkdir()
    single = MultiDomainDataModule(expr=[ToyCorpus(str(tmp_path / "only"), n=10, label_task="expr", image_size=8)])
    assert single.domains == ["expr"]
    with pytest.raises(ValueError, match="at least one"):
        MultiDomainDataModule()


def test_wrong_task_for_domain_raises(tmp_path):
    with pytest.raises(ValueError, match="task='au' but is listed under 'va'"):
        MultiDomainDataModule(va=[ToyCorpus(str(tmp_path), task="au")])


def test_validation_is_sequential_per_domain(tmp_path):
    dm = make_dm(tmp_path, batch_sizes="fixed", va_batch_size=3, au_batch_size=3, expr_batch_size=3)
    loader = dm.val_dataloader()
    iter(loader)
    per_idx: dict[int, list[int]] = {}
    for batch, _, idx in loader:
        per_idx.setdefault(idx, []).extend(batch["frame"].tolist())
    expected = {"va": list(range(36, 40)), "au": list(range(1022, 1026)), "expr": list(range(2008, 2012))}
    assert dm.domains == ["va", "expr", "au"]
    assert per_idx == {i: expected[d] for i, d in enumerate(dm.domains)}


class Recorder(L.LightningModule):
    """Records the frame ids every rank trains on (written to a file per rank)."""

    def __init__(self, out: str) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(1, 1)
        self.out = out
        self.seen: list[tuple[str, int]] = []

    def training_step(self, batch, batch_idx):
        for d, b in batch.items():
            self.seen.extend((d, int(f)) for f in b["frame"])
        return self.layer(torch.ones(1, 1)).sum()

    def on_train_end(self) -> None:
        pd.DataFrame(self.seen, columns=["domain", "frame"]).to_csv(f"{self.out}/rank{self.global_rank}.csv")

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


@pytest.mark.ddp
@pytest.mark.slow
def test_ddp_ranks_see_disjoint_samples(tmp_path):
    # per rank: 18 / 11 / 4 training samples; batch sizes that divide them, so no partial batch is dropped
    dm = make_dm(tmp_path, batch_sizes="fixed", va_batch_size=6, au_batch_size=11, expr_batch_size=2)
    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy="ddp_spawn", max_epochs=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(Recorder(str(tmp_path)), datamodule=dm)
    ranks = [pd.read_csv(tmp_path / f"rank{r}.csv") for r in (0, 1)]
    for domain, n_train, offset in (("va", 36, 0), ("au", 22, 1000), ("expr", 8, 2000)):
        sets = [set(r.loc[r["domain"] == domain, "frame"]) for r in ranks]
        assert sets[0] and sets[1]
        assert not sets[0] & sets[1], f"{domain}: ranks overlap"
        assert sets[0] | sets[1] == set(range(offset, offset + n_train)), domain


def test_store_backed_corpora_feed_the_multidomain_module(tmp_path):
    """``affect prepare`` stores (no image decoding at training time) behind two corpus modules."""
    from affect.data.corpora.bp4d import BP4DDataModule, make_bp4d_manifest
    from affect.data.corpora.rafdb import RafDbDataModule, make_rafdb_manifest
    from affect.data.fixtures import write_fixture_tree
    from affect.store.reader import open_store
    from affect.store.writer import PrepareOptions, prepare_store

    write_fixture_tree(tmp_path / "raw", ["rafdb", "bp4d"])
    stores = {}
    for name, parse in (("RAF-DB", make_rafdb_manifest), ("BP4D", make_bp4d_manifest)):
        manifest, _ = parse(tmp_path / "raw" / name)
        stores[name] = tmp_path / f"store-{name}"
        prepare_store(manifest, tmp_path / "raw" / name, stores[name], options=PrepareOptions(detect="never"), progress=False)
    expr = RafDbDataModule(str(tmp_path / "raw" / "RAF-DB"), store=str(stores["RAF-DB"]))
    au = BP4DDataModule(str(tmp_path / "raw" / "BP4D"), store=str(stores["BP4D"]))
    dm = MultiDomainDataModule(au=[au], expr=[expr], batch_sizes="fixed", au_batch_size=5, expr_batch_size=3)
    loader = dm.train_dataloader()
    iter(loader)
    batch, _, _ = next(iter(loader))
    assert set(batch) == {"expr", "au"}
    assert batch["expr"]["image"].shape == (3, 3, 96, 96) and batch["expr"]["image"].dtype == torch.uint8
    assert (batch["expr"]["expr"] >= 0).all() and batch["au"]["au_mask"].any(1).all()
    # the images are the stored crops, gathered whole from the memory map
    store = open_store(stores["BP4D"])
    ds = dm.domain_dataset("au", "train")
    first = ds.__getitems__([0])
    row = int(store.manifest.index[(store.manifest["split"] == "train") & (store.manifest["status"] == "ok")][0])
    assert torch.equal(first["image"][0], torch.from_numpy(np.asarray(store.images[np.array([row])][0])))


def test_store_backed_module_redraws_a_validation_split(tmp_path):
    from affect.data.corpora.fer2013 import Fer2013DataModule, make_fer2013_manifest
    from affect.data.fixtures import write_fixture_tree
    from affect.store.writer import PrepareOptions, prepare_store

    write_fixture_tree(tmp_path / "raw", ["fer2013"], options={"fer2013": {"n_train": 6}})
    manifest, _ = make_fer2013_manifest(tmp_path / "raw" / "fer2013")
    prepare_store(manifest, tmp_path / "raw" / "fer2013", tmp_path / "st", options=PrepareOptions(detect="never"), progress=False)
    dm = Fer2013DataModule(str(tmp_path / "raw" / "fer2013"), store=str(tmp_path / "st"), val_fraction=0.3)
    train, val = dm.dataset("train"), dm.dataset("val")
    n_train = int((manifest["split"] == "train").sum())
    assert len(train) + len(val) == n_train and abs(len(val) - 0.3 * n_train) <= 1
    assert not set(train.rows) & set(val.rows)
    assert len(dm.dataset("test")) == int((manifest["split"] == "test").sum())
    wrong = Fer2013DataModule(str(tmp_path / "raw" / "fer2013"), store=str(tmp_path / "st"), image_size=64)
    with pytest.raises(ValueError, match="holds 96x96 crops but image_size is 64"):
        wrong.dataset("train")


def all_label_dm(tmp_path, **kwargs) -> MultiDomainDataModule:
    """One corpus whose rows carry VA, EXPR and AU labels, listed under all three domains."""
    (tmp_path / "all").mkdir(exist_ok=True)
    mods = {d: [ToyCorpus(str(tmp_path / "all"), n=12, label_task="all", image_size=8, test_split="val")]
            for d in ("va", "au", "expr")}  # no test split: its validation split stands in, on purpose
    return MultiDomainDataModule(**mods, batch_sizes="fixed", va_batch_size=4, au_batch_size=4, expr_batch_size=4,
                                 **kwargs)


def test_a_domain_batch_carries_only_its_domain_labels(tmp_path):
    # paper Sec. VI-B: each image of the VA-Set has VA labels, of the AU-Set AU labels, of the EXPR-Set an
    # emotion; a corpus listed under several domains must not feed L_Emo from the VA batch (issue 10)
    dm = all_label_dm(tmp_path)
    loader = dm.train_dataloader()
    iter(loader)
    batch, _, _ = next(iter(loader))
    va, au, expr = batch["va"], batch["au"], batch["expr"]
    assert va["va_mask"].all() and (va["expr"] == -1).all() and not va["au_mask"].any()
    assert au["au_mask"].any(1).all() and (au["expr"] == -1).all() and not au["va_mask"].any()
    assert (expr["expr"] >= 0).all() and not expr["va_mask"].any() and not expr["au_mask"].any()
    for split_loader in (dm.val_dataloader(), dm.test_dataloader()):  # evaluation batches too
        iter(split_loader)
        for b, _, idx in split_loader:
            domain = dm.domains[idx]
            assert bool(b["va_mask"].any()) == (domain == "va")
            assert bool(b["au_mask"].any()) == (domain == "au")
            assert bool((b["expr"] >= 0).any()) == (domain == "expr")


def test_keep_other_labels_is_an_explicit_deviation(tmp_path):
    dm = all_label_dm(tmp_path, keep_other_labels=True)
    loader = dm.train_dataloader()
    iter(loader)
    batch, _, _ = next(iter(loader))
    for domain in ("va", "au", "expr"):
        b = batch[domain]
        assert b["va_mask"].all() and (b["expr"] >= 0).all() and b["au_mask"].any(1).all()


def test_domain_labels_masks_sequence_batches():
    from affect.data.multidomain import DomainLabels

    seq = {"va": torch.ones(2, 3, 2), "va_mask": torch.ones(2, 3, 2, dtype=torch.bool),
           "expr": torch.full((2, 3), 4), "au": torch.ones(2, 3, 17), "au_mask": torch.ones(2, 3, 17, dtype=torch.bool),
           "frame_mask": torch.ones(2, 3, dtype=torch.bool)}
    out = DomainLabels(lambda items: items, "expr")(seq)
    assert (out["expr"] == 4).all() and not out["va_mask"].any() and not out["au_mask"].any()
    assert (out["va"] == 0).all() and (out["au"] == 0).all()
    assert seq["va_mask"].all()  # the input batch is not modified in place


def test_python_callers_get_one_line_for_a_model_of_another_image_size():
    """Outside the CLI (no link) a model built for other images than the data delivers is a ConfigError
    naming both keys, not a shape error deep in the network."""
    from affect.data.datamodule import check_image_size
    from affect.errors import ConfigError
    from affect.models.mt_vgg import MTVGGModule

    model = MTVGGModule(backbone="test_resnet", hidden=8, image_size=32)
    check_image_size(model, 32)
    with pytest.raises(ConfigError, match=r"32x32 images \(model.init_args.image_size\).*48x48 \(data.init_args.image_size\)"):
        check_image_size(model, 48)
