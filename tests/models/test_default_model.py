"""The default model's files (``affect/models/default/``): export from a Lightning checkpoint, load
back (sha256 checked, ``weights_only``, float16 cast to the module's dtype), and the refusals."""

from __future__ import annotations

import json

import pytest
import torch
from helpers.default_model import IMAGE, tiny_checkpoint

from affect.errors import DefaultModelError
from affect.models.default import default_checkpoint, export_default_model, load_default_model, read_manifest


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    work = tmp_path_factory.mktemp("default_model")
    ckpt, module = tiny_checkpoint(work / "tiny.ckpt")
    export_default_model(ckpt, work / "model", name="tiny", licence="test only")
    return work / "model", ckpt, module


def copy_of(folder, tmp_path):
    out = tmp_path / "copy"
    out.mkdir()
    for f in folder.iterdir():
        (out / f.name).write_bytes(f.read_bytes())
    return out


def test_round_trip_matches_the_checkpoint_in_float16(exported):
    folder, ckpt, module = exported
    manifest = read_manifest(folder)
    state = torch.load(folder / manifest["weights"], weights_only=True)
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float16}
    loaded, entry = load_default_model("cpu", folder)
    assert not loaded.training and type(loaded).__name__ == "FaceBehaviorNetModule"
    assert entry == torch.load(ckpt, weights_only=True)["affect"] and entry["image_size"] == IMAGE
    # independent reference: the source module with its tensors rounded to float16 and back
    for name, tensor in module.state_dict().items():
        own = loaded.state_dict()[name]
        assert own.dtype == tensor.dtype
        expect = tensor.half().to(tensor.dtype) if tensor.is_floating_point() else tensor
        torch.testing.assert_close(own, expect, rtol=0, atol=0)
    x = torch.randint(0, 256, (2, 3, IMAGE, IMAGE), dtype=torch.uint8)
    with torch.no_grad():
        ref = module.half().float()(x)
        out = loaded(x)
    module.float()
    torch.testing.assert_close(out["expr"], ref["expr"])
    assert manifest["class_path"] == "affect.models.facebehaviornet.FaceBehaviorNetModule"
    assert manifest["licence"] == "test only" and manifest["card"] == "docs/model_card.md"
    assert manifest["init_args"]["init_checkpoint"] is None and "_class_path" not in manifest["init_args"]


def test_default_checkpoint_is_what_lightning_restores(exported, tmp_path):
    folder, _, _ = exported
    path = default_checkpoint(tmp_path / "d.ckpt", folder)
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["hyper_parameters"]["_class_path"] == "affect.models.facebehaviornet.FaceBehaviorNetModule"
    assert ckpt["affect"]["image_size"] == IMAGE
    from affect.models.facebehaviornet import FaceBehaviorNetModule

    hp = {k: v for k, v in ckpt["hyper_parameters"].items() if not k.startswith("_")}
    restored = FaceBehaviorNetModule(**hp)
    restored.load_state_dict(ckpt["state_dict"], strict=True)
    loaded, _ = load_default_model("cpu", folder)
    for name, tensor in loaded.state_dict().items():
        torch.testing.assert_close(restored.state_dict()[name], tensor, rtol=0, atol=0)


def test_missing_folder_is_a_default_model_error(tmp_path, monkeypatch):
    import affect.models.default as default

    monkeypatch.setattr(default, "MODEL_DIR", tmp_path / "nothing")
    with pytest.raises(DefaultModelError, match=r"no default model is installed .*model\.json is missing.*--ckpt"):
        load_default_model()


def test_changed_weights_fail_the_checksum(exported, tmp_path):
    folder = copy_of(exported[0], tmp_path)
    weights = folder / read_manifest(folder)["weights"]
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(DefaultModelError, match=r"weights\.pt has sha256 [0-9a-f]{64}, model\.json says"):
        load_default_model("cpu", folder)


def _rewrite(folder, **changes):
    manifest = json.loads((folder / "model.json").read_text())
    for key, value in changes.items():
        if key == "init_args":
            manifest["init_args"].update(value)
        else:
            manifest[key] = value
    (folder / "model.json").write_text(json.dumps(manifest))


def test_manifest_refusals(exported, tmp_path):
    folder = copy_of(exported[0], tmp_path)
    _rewrite(folder, init_args={"hidden": 32})  # another architecture than the weights
    with pytest.raises(DefaultModelError, match=r"does not fit affect\.models\.facebehaviornet"):
        load_default_model("cpu", folder)
    _rewrite(folder, init_args={"hidden": 16}, class_path="os.system")
    with pytest.raises(DefaultModelError, match=r"class_path 'os\.system' is not one of affect's models"):
        load_default_model("cpu", folder)
    _rewrite(folder, class_path="affect.models.facebehaviornet.FaceBehaviorNetModule", version=2)
    with pytest.raises(DefaultModelError, match="version 2; this affect reads"):
        load_default_model("cpu", folder)
    (folder / "model.json").write_text("{not json")
    with pytest.raises(DefaultModelError, match="is not JSON"):
        load_default_model("cpu", folder)


class _Marker:
    def __reduce__(self):
        return (print, ("unpickled",))


def test_weights_that_need_unpickling_are_refused(exported, tmp_path, capsys):
    import hashlib

    folder = copy_of(exported[0], tmp_path)
    weights = folder / "weights.pt"
    torch.save({"net.x": _Marker()}, weights)
    _rewrite(folder, sha256=hashlib.sha256(weights.read_bytes()).hexdigest())
    with pytest.raises(DefaultModelError, match="is not a plain state dict"):
        load_default_model("cpu", folder)
    assert "unpickled" not in capsys.readouterr().out


def test_export_refuses_a_plain_state_dict(tmp_path):
    path = tmp_path / "sd.pt"
    torch.save({"w": torch.zeros(1)}, path)
    with pytest.raises(DefaultModelError, match="not a checkpoint of `affect fit`"):
        export_default_model(path, tmp_path / "out", name="x", licence="y")
