"""Loading weights never runs code from a file (issue 14, affect.models.weights).

A crafted checkpoint whose pickle creates a marker file is given at every entry point that opens a
file a user names; each refuses it with one line naming the file, and the marker never appears.
``trusted_weights`` is a real opt-in (the marker does appear). Our own checkpoints of every model
open with ``torch.load(..., weights_only=True)`` and restore without the files that initialised the
run. A ``vggface`` backbone needs its converted weights file, and loads it from ``$VGGFACE_WEIGHTS``.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Callable
from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from affect.labels import AU_SET
from affect.losses import MultiTaskLoss
from affect.models.affwildnet import AffWildNetModule
from affect.models.backbones import VGGFACE_CONV_INDEX, VGGFACE_ENV
from affect.models.cnn_rnn import CNNRNN, CNNRNNModule, ModelLevelFusionModule
from affect.models.compound import CompoundFineTune, ZeroShotCompound
from affect.models.facebehaviornet import FaceBehaviorNetModule
from affect.models.mt_vgg import MTVGGModule
from affect.models.mt_vgg_gru import AVMTVGGGRUModule, MTVGGGRUModule
from affect.models.weights import UnsafeWeightsFileError, WeightsFileError, read_weights

TINY = {"backbone": "test_resnet", "hidden": 8, "image_size": 32}
TINY_SEQ = {**TINY, "rnn_hidden": 4}
TINY_CNN_RNN = {"backbone": "test_resnet", "backbone_nodes": ["layer1", "layer4"], "fc_units": 8, "rnn_hidden": 4,
                "image_size": 32}  # fmt: skip
VGGFACE = {"backbone": "vggface", "hidden": 8, "image_size": 32}
OXFORD_PAGE = "https://www.robots.ox.ac.uk/~vgg/software/vgg_face/"


@pytest.fixture(autouse=True)
def _one_thread_no_vggface_env(monkeypatch):
    """One intra-op thread (shared CI box); no $VGGFACE_WEIGHTS from the caller's shell."""
    monkeypatch.delenv(VGGFACE_ENV, raising=False)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class TouchOnLoad:
    """Unpickling this object creates ``path`` (a crafted file could as well call ``os.system``)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __reduce__(self):
        return (Path.touch, (self.path,))


def crafted_file(path: Path, marker: Path, state: dict[str, torch.Tensor] | None = None, **extra) -> Path:
    """A checkpoint holding ``state`` (and ``extra`` entries) plus an object that creates ``marker``."""
    torch.save({"state_dict": state or {"net.fc1.weight": torch.zeros(1)}, "payload": TouchOnLoad(marker), **extra},
               path)  # fmt: skip
    return path


def oxford_weights(module: MTVGGModule, seed: int = 0) -> dict[str, torch.Tensor]:
    """A converted VGG-FACE state dict (Oxford names conv1_1 ... conv5_3) fitting ``module``'s backbone."""
    g = torch.Generator().manual_seed(seed)
    own = module.net.backbone.body.state_dict()
    return {f"{name}.{p}": torch.randn(own[f"features.{i}.{p}"].shape, generator=g)
            for name, i in VGGFACE_CONV_INDEX.items() for p in ("weight", "bias")}  # fmt: skip


def frames(n: int = 4, size: int = 32, num_aus: int = len(AU_SET), seed: int = 0, compound: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    batch = {
        "image": torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8),
        "va": torch.rand(n, 2, generator=g) * 2 - 1, "va_mask": torch.ones(n, 2, dtype=torch.bool),
        "expr": torch.randint(0, 7, (n,), generator=g),
        "au": (torch.rand(n, num_aus, generator=g) > 0.5).float(), "au_mask": torch.ones(n, num_aus, dtype=torch.bool),
    }  # fmt: skip
    if compound:
        batch["compound"] = torch.randint(0, compound, (n,), generator=g)
    return batch


