"""Pre-activation ResNets (He et al. 2016, arXiv 1603.05027) and Darknet-53 (YOLOv3, arXiv 1804.02767)."""

from __future__ import annotations

from functools import partial
from typing import List

import pytest
import torch
from torch import nn

from cnnzoo import count_params, create_model, model_info
from cnnzoo.models.darknet import DARKNET53, DarkBlock
from cnnzoo.models.preact_resnet import CIFAR_WIDTHS, PreActResNet, PreActUnit


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _meta(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, **kwargs).eval()


def _leaf_calls(model: nn.Module, x: torch.Tensor) -> List[nn.Module]:
    """The leaf modules in the order ``model.forward_features(x)`` runs them."""
    calls: List[nn.Module] = []
    hooks = [m.register_forward_pre_hook(lambda mod, args: calls.append(mod))
             for m in model.modules() if not any(True for _ in m.children())]
    try:
        with torch.no_grad():
            model.forward_features(x)
    finally:
        for h in hooks:
            h.remove()
    return calls


# --------------------------------------------------------------------------------------- parameter counts

# The v1 ResNets' counts (torchvision's model cards) less the BN placement: 2 x (stem BN 64 + projection BNs
# + the widths the first units normalise less - the final BN).
FROM_V1 = [
    ("preact_resnet18", 11_689_512, 2 * (64 + (128 + 256 + 512) + (64 + 128 + 256) - 512), 11_687_720),
    ("preact_resnet34", 21_797_672, 2 * (64 + (128 + 256 + 512) + (64 + 128 + 256) - 512), 21_795_880),
    ("preact_resnet50", 25_557_032, 2 * (64 + (256 + 512 + 1024 + 2048) + (192 + 256 + 512 + 1024) - 2048),
     25_549_352),
]
@pytest.mark.parametrize("name,v1,moved,expected", FROM_V1, ids=[f[0] for f in FROM_V1])
def test_preact_counts_are_v1_less_the_moved_batchnorms(name, v1, moved, expected):
    assert v1 - moved == expected
    assert count_params(name) == expected
    assert count_params(name.replace("preact_", "")) == v1


def _branch_convs(model: nn.Module) -> int:
    return sum(len(u.convs) for u in model.modules() if isinstance(u, PreActUnit))


def test_resnet1001_table_gives_the_papers_depth_and_size():
    """ResNet-1001 (n = 111, not registered): 999 unit convolutions + stem + FC; 10.2M weights in them."""
    with torch.device("meta"):
        m = PreActResNet("bottleneck", (111,) * 3, CIFAR_WIDTHS, num_classes=10, small_input=True)
    assert _branch_convs(m) + 2 == 1001
    weights = sum(p.numel() for mod in m.modules() if isinstance(mod, (nn.Conv2d, nn.Linear)) for p in mod.parameters())
    assert f"{weights / 1e6:.1f}" == "10.2", weights
    assert sum(p.numel() for p in m.parameters()) == 10_327_706


@pytest.mark.parametrize("name,depth", [("preact_resnet18", 18), ("preact_resnet34", 34), ("preact_resnet50", 50),
                                        ("preact_resnet110", 110), ("preact_resnet164", 164)])
def test_depth_counts_the_weighted_layers(name, depth):
    """The name's depth: the units' convolutions, the stem convolution and the FC (shortcuts not counted)."""
    assert _branch_convs(_meta(name, num_classes=10)) + 2 == depth


# --------------------------------------------------------------------------------------- pre-activation order


@pytest.mark.parametrize("name", ["preact_resnet18", "preact_resnet164"])
def test_units_open_with_batchnorm_and_end_with_a_convolution(name):
    """Full pre-activation (Fig. 4e): BN first in every unit, the residual branch ends in a convolution."""
    m = _meta(name, num_classes=10)
    calls = _leaf_calls(m, torch.zeros(1, 3, 64, 64, device="meta"))
    units = [u for u in m.modules() if isinstance(u, PreActUnit)]
    for unit in units:
        own = {id(c) for c in unit.modules()} - {id(unit.relu), id(unit.downsample)}
        mine = [c for c in calls if id(c) in own]
        assert mine[0] is unit.norms[0]
        assert [type(c) for c in mine] == [nn.BatchNorm2d, nn.Conv2d] * len(unit.convs)
    # The last unit's sum gets the extra BN-ReLU before the pool, as the network's last two layers.
    assert calls[-2:] == [m.norm, m.relu]


