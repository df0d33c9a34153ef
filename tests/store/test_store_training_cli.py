"""Stores and splits at training / test time through the real command line (:func:`affect.cli.main`):
two store-backed corpora in one domain of ``MultiDomainDataModule`` train, and ``affect test`` never
scores a validation split as ``test/*`` unless the config says so."""

from __future__ import annotations

from pathlib import Path

import pytest

import affect.cli
from affect.data.fixtures import write_fixture_tree

MODEL = """\
model:
  class_path: affect.models.mt_vgg.MTVGGModule
  init_args: {backbone: test_resnet, hidden: 16}
trainer:
  accelerator: cpu
  fast_dev_run: true
  logger: false
  enable_checkpointing: false
  enable_progress_bar: false
  enable_model_summary: false
"""


def run(tmp_path: Path, sub: str, data: str, *extra: str) -> int:
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(MODEL + data)
    return affect.cli.main([sub, "--config", str(cfg), "--trainer.default_root_dir", str(tmp_path / "run"), *extra])


@pytest.mark.filterwarnings("ignore:LightningCLI's args parameter")
def test_two_store_backed_corpora_in_one_domain_train(tmp_path, capsys):
    raw = write_fixture_tree(tmp_path / "raw", ["rafdb", "fer2013"])
    stores = {}
    for slug, folder in (("rafdb", "RAF-DB"), ("fer2013", "fer2013")):
        stores[slug] = tmp_path / f"store-{slug}"
        assert affect.cli.main(["prepare", slug, "--root", str(raw / folder), "--out", str(stores[slug]),
                                "--no-detect", "--image-size", "32", "--no-progress"]) == 0
    data = f"""\
data:
  class_path: affect.data.multidomain.MultiDomainDataModule
  init_args:
    image_size: 32
    batch_sizes: fixed
    expr_batch_size: 6
    expr:
      - class_path: affect.data.corpora.rafdb.RafDbDataModule
        init_args: {{root: {raw / "RAF-DB"}, store: {stores["rafdb"]}, val_fraction: 0.3}}
      - class_path: affect.data.corpora.fer2013.Fer2013DataModule
        init_args: {{root: {raw / "fer2013"}, store: {stores["fer2013"]}, val_fraction: 0.3}}
"""
    capsys.readouterr()
    assert run(tmp_path, "fit", data) == 0, capsys.readouterr().err[-3000:]
    # the domain's batches come from both stores (a batch of the concatenated domain dataset)
    from affect.data.corpora.fer2013 import Fer2013DataModule
    from affect.data.corpora.rafdb import RafDbDataModule
    from affect.data.multidomain import ConcatBatches, MultiDomainDataModule

    mods = [RafDbDataModule(str(raw / "RAF-DB"), store=str(stores["rafdb"]), image_size=32),
            Fer2013DataModule(str(raw / "fer2013"), store=str(stores["fer2013"]), image_size=32)]
    dm = MultiDomainDataModule(expr=mods, batch_sizes="fixed", expr_batch_size=6)
    ds = dm.domain_dataset("expr", "train")
    assert isinstance(ds, ConcatBatches)
    n0 = len(ds.datasets[0])
    order = [n0 + 1, 0, n0, 2]
    batch = ds.__getitems__(order)
    assert batch["corpus"] == ["fer2013", "rafdb", "fer2013", "rafdb"]
    for j, i in enumerate(order):  # each row is the one its own store serves
        own = ds.datasets[0] if i < n0 else ds.datasets[1]
        item = own.__getitems__([i if i < n0 else i - n0])
        assert (batch["image"][j] == item["image"][0]).all() and batch["expr"][j] == item["expr"][0]


@pytest.mark.filterwarnings("ignore:LightningCLI's args parameter")
def test_affect_test_without_a_test_split_is_an_error_unless_asked(tmp_path, capsys, caplog):
    raw = write_fixture_tree(tmp_path / "raw", ["affectnet"])
    data = f"""\
data:
  class_path: affect.data.corpora.affectnet.AffectNetDataModule
  init_args: {{root: {raw / "AffectNet"}, image_size: 32, batch_size: 4}}
"""
    capsys.readouterr()
    assert run(tmp_path, "test", data) == 2
    err = capsys.readouterr().err
    line = [s for s in err.splitlines() if s.startswith("affect: error:")]
    assert len(line) == 1 and "Traceback" not in err
    assert "has no 'test' split" in line[0] and "test_split: val" in line[0]
    with caplog.at_level("WARNING", logger="affect.data.datamodule"):
        assert run(tmp_path, "test", data, "--data.init_args.test_split", "val") == 0
    assert "scoring the 'val' split as test/*" in caplog.text