def sequences(b: int = 2, t: int = 3, size: int = 32, num_aus: int = len(AU_SET), seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "image": torch.randint(0, 256, (b, t, 3, size, size), generator=g, dtype=torch.uint8),
        "audio": torch.rand(b, t, 1, size, size, generator=g) * 2 - 1,
        "landmarks": torch.rand(b, t, 68, 2, generator=g), "landmarks_mask": torch.ones(b, t, dtype=torch.bool),
        "va": torch.rand(b, t, 2, generator=g) * 2 - 1, "va_mask": torch.ones(b, t, 2, dtype=torch.bool),
        "expr": torch.randint(0, 7, (b, t), generator=g),
        "au": (torch.rand(b, t, num_aus, generator=g) > 0.5).float(),
        "au_mask": torch.ones(b, t, num_aus, dtype=torch.bool), "frame_mask": torch.ones(b, t, dtype=torch.bool),
    }  # fmt: skip


def quiet_trainer(**kwargs) -> L.Trainer:
    opts = {"accelerator": "cpu", "devices": 1, "logger": False, "enable_checkpointing": False,
            "enable_progress_bar": False, "enable_model_summary": False, "num_sanity_val_steps": 0}  # fmt: skip
    return L.Trainer(**{**opts, **kwargs})


def one_step(module: L.LightningModule, batch: dict, path: Path) -> Path:
    """Fit ``module`` for one step on ``batch`` and save its checkpoint as the Trainer does."""
    tr = quiet_trainer(max_steps=1, limit_val_batches=0)
    tr.fit(module, DataLoader([batch], batch_size=None))
    tr.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def fbn_checkpoint(tmp_path_factory) -> Path:
    """A tiny FaceBehaviorNet (VA + EXPR + 17 AUs, 32x32) after one training step."""
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("fbn")
    return one_step(FaceBehaviorNetModule(**TINY), frames(), root / "fbn.ckpt")


# ---------------------------------------------------------------- crafted files are refused everywhere
def _fit_start(module: L.LightningModule) -> None:
    module.setup("fit")  # what Trainer.fit calls first: the initial weights are read here


#: entry point -> (key named in the message, what opens the file ``p``)
ENTRY_POINTS: dict[str, tuple[str, Callable[[str], object]]] = {
    "init_checkpoint": ("init_checkpoint", lambda p: _fit_start(MTVGGModule(**TINY, init_checkpoint=p))),
    "init_checkpoint (sequence model)": (
        "init_checkpoint", lambda p: _fit_start(AffWildNetModule(**{**TINY_CNN_RNN, "backbone_nodes": None},
                                                                 init_checkpoint=p))),  # fmt: skip
    "backbone_weights (vggface)": ("backbone_weights", lambda p: _fit_start(MTVGGModule(**VGGFACE, backbone_weights=p))),
    "backbone_weights (timm state dict)": (
        "backbone_weights", lambda p: _fit_start(MTVGGModule(**TINY, backbone_weights=p))),
    "mtvgg_checkpoint": ("mtvgg_checkpoint", lambda p: _fit_start(MTVGGGRUModule(**TINY_SEQ, mtvgg_checkpoint=p))),
    "visual_checkpoint": (
        "visual_checkpoint", lambda p: _fit_start(AVMTVGGGRUModule(**TINY_SEQ, audio_size=32, visual_checkpoint=p))),
    "audio_checkpoint": (
        "audio_checkpoint", lambda p: _fit_start(AVMTVGGGRUModule(**TINY_SEQ, audio_size=32, audio_checkpoint=p))),
    "one_rnn_checkpoint": (
        "one_rnn_checkpoint", lambda p: _fit_start(ModelLevelFusionModule(**TINY_CNN_RNN, one_rnn_checkpoint=p))),
    "three_rnn_checkpoint": (
        "three_rnn_checkpoint", lambda p: _fit_start(ModelLevelFusionModule(**TINY_CNN_RNN, three_rnn_checkpoint=p))),
    "ZeroShotCompound(checkpoint)": ("FaceBehaviorNet checkpoint", lambda p: ZeroShotCompound(p)),
    "CompoundFineTune(init_checkpoint)": (
        "FaceBehaviorNet checkpoint", lambda p: CompoundFineTune(init_checkpoint=p, image_size=32)),
}  # fmt: skip


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_crafted_file_is_refused_at_every_entry_point(entry, tmp_path):
    key, open_file = ENTRY_POINTS[entry]
    marker = tmp_path / "marker"
    path = crafted_file(tmp_path / "crafted.ckpt", marker)
    with pytest.raises(UnsafeWeightsFileError) as info:
        open_file(str(path))
    message = str(info.value)
    assert "\n" not in message, message  # one line
    assert message.startswith(f"{key}: refused {path}: loading it would unpickle Python objects (it names "), message
    assert "trusted_weights: true" in message and "add_safe_globals" not in message
    assert not marker.exists()


