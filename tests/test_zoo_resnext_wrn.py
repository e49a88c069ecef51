"""ResNeXt, Wide ResNet and SE-ResNeXt: published counts, cardinality, block order, the dropout option."""

from __future__ import annotations

from typing import List

import pytest
import torch
from torch import nn

from cnnzoo import count_params, create_model
from cnnzoo.models.resnet import Bottleneck
from cnnzoo.models.wide_resnet import WideBasicBlock, WideResNet

# The exact published counts are in tests/test_models.py (PUBLISHED), with every family's.
# 10 classes, millions: ResNeXt paper Table 7, WRN paper Tables 4-6.
CIFAR_PAPER = [("resnext29_8x64d", "34.4"), ("resnext29_16x64d", "68.1"), ("wrn28_10", "36.5"),
               ("wrn16_8", "11.0"), ("wrn40_4", "8.9")]


def _meta(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, **kwargs)


def _call_order(block: nn.Module, x: torch.Tensor) -> List[str]:
    """The names of ``block``'s direct children in the order its forward pass calls them."""
    order: List[str] = []
    hooks = [child.register_forward_hook(lambda m, i, o, n=name: order.append(n))
             for name, child in block.named_children()]
    try:
        block(x)
    finally:
        for h in hooks:
            h.remove()
    return order


@pytest.mark.parametrize("name,millions", CIFAR_PAPER)
def test_cifar_counts_to_the_papers_rounding(name, millions):
    """Both papers count the weights outside BatchNorm: 68.05M for ResNeXt-29 16x64d (68.16M with BN)."""
    m = _meta(name, num_classes=10)
    n = sum(p.numel() for mod in m.modules() if not isinstance(mod, nn.BatchNorm2d)
            for p in mod.parameters(recurse=False))
    assert f"{n / 1e6:.1f}" == millions, n


def _resnext29_params(cardinality: int, d: int, classes: int = 10) -> int:
    """Section 5.3 counted by hand: 3x3 stem of 64, 3 x 3 bottlenecks (C x d grouped, doubling), FC."""
    total, inplanes = 3 * 64 * 9 + 2 * 64, 64
    for stage in range(3):
        width, out = cardinality * d * 2 ** stage, 256 * 2 ** stage
        for block in range(3):
            total += inplanes * width + 9 * width * width // cardinality + width * out + 2 * (2 * width + out)
            if block == 0:
                total += inplanes * out + 2 * out  # projection shortcut + BN
            inplanes = out
    return total + 1024 * classes + classes


def _wrn_params(depth: int, k: int, classes: int = 10) -> int:
    """Table 1 counted by hand: 3x3 stem of 16, BN-ReLU-conv blocks of 16k-32k-64k, final BN, FC."""
    n, total, inplanes = (depth - 4) // 6, 3 * 16 * 9, 16
    for width in (16 * k, 32 * k, 64 * k):
        for block in range(n):
            total += 2 * inplanes + 9 * inplanes * width + 2 * width + 9 * width * width
            if block == 0 and inplanes != width:
                total += inplanes * width  # 1x1 projection of the pre-activated input
            inplanes = width
    return total + 2 * inplanes + inplanes * classes + classes


@pytest.mark.parametrize("name,expected", [
    ("resnext29_8x64d", _resnext29_params(8, 64)), ("resnext29_16x64d", _resnext29_params(16, 64)),
    ("wrn28_10", _wrn_params(28, 10)), ("wrn16_8", _wrn_params(16, 8)), ("wrn40_4", _wrn_params(40, 4)),
])
def test_cifar_counts_follow_the_tables(name, expected):
    assert count_params(name, num_classes=10) == expected


# name, cardinality C, width per group d of the first stage (ResNet-50: 1 x 64; WRN-50-2: 1 x 128).
TEMPLATES = [("resnext50_32x4d", 32, 4), ("resnext101_32x8d", 32, 8), ("resnext101_64x4d", 64, 4),
             ("resnext29_8x64d", 8, 64), ("se_resnext50_32x4d", 32, 4), ("wide_resnet50_2", 1, 128),
             ("resnet50", 1, 64)]


