"""Multi-level feature maps (``features_only``), over the whole registry."""

from __future__ import annotations

import pytest
import torch

from cnnzoo import create_model, list_models, model_info
from cnnzoo.errors import ParamError

ALL = list_models()


def _build(name: str, **kw):
    info = model_info(name)
    with torch.device("meta"):  # shapes only: the whole zoo at its paper input in seconds
        return create_model(name, features_only=True, in_chans=info.input_size[0], **kw), info


@pytest.mark.parametrize("name", ALL)
def test_feature_maps_match_feature_info(name):
    m, info = _build(name)
    fi = m.feature_info
    assert len(fi) >= 1 and len(fi) == len(m.out_indices)
    c, h, w = info.input_size
    maps = m(torch.zeros(2, c, h, w, device="meta"))
    assert len(maps) == len(fi)
    for f, info_f in zip(maps, fi):
        assert f.dim() == 4 and f.shape[0] == 2 and f.shape[1] == info_f["num_chs"]
        # The nominal stride: the map's side is the input's over the reduction, within a factor 2 for unpadded layers.
        assert h / f.shape[2] / 2 <= info_f["reduction"] <= h / f.shape[2] * 2
    assert fi.reduction() == sorted(fi.reduction()), "features run from shallow to deep"
    assert set(fi.stages()) <= set(info.stages) and "head" not in fi.stages()


@pytest.mark.parametrize("name", ["resnet18", "densenet121", "mobilenet_v2", "googlenet", "vgg11_bn"])
def test_timm_shaped_feature_info(name):
    m, _ = _build(name)
    assert m.feature_info.reduction()[-1] == 32  # the last map of an ImageNet network: stride 32
    # The deepest map feeds the classifier: its channels are the pooled features (VGG's FC layers come after).
    expected = 512 if name.startswith("vgg") else m.model.num_features
    assert m.feature_info.channels()[-1] == expected


def test_resnet50_feature_info_is_the_usual_one():
    m, _ = _build("resnet50")
    assert m.feature_info.channels() == [64, 256, 512, 1024, 2048]
    assert m.feature_info.reduction() == [4, 4, 8, 16, 32]


def test_out_indices_and_real_values():
    """The maps are the network's own intermediate tensors: the last one is forward_features' output."""
    torch.manual_seed(0)
    full = create_model("resnet18", num_classes=10, in_chans=1, small_input=True).eval()
    feats = create_model("resnet18", num_classes=10, in_chans=1, small_input=True, features_only=True,
                         out_indices=(1, -1)).eval()
    feats.model.load_state_dict(full.state_dict())
    x = torch.randn(2, 1, 28, 28)
    a, b = feats(x)
    assert feats.feature_info.stages() == ["stage1", "stage4"]
    assert a.shape == (2, 64, 28, 28) and b.shape == (2, 512, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(b, full.forward_features(x))
        torch.testing.assert_close(a, full.layer1(full.maxpool(full.relu(full.bn1(full.conv1(x))))))


def test_bad_out_indices_and_models_without_maps():
    with pytest.raises(ParamError, match=r"out_indices=\(7,\) is out of range: resnet18 has 5 feature maps"):
        create_model("resnet18", features_only=True, out_indices=(7,))
    with pytest.raises(ValueError, match="out_indices needs features_only=True"):
        create_model("lenet5", out_indices=(0,))