def test_crafted_vggface_file_from_the_environment_is_refused(tmp_path, monkeypatch):
    marker = tmp_path / "marker"
    monkeypatch.setenv(VGGFACE_ENV, str(crafted_file(tmp_path / "vgg_face.pth", marker)))
    with pytest.raises(UnsafeWeightsFileError, match=r"^backbone_weights: refused .*vgg_face\.pth"):
        _fit_start(MTVGGModule(**VGGFACE))
    assert not marker.exists()


def test_crafted_file_is_refused_through_the_trainer(tmp_path):
    """What ``affect fit`` runs: the refusal surfaces from Trainer.fit before any step."""
    marker = tmp_path / "marker"
    module = MTVGGModule(**TINY, init_checkpoint=str(crafted_file(tmp_path / "crafted.ckpt", marker)))
    with pytest.raises(UnsafeWeightsFileError, match="init_checkpoint: refused"):
        quiet_trainer(max_steps=1).fit(module, DataLoader([frames()], batch_size=None))
    assert not marker.exists() and module.global_step == 0


@pytest.mark.parametrize("how", ["validate", "test", "predict", "fit", "load_from_checkpoint"])
def test_crafted_ckpt_path_is_refused_by_lightning(how, tmp_path):
    """``--ckpt_path`` goes through Lightning, whose local-file load is torch's safe default."""
    marker = tmp_path / "marker"
    path = str(crafted_file(tmp_path / "crafted.ckpt", marker, hyper_parameters=dict(TINY)))
    loader = DataLoader([frames()], batch_size=None)
    with pytest.raises(pickle.UnpicklingError):
        if how == "load_from_checkpoint":
            MTVGGModule.load_from_checkpoint(path)
        else:
            trainer = quiet_trainer(max_steps=1)
            getattr(trainer, how)(MTVGGModule(**TINY), loader, ckpt_path=path)
    assert not marker.exists()


def test_trusted_weights_is_a_real_opt_in(tmp_path):
    """With ``trusted_weights`` the file is unpickled (the marker appears) and its tensors are loaded."""
    source = MTVGGModule(**TINY)
    marker = tmp_path / "marker"
    path = crafted_file(tmp_path / "crafted.ckpt", marker, state=source.state_dict())
    module = MTVGGModule(**TINY, init_checkpoint=str(path), trusted_weights=True)
    with pytest.warns(UserWarning, match=r"init_checkpoint: unpickling .*crafted\.ckpt \(trusted_weights is set\)"):
        module.setup("fit")
    assert marker.exists()
    torch.testing.assert_close(module.net.fc1.weight, source.net.fc1.weight)

    marker.unlink()  # the VGG-FACE file too
    vgg = MTVGGModule(**VGGFACE, trusted_weights=True)
    weights = oxford_weights(vgg)
    vgg.hparams.backbone_weights = str(crafted_file(tmp_path / "vgg_face.pth", marker, state=weights))
    with pytest.warns(UserWarning, match="backbone_weights: unpickling"):
        vgg.setup("fit")
    assert marker.exists()
    torch.testing.assert_close(vgg.net.backbone.body.state_dict()["features.0.weight"], weights["conv1_1.weight"])