@pytest.mark.parametrize("name,cardinality,d", TEMPLATES)
def test_grouped_width_follows_cardinality(name, cardinality, d):
    """Every 3x3 has groups == C and C x d channels in the first stage, doubling per stage; outputs 256 x 2^i."""
    m = _meta(name)
    for i, stage in enumerate(m.layer_names):
        for block in m.get_submodule(stage):
            assert isinstance(block, Bottleneck)
            assert block.conv2.groups == cardinality
            assert block.conv2.in_channels == block.conv2.out_channels == cardinality * d * 2 ** i
            assert block.conv3.out_channels == 256 * 2 ** i


@pytest.mark.parametrize("name,side,expected", [
    ("resnext29_16x64d", 32, [(256, 32), (512, 16), (1024, 8)]),
    ("wrn28_10", 32, [(160, 32), (320, 16), (640, 8)]),
    ("resnext50_32x4d", 224, [(256, 56), (512, 28), (1024, 14), (2048, 7)]),
])
def test_stage_outputs(name, side, expected):
    """The tables' stage widths and map sizes, traced on the meta device."""
    m = _meta(name)
    shapes = []
    for stage in m.stage_names[1:-1]:
        first = m.get_submodule(m.stage_map[stage][0])
        first.register_forward_hook(lambda mod, i, o: shapes.append(tuple(o.shape[1:])))
    m.forward_features(torch.empty(1, 3, side, side, device="meta"))
    assert shapes == [(c, s, s) for c, s in expected]


def test_se_after_the_last_bn_before_the_addition():
    """SE-ResNeXt's bottleneck: ... conv3, bn3, SE (r=16), then the sum and the ReLU."""
    m = _meta("se_resnext50_32x4d")
    for stage in m.layer_names:
        for block in m.get_submodule(stage):
            assert block.se.fc1.out_channels == block.conv3.out_channels // 16
    block = Bottleneck(256, 64, se_reduction=16, groups=32, base_width=4).eval()
    x = torch.randn(1, 256, 4, 4)
    with torch.no_grad():
        order = _call_order(block, x)
        assert order[-3:] == ["bn3", "se", "relu"]
        branch = block.bn3(block.conv3(block.relu(block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x))))))))
        torch.testing.assert_close(block(x), torch.relu(block.se(branch) + x))
    assert _meta("resnext50_32x4d").layer1[0].se is None


def test_wrn_blocks_are_pre_activation():
    """BN-ReLU-conv, twice; the projection takes the pre-activated input, the identity the raw one."""
    block = WideBasicBlock(16, 160).eval()
    assert isinstance(next(block.children()), nn.BatchNorm2d)
    x = torch.randn(1, 16, 4, 4)
    with torch.no_grad():
        assert _call_order(block, x) == ["bn1", "relu1", "conv1", "bn2", "relu2", "conv2", "downsample"]
        pre = block.relu1(block.bn1(x))
        branch = block.conv2(block.relu2(block.bn2(block.conv1(pre))))
        torch.testing.assert_close(block(x), branch + block.downsample(pre))
    m = _meta("wrn28_10")
    blocks = [b for s in ("layer1", "layer2", "layer3") for b in m.get_submodule(s)]
    assert len(blocks) == 12 and all(isinstance(next(b.children()), nn.BatchNorm2d) for b in blocks)
    assert [b.downsample is not None for b in blocks] == [True, False, False, False] * 3


def test_wrn_dropout_only_when_set():
    assert not any(isinstance(mod, nn.Dropout) for mod in _meta("wrn28_10").modules())
    m = _meta("wrn16_8", dropout=0.3)
    drops = [mod for mod in m.modules() if isinstance(mod, nn.Dropout)]
    assert len(drops) == 6 and all(d.p == 0.3 for d in drops)
    block = WideBasicBlock(16, 16, dropout=0.3)
    order = _call_order(block.eval(), torch.randn(1, 16, 4, 4))
    assert order == ["bn1", "relu1", "conv1", "bn2", "relu2", "dropout", "conv2"]
    with pytest.raises(ValueError, match="dropout"):
        create_model("wrn16_8", dropout=1.0)


def test_invalid_configurations_are_refused():
    with pytest.raises(ValueError, match="6N\\+4"):
        WideResNet(17, 4)
    with pytest.raises(ValueError, match="groups=1"):
        create_model("resnet18", groups=32)
    with pytest.raises(ValueError, match="stage_widths"):
        create_model("resnext29_8x64d", stage_widths=(64, 128))
