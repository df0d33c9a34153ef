"""BP4D+ (``affect.data.corpora.bp4d_plus``): BP4D's parser with BP4D+ defaults."""

from __future__ import annotations

from pathlib import Path

import jsonargparse
import numpy as np
import pytest

from affect.data.corpora import bp4d, manifest_parser
from affect.data.corpora.bp4d_plus import BP4D_PLUS_AUS, BP4DPlusDataModule, make_bp4d_plus_manifest
from affect.data.datamodule import CorpusDataModule
from affect.data.fixtures import fixture_writer
from affect.data.fixtures.bp4d_plus import write_bp4d_plus

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_bp4d_plus(tmp_path_factory.mktemp("bp4d_plus"), unknown_cells=1)


def test_registries_find_the_module():
    assert manifest_parser("bp4d_plus") is make_bp4d_plus_manifest
    assert fixture_writer("bp4d_plus") is write_bp4d_plus


def test_reuses_the_bp4d_parser(root, monkeypatch):
    calls = []
    real = bp4d.parse_bp4d_like
    monkeypatch.setattr("affect.data.corpora.bp4d_plus.parse_bp4d_like", lambda *a: calls.append(a) or real(*a))
    df, _ = make_bp4d_plus_manifest(root)
    assert calls and calls[0][1] == "bp4d_plus" and len(df) == 30


def test_fera2017_aus_and_layout(root):
    df, report = make_bp4d_plus_manifest(root)
    assert (df["corpus"] == "bp4d_plus").all()
    assert df["path"].iloc[0] == "2D+3D/F001/T1/1000.jpg" and df["frame"].iloc[0] == 1000
    annotated = [c for c in df.columns if c.startswith("AU") and df[c].notna().any()]
    assert annotated == [f"AU{a}" for a in BP4D_PLUS_AUS]
    assert report.skipped["AU column ignored (not in the corpus's AU list)"] == 3  # AU 2, 5, 24
    assert report.skipped["AU value 9 (unknown) masked"] == 1 and np.isnan(df["AU1"].iloc[0])
    both, _ = make_bp4d_plus_manifest(root, aus=bp4d.BP4D_AUS)  # BP4D's 12 where the CSV has them
    assert both["AU2"].notna().all() and both["AU24"].notna().all()


def test_round_robin_folds(root):
    folds = {f: sorted(make_bp4d_plus_manifest(root, fold=f)[0].query("split == 'val'")["subject"].unique()) for f in range(3)}
    assert folds == {0: ["F001"], 1: ["F002"], 2: ["M001"]}


def test_datamodule_and_yaml(root):
    dm = BP4DPlusDataModule(str(root), batch_size=4)
    assert dm.aus == BP4D_PLUS_AUS and len(dm.manifest) == 30
    assert next(iter(dm.train_dataloader()))["au_mask"][0].sum() == len(BP4D_PLUS_AUS)
    parser = jsonargparse.ArgumentParser()
    parser.add_argument("--config", action=jsonargparse.ActionConfigFile)
    parser.add_subclass_arguments(CorpusDataModule, "data")
    yaml = str(REPO / "experiments/data/bp4d_plus.yaml")
    dm = parser.instantiate(parser.parse_args(["--config", yaml, "--data.init_args.root", str(root)])).data
    assert isinstance(dm, BP4DPlusDataModule) and dm.image_pattern == "2D+3D/{subject}/{task}/{frame:04d}.jpg"
    assert len(dm.manifest) == 30