def test_trusted_weights_for_the_compound_models(fbn_checkpoint, tmp_path):
    ckpt = torch.load(fbn_checkpoint, weights_only=True)
    marker = tmp_path / "marker"
    crafted = crafted_file(tmp_path / "crafted.ckpt", marker, state=ckpt["state_dict"],
                           hyper_parameters=ckpt["hyper_parameters"], affect=ckpt["affect"])  # fmt: skip
    with pytest.warns(UserWarning, match="unpickling"):
        zero_shot = ZeroShotCompound(str(crafted), trusted_weights=True)
    assert marker.exists()
    reference = ZeroShotCompound(str(fbn_checkpoint))
    for k, v in reference.net.state_dict().items():
        torch.testing.assert_close(zero_shot.net.state_dict()[k], v)
    marker.unlink()
    with pytest.warns(UserWarning, match="unpickling"):
        CompoundFineTune(init_checkpoint=str(crafted), image_size=32, trusted_weights=True)
    assert marker.exists()


@pytest.mark.parametrize(
    "content,reason",
    [
        (b"epochs: 3\nlr: 0.001\n", "neither a torch.save zip archive nor a pickle"),  # a YAML file given by mistake
        (b"PK\x03\x04not really a zip archive", "failed reading zip archive"),
    ],
)
def test_a_file_that_is_not_a_weights_file(content, reason, tmp_path):
    path = tmp_path / "weights.ckpt"
    path.write_bytes(content)
    with pytest.raises(WeightsFileError) as info:
        MTVGGModule(**TINY, init_checkpoint=str(path)).setup("fit")
    message = str(info.value)
    assert not isinstance(info.value, UnsafeWeightsFileError)
    assert message.startswith(f"init_checkpoint: {path} is not a PyTorch weights file"), message
    assert reason in message and "\n" not in message
    assert "weights_only" not in message  # not torch's advice to unpickle the file anyway
    with pytest.raises(WeightsFileError, match="is not a PyTorch weights file"):
        read_weights(path)


def test_a_pickle_the_safe_loader_cannot_read(tmp_path):
    """A damaged pickle, or one of another protocol, is refused (only the full unpickler could try it);
    with trusted_weights a damaged one is still an error naming the file, not a raw unpickling error."""
    damaged = tmp_path / "damaged.ckpt"
    damaged.write_bytes(b"\x80\x02 damaged pickle")
    with pytest.raises(UnsafeWeightsFileError, match=r"refused .*damaged\.ckpt: the safe loader cannot read it \(pickle operand 32"):
        read_weights(damaged, key="init_checkpoint")
    with pytest.warns(UserWarning, match="unpickling"), pytest.raises(WeightsFileError, match="is not a PyTorch weights file"):
        read_weights(damaged, trusted=True)
    state = {"net.fc1.weight": torch.ones(2)}
    torch.save(state, tmp_path / "protocol4.ckpt", pickle_protocol=4)  # plain tensors, but a newer protocol
    with pytest.raises(UnsafeWeightsFileError, match="a pickle protocol other than 2"):
        read_weights(tmp_path / "protocol4.ckpt")
    with pytest.warns(UserWarning, match="unpickling"):
        torch.testing.assert_close(read_weights(tmp_path / "protocol4.ckpt", trusted=True), state)


# ---------------------------------------------------------------- our own checkpoints are safe
#: model -> (module factory, a training batch)
OWN_MODELS: dict[str, tuple[Callable[[], L.LightningModule], Callable[[], dict]]] = {
    "MTVGGModule": (lambda: MTVGGModule(**TINY), frames),
    "FaceBehaviorNetModule (coupled loss)": (
        lambda: FaceBehaviorNetModule(**TINY, loss=MultiTaskLoss(distribution_matching=True, soft_co_annotation=True)),
        frames),
    "AffWildNetModule": (lambda: AffWildNetModule(backbone="test_resnet", fc_units=8, rnn_hidden=4, image_size=32),
                         sequences),
    "CNNRNNModule": (lambda: CNNRNNModule(mode="1rnn", **TINY_CNN_RNN), sequences),
    "ModelLevelFusionModule": (lambda: ModelLevelFusionModule(fusion="fc", **TINY_CNN_RNN), sequences),
    "MTVGGGRUModule (audio)": (lambda: MTVGGGRUModule(**TINY_SEQ, input_key="audio"), sequences),
    "AVMTVGGGRUModule": (lambda: AVMTVGGGRUModule(**TINY_SEQ, audio_size=32), sequences),
    "CompoundFineTune": (lambda: CompoundFineTune(**TINY, classes=["A", "B", "C"], log_media=False),
                         lambda: frames(compound=3)),
}  # fmt: skip