@pytest.mark.parametrize("unit,planes", [("basic", 16), ("bottleneck", 4)])
def test_sum_is_not_activated_and_projection_sees_the_preactivation(unit, planes):
    first = PreActUnit(8, planes, unit, stride=2, shares_preact=True).eval()
    x = torch.randn(2, 8, 8, 8)
    seen = []
    first.downsample.register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    with torch.no_grad():
        out = first(x)
    assert (seen[0] >= 0).all() and (seen[0] > 0).any()  # the BN-ReLU output, shared with the branch
    assert (out < 0).any()  # no ReLU after the addition

    inner = PreActUnit(16, planes, unit).eval()
    assert inner.downsample is None and not inner.shares_preact
    nn.init.zeros_(inner.convs[-1].weight)
    y = torch.randn(2, 16, 4, 4)
    with torch.no_grad():
        torch.testing.assert_close(inner(y), y)  # a zero branch leaves the raw input: identity, nothing after it


@pytest.mark.parametrize("name,kwargs,size,side,min_size", [
    ("preact_resnet18", {}, 224, 7, 32),
    ("preact_resnet18", {"small_input": True}, 32, 4, 8),
    ("preact_resnet18", {"small_input": True}, 28, 4, 8),
    ("preact_resnet110", {}, 32, 8, 4),
])
def test_preact_total_stride(name, kwargs, size, side, min_size):
    m = _meta(name, num_classes=10, **kwargs)
    assert m.forward_features(torch.zeros(1, 3, size, size, device="meta")).shape[-1] == side
    assert m.min_input_size == min_size


def test_preact_rejects_mismatched_tables():
    with pytest.raises(ValueError, match="same stages"):
        PreActResNet("basic", (2, 2), (64, 128, 256))


# --------------------------------------------------------------------------------------- Darknet-53


def test_darknet_residual_unit_halves_then_restores_with_leaky_relu():
    m = _meta("darknet53", num_classes=10)
    blocks = [b for b in m.modules() if isinstance(b, DarkBlock)]
    assert len(blocks) == sum(n for _, n in DARKNET53) == 23
    for b in blocks:
        c1, c2 = b.conv1[0], b.conv2[0]
        assert c1.kernel_size == (1, 1) and c1.out_channels * 2 == c1.in_channels
        assert c2.kernel_size == (3, 3) and c2.in_channels == c1.out_channels and c2.out_channels == c1.in_channels
    acts = [a for a in m.modules() if isinstance(a, (nn.LeakyReLU, nn.ReLU))]
    assert len(acts) == 52 and all(isinstance(a, nn.LeakyReLU) and a.negative_slope == 0.1 for a in acts)
    block = DarkBlock(8, partial(nn.LeakyReLU, 0.1)).eval()
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(block(x), x + block.conv2(block.conv1(x)))  # the sum is not activated


@pytest.mark.parametrize("small,size,sides", [(False, 256, [256, 128, 64, 32, 16, 8]),
                                              (True, 32, [32, 32, 32, 16, 8, 4]),
                                              (True, 28, [28, 28, 28, 14, 7, 4])])
def test_darknet_layer_table(small, size, sides):
    """Table 1: 32-filter stem, five 3x3/2 downsamplings to 64..1024 filters; small_input keeps the first two at 1."""
    m = _meta("darknet53", num_classes=10, small_input=small)
    x = m.stem(torch.zeros(1, 3, size, size, device="meta"))
    maps = [x]
    for stage in m.stages:
        maps.append(stage(maps[-1]))
    assert [t.shape[-1] for t in maps] == sides
    assert [t.shape[1] for t in maps] == [32, 64, 128, 256, 512, 1024]
    assert m.min_input_size == (8 if small else 32)
    assert sum(isinstance(c, nn.Conv2d) for c in m.modules()) + 1 == 53
    assert model_info("darknet53").input_size == (3, 256, 256)
