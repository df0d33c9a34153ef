"""A store records the corpus-parser arguments it was built with; a datamodule refuses a mismatch (issue 10).

Without this, ``BP4DDataModule(fold=1, store=...)`` validated on the store's fold-0 subjects: the
cross-validation folds of DISFA / BP4D(+) leaked test subjects into training.
"""

from __future__ import annotations

import json

import pytest

from affect.data.corpora.bp4d import BP4DDataModule
from affect.data.fixtures import write_fixture_tree
from affect.store.cli import main as prepare_main


@pytest.fixture(scope="module")
def bp4d(tmp_path_factory):
    """A BP4D fixture (one subject per standard fold) and two stores: default arguments, fold 1."""
    base = tmp_path_factory.mktemp("bp4d")
    write_fixture_tree(base, ["bp4d"], options={"bp4d": {"size": 32}})
    raw = base / "BP4D"
    stores = {}
    for name, extra in (("default", []), ("fold1", ["--parser.fold", "1"])):
        stores[name] = base / f"store-{name}"
        args = ["bp4d", "--root", str(raw), "--out", str(stores[name]), "--no-detect", "--image-size", "32",
                "--no-progress", *extra]
        assert prepare_main(args) == 0
    return raw, stores


def val_subjects(dm) -> set[str]:
    m = dm.manifest
    return set(m.loc[m["split"] == "val", "subject"])


def test_store_records_the_parser_arguments(bp4d):
    _, stores = bp4d
    header = json.loads((stores["fold1"] / "store.json").read_text())
    assert header["parser"]["corpus"] == "bp4d"
    args = header["parser"]["args"]
    assert args["fold"] == 1 and args["num_folds"] == 3 and args["aus"][:3] == [1, 2, 4]
    assert json.loads((stores["default"] / "store.json").read_text())["parser"]["args"]["fold"] == 0


def test_fold_with_and_without_a_store_validates_on_the_same_subjects(bp4d):
    raw, stores = bp4d
    for fold, store in ((0, "default"), (1, "fold1")):
        plain = BP4DDataModule(str(raw), fold=fold, image_size=32)
        stored = BP4DDataModule(str(raw), fold=fold, image_size=32, store=str(stores[store]))
        assert val_subjects(plain) and val_subjects(stored) == val_subjects(plain)
    assert val_subjects(BP4DDataModule(str(raw), fold=0, image_size=32)) != val_subjects(
        BP4DDataModule(str(raw), fold=1, image_size=32)
    )


def test_a_store_built_for_another_fold_is_refused_naming_the_key(bp4d):
    raw, stores = bp4d
    dm = BP4DDataModule(str(raw), fold=1, image_size=32, store=str(stores["default"]))
    with pytest.raises(ValueError, match=r"built with fold=0 but .* fold=1") as err:
        _ = dm.manifest
    assert "\n" not in str(err.value) and "--parser.fold 1" in str(err.value)


def test_a_store_without_the_record_is_refused_unless_the_module_uses_the_defaults(bp4d, tmp_path):
    import shutil

    raw, stores = bp4d
    old = tmp_path / "old-store"
    shutil.copytree(stores["default"], old)
    header = json.loads((old / "store.json").read_text())
    del header["parser"]  # a store written before the record existed
    (old / "store.json").write_text(json.dumps(header))
    assert val_subjects(BP4DDataModule(str(raw), fold=0, image_size=32, store=str(old)))
    with pytest.raises(ValueError, match="does not record the parser arguments.*fold=2"):
        _ = BP4DDataModule(str(raw), fold=2, image_size=32, store=str(old)).manifest


def test_unknown_or_mistyped_parser_argument_is_a_usage_error(bp4d, tmp_path, capsys):
    raw, _ = bp4d
    base = ["bp4d", "--root", str(raw), "--out", str(tmp_path / "s"), "--no-detect"]
    for extra, said in ((["--parser.flod", "1"], "flod"), (["--parser.fold", "abc"], "fold")):
        with pytest.raises(SystemExit) as err:
            prepare_main([*base, *extra])
        assert err.value.code == 2 and said in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_parser_arguments_are_typed_in_help(capsys):
    with pytest.raises(SystemExit):
        prepare_main(["bp4d", "--help"])
    text = capsys.readouterr().out
    assert "--parser.fold FOLD" in text and "type: int | null, default: 0" in text