@pytest.mark.parametrize("model", list(OWN_MODELS))
def test_own_checkpoints_load_safely(model, tmp_path):
    make, batch = OWN_MODELS[model]
    torch.manual_seed(0)
    module = make()
    path = one_step(module, batch(), tmp_path / "own.ckpt")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)  # nothing but plain types and tensors
    assert set(ckpt["state_dict"]) == set(module.state_dict())
    read_weights(path)  # and through our reader, without trusted_weights
    loaded = type(module).load_from_checkpoint(path, map_location="cpu")
    for k, v in module.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v, rtol=0, atol=0, msg=k)


def test_zero_shot_checkpoint_loads_safely(fbn_checkpoint, tmp_path):
    module = ZeroShotCompound(str(fbn_checkpoint), log_media=False)
    tr = quiet_trainer()
    tr.validate(module, DataLoader([frames(compound=11)], batch_size=None), verbose=False)
    tr.save_checkpoint(tmp_path / "zs.ckpt")
    ckpt = torch.load(tmp_path / "zs.ckpt", weights_only=True)
    assert ckpt["affect"]["au_set"] == list(AU_SET)
    loaded = ZeroShotCompound.load_from_checkpoint(tmp_path / "zs.ckpt")
    for k, v in module.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v, rtol=0, atol=0, msg=k)


def test_restored_without_the_files_that_initialised_it(tmp_path):
    """init_checkpoint and backbone_weights are read when fit starts; test / validate from the run's own
    checkpoint never reopen them (they may be gone)."""
    torch.manual_seed(0)
    probe = MTVGGModule(**VGGFACE)
    vgg_file = tmp_path / "vgg_face.pth"
    torch.save(oxford_weights(probe), vgg_file)
    init_file = tmp_path / "init.ckpt"
    torch.save({"state_dict": {"net.fc1.weight": torch.full_like(probe.net.fc1.weight, 0.01)}}, init_file)
    args = {**VGGFACE, "backbone_weights": str(vgg_file), "init_checkpoint": str(init_file), "lr": 0.0}
    module = MTVGGModule(**args)
    own = one_step(module, frames(), tmp_path / "own.ckpt")
    torch.testing.assert_close(module.net.fc1.weight, torch.full_like(module.net.fc1.weight, 0.01))  # lr 0
    vgg_file.unlink()
    init_file.unlink()
    loader = DataLoader([frames(seed=1)], batch_size=None)

    restored = MTVGGModule.load_from_checkpoint(own)
    validated = quiet_trainer().validate(restored, loader, verbose=False)[0]
    tested = MTVGGModule(**args)  # the run's settings, weights from --ckpt_path
    result = quiet_trainer().test(tested, loader, ckpt_path=own, verbose=False)[0]
    for other in (restored, tested):
        for k, v in module.state_dict().items():
            torch.testing.assert_close(other.state_dict()[k], v, rtol=0, atol=0, msg=k)
    assert result["test/va/ccc"] == pytest.approx(validated["val/va/ccc"], abs=1e-6)
    with pytest.raises(WeightsFileError, match=r"vgg_face\.pth does not exist"):  # the files are really gone
        MTVGGModule(**args).setup("fit")


