"""Backbones by timm name, multi-level taps and VGG-FACE checkpoint loading (affect.models.backbones).

The VGG-16 layout is checked against an independent reference, torchvision's ``vgg16().features``:
same weights in, same pool2 / pool5 features out.
"""

from __future__ import annotations

import pytest
import torch
from torchvision.models.vgg import cfgs, make_layers

from affect.models.backbones import (
    VGG16_MULTI_LEVEL,
    VGGFACE_CONV_INDEX,
    Backbone,
    VGGFaceLoadError,
    load_vggface,
    vggface_state_dict,
)
from affect.models.weights import WeightsFileError

# VGG-FACE conv layers (Oxford release names) with their real [out, in, 3, 3] shapes.
VGGFACE_CONVS = {
    "conv1_1": (64, 3), "conv1_2": (64, 64),
    "conv2_1": (128, 64), "conv2_2": (128, 128),
    "conv3_1": (256, 128), "conv3_2": (256, 256), "conv3_3": (256, 256),
    "conv4_1": (512, 256), "conv4_2": (512, 512), "conv4_3": (512, 512),
    "conv5_1": (512, 512), "conv5_2": (512, 512), "conv5_3": (512, 512),
}  # fmt: skip


def oxford_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A VGG-FACE state dict with Oxford names, real conv shapes, random values (+ the FC layers)."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for name, (cout, cin) in VGGFACE_CONVS.items():
        sd[f"{name}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * (2.0 / (9 * cin)) ** 0.5
        sd[f"{name}.bias"] = torch.randn(cout, generator=g) * 0.01
    sd["fc8.weight"] = torch.zeros(2622, 4096)  # real fc8 shape: 2622 identities
    sd["fc8.bias"] = torch.zeros(2622)
    sd["fc6.bias"] = torch.zeros(4096)  # fc6/fc7 weights (119 M values) left out to keep the test light
    sd["fc7.bias"] = torch.zeros(4096)
    return sd


@pytest.fixture(scope="module")
def vgg_multi() -> Backbone:
    return Backbone("vgg16", nodes=VGG16_MULTI_LEVEL, image_size=96)


@pytest.fixture(scope="module")
def tv_features() -> torch.nn.Sequential:
    """torchvision's VGG-16 ``features`` (conv/pool only; built without its 123 M-parameter classifier)."""
    return make_layers(cfgs["D"]).eval()


def test_tiny_backbone_shapes_at_96():
    net = Backbone("test_resnet", image_size=96)
    assert net.nodes == ["layer4"]
    assert net.shapes == [(96, 3, 3)] and net.out_dims == [96 * 9]
    out = net(torch.randn(2, 3, 96, 96))
    assert len(out) == 1 and out[0].shape == (2, 96, 3, 3)


def test_single_channel_input():
    net = Backbone("test_resnet", image_size=64, in_chans=1)
    assert net(torch.randn(2, 1, 64, 64))[0].shape == (2, 96, 2, 2)


def test_vgg16_is_conv_only_and_multi_level_shapes(vgg_multi, tv_features):
    n_ref = sum(p.numel() for p in tv_features.parameters())
    assert sum(p.numel() for p in vgg_multi.parameters()) == n_ref == 14_714_688  # no fc6 / fc7
    assert vgg_multi.shapes == [(128, 24, 24), (512, 3, 3)]  # 2nd pool (after conv 4), last pool
    assert vgg_multi.out_dims == [128 * 24 * 24, 512 * 9]
    assert sorted(vgg_multi.body.state_dict(), key=len)[:2] == ["features.0.bias", "features.2.bias"]


def test_default_vgg_tap_is_last_pool():
    net = Backbone("vgg16", image_size=32)
    assert net.nodes == ["features.30"] and net.shapes == [(512, 1, 1)]


def test_unknown_node_lists_available():
    with pytest.raises(ValueError, match=r"cannot tap nodes \['nope'\].*Available nodes: .*layer4"):
        Backbone("test_resnet", nodes=["nope"], image_size=32)


def test_vggface_mapping_is_the_torchvision_conv_layout(tv_features):
    convs = [i for i, m in enumerate(tv_features) if isinstance(m, torch.nn.Conv2d)]
    assert list(VGGFACE_CONV_INDEX.values()) == convs
    assert list(VGGFACE_CONV_INDEX) == list(VGGFACE_CONVS)


def test_vggface_round_trip_matches_torchvision(vgg_multi, tv_features, tmp_path):
    sd = oxford_state_dict()
    path = tmp_path / "vgg_face.pth"
    torch.save({"module." + k: v for k, v in sd.items()}, path)  # DataParallel-style prefix, from a file
    load_vggface(vgg_multi, path)
    got = vgg_multi.body.state_dict()
    for name, idx in VGGFACE_CONV_INDEX.items():
        assert torch.equal(got[f"features.{idx}.weight"], sd[f"{name}.weight"])
        assert torch.equal(got[f"features.{idx}.bias"], sd[f"{name}.bias"])

    reference = tv_features
    reference.load_state_dict(
        {
            f"{VGGFACE_CONV_INDEX[k.split('.')[0]]}.{k.split('.')[1]}": v
            for k, v in sd.items()
            if k.startswith("conv")
        }
    )
    x = torch.randn(2, 3, 96, 96)
    vgg_multi.eval()
    with torch.no_grad():
        pool2, pool5 = vgg_multi(x)
        torch.testing.assert_close(pool2, reference[:10](x))
        torch.testing.assert_close(pool5, reference(x))


def test_vggface_torchvision_names_load(vgg_multi):
    reference = make_layers(cfgs["D"])
    sd = {f"features.{k}": v for k, v in reference.state_dict().items()}
    sd["classifier.6.bias"] = torch.zeros(1000)  # torchvision's FC layers are dropped
    load_vggface(vgg_multi, sd)
    torch.testing.assert_close(vgg_multi.body.state_dict()["features.28.weight"], reference[28].weight)


def test_vggface_mismatch_error_lists_every_problem(vgg_multi):
    sd = oxford_state_dict()
    sd["conv3_2.weight"] = torch.zeros(256, 128, 3, 3)  # wrong in-channels
    del sd["conv5_3.bias"]
    sd["conv6_1.weight"] = torch.zeros(8, 8, 3, 3)
    before = vgg_multi.body.state_dict()["features.0.weight"].clone()
    with pytest.raises(VGGFaceLoadError) as info:
        load_vggface(vgg_multi, sd)
    msg = str(info.value)
    assert "missing keys (1): ['features.28.bias']" in msg
    assert "unexpected keys (1): ['conv6_1.weight']" in msg
    assert (
        "shape mismatches (1): ['features.12.weight: checkpoint (256, 128, 3, 3) vs model (256, 256, 3, 3)']"
        in msg
    )
    assert torch.equal(vgg_multi.body.state_dict()["features.0.weight"], before)  # nothing half-loaded


def test_vggface_into_non_vgg_backbone_fails():
    with pytest.raises(VGGFaceLoadError, match=r"(?s)does not fit backbone 'test_resnet'.*missing keys"):
        load_vggface(Backbone("test_resnet", image_size=32), oxford_state_dict())


def test_vggface_bad_inputs(tmp_path):
    with pytest.raises(WeightsFileError, match=r"^backbone_weights: .*absent\.pth does not exist$"):
        vggface_state_dict(tmp_path / "absent.pth")
    with pytest.raises(VGGFaceLoadError, match="must be a state dict"):
        vggface_state_dict([torch.zeros(1)])
    nested = vggface_state_dict({"state_dict": {"conv1_1.bias": torch.zeros(64)}})
    assert list(nested) == ["features.0.bias"]