# ---------------------------------------------------------------- VGG-FACE weights
VGGFACE_MODULES: dict[str, Callable[[], L.LightningModule]] = {
    "MTVGGModule": lambda: MTVGGModule(hidden=8, image_size=32),
    "FaceBehaviorNetModule": lambda: FaceBehaviorNetModule(hidden=8, image_size=32),
    "AffWildNetModule": lambda: AffWildNetModule(fc_units=8, rnn_hidden=4, image_size=32),
    "CNNRNNModule": lambda: CNNRNNModule(fc_units=8, rnn_hidden=4, image_size=32),
    "MTVGGGRUModule": lambda: MTVGGGRUModule(hidden=8, rnn_hidden=4, image_size=32),
    "AVMTVGGGRUModule (backbone vggface)": lambda: AVMTVGGGRUModule(backbone="vggface", hidden=8, rnn_hidden=4,
                                                                    image_size=32, audio_size=32),
}  # fmt: skip


@pytest.mark.parametrize("model", list(VGGFACE_MODULES))
def test_vggface_without_weights_fails_at_fit_start(model):
    module = VGGFACE_MODULES[model]()  # building it needs no file (validate / test / predict from a checkpoint)
    assert module.hparams.backbone == "vggface"
    with pytest.raises(WeightsFileError) as info:
        module.setup("fit")
    message = str(info.value)
    assert "\n" not in message and message.startswith("backbone 'vggface' needs its weights file and none is set")
    assert VGGFACE_ENV in message and OXFORD_PAGE in message and "backbone vgg16" in message


def test_vggface_without_weights_fails_through_the_trainer():
    module = MTVGGModule(**VGGFACE)
    with pytest.raises(WeightsFileError, match=f"{re.escape(OXFORD_PAGE)}.*{VGGFACE_ENV}"):
        quiet_trainer(max_steps=1).fit(module, DataLoader([frames()], batch_size=None))
    assert module.global_step == 0


def test_vggface_weights_from_the_environment(tmp_path, monkeypatch):
    module = MTVGGModule(**VGGFACE)
    weights = oxford_weights(module, seed=3)
    weights["fc8.weight"] = torch.zeros(2622, 4)  # the face-identity layer is discarded (Sec. VI-A)
    torch.save(weights, tmp_path / "vgg_face.pth")  # a converted Oxford file
    monkeypatch.setenv(VGGFACE_ENV, str(tmp_path / "vgg_face.pth"))
    module.setup("fit")
    body = module.net.backbone.body.state_dict()
    for name, i in VGGFACE_CONV_INDEX.items():
        assert torch.equal(body[f"features.{i}.weight"], weights[f"{name}.weight"]), name
    # backbone_weights wins over the environment, and may name a variable itself
    monkeypatch.setenv("AFFECT_TEST_WEIGHTS_DIR", str(tmp_path))
    torch.save(oxford_weights(module, seed=4), tmp_path / "other.pth")
    other = MTVGGModule(**VGGFACE, backbone_weights="${AFFECT_TEST_WEIGHTS_DIR}/other.pth")
    other.setup("fit")
    assert torch.equal(other.net.backbone.body.state_dict()["features.0.weight"],
                       oxford_weights(module, seed=4)["conv1_1.weight"])  # fmt: skip
    unset = MTVGGModule(**VGGFACE, backbone_weights="$AFFECT_UNSET_VARIABLE/vgg_face.pth")
    with pytest.raises(WeightsFileError, match=r"backbone_weights: \$AFFECT_UNSET_VARIABLE/vgg_face.pth names an environment"):
        unset.setup("fit")


def test_vggface_file_of_another_network_is_an_error(tmp_path, monkeypatch):
    """A CNN-RNN checkpoint given as VGG-FACE file: strict, every offending key listed."""
    torch.save(CNNRNN("1rnn", **TINY_CNN_RNN).state_dict(), tmp_path / "not_vggface.pth")
    monkeypatch.setenv(VGGFACE_ENV, str(tmp_path / "not_vggface.pth"))
    with pytest.raises(WeightsFileError, match=r"(?s)backbone_weights: VGG-FACE checkpoint does not fit.*missing keys \(26\)"):
        MTVGGModule(**VGGFACE).setup("fit")
