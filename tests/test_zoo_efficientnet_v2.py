"""EfficientNetV2 (Tan & Le 2021): published sizes, the stage tables as built, the small-input option."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnzoo import count_params, create_model, model_info
from cnnzoo.layers import SqueezeExcite
from cnnzoo.models.efficientnet import MBConv
from cnnzoo.models.efficientnet_v2 import HEAD_CHS, VARIANTS, FusedMBConv, Stage

NAMES = {"s": "efficientnet_v2_s", "m": "efficientnet_v2_m", "l": "efficientnet_v2_l"}
# torchvision's model cards (EfficientNet_V2_*_Weights.IMAGENET1K_V1.meta["num_params"]); the paper's Table 7
# rounds them to 22M / 54M / 120M.
from test_models import PUBLISHED  # noqa: E402 - the exact published counts, with every family's

V2 = sorted(n for n in PUBLISHED if n.startswith("efficientnet_v2_"))


def _meta(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, **kwargs)


def _convs(block: nn.Module) -> list[nn.Conv2d]:
    """The block's convolutions outside its SE, in order."""
    se_convs = {id(m) for se in block.modules() if isinstance(se, SqueezeExcite) for m in se.modules()}
    return [m for m in block.modules() if isinstance(m, nn.Conv2d) and id(m) not in se_convs]


def _squeeze_excites(block: nn.Module) -> list[SqueezeExcite]:
    return [m for m in block.modules() if isinstance(m, SqueezeExcite)]


@pytest.mark.parametrize("name", V2)
def test_same_size_as_torchvision(name):
    torchvision = pytest.importorskip("torchvision")
    with torch.device("meta"):
        tv = getattr(torchvision.models, name)(weights=None)
    assert sum(p.numel() for p in tv.parameters()) == PUBLISHED[name]


@pytest.mark.parametrize("name", V2)
def test_drop_path_schedule_matches_torchvision(name):
    """Stochastic depth 0.2, rising linearly over the blocks: the same rate in every block as torchvision's."""
    torchvision = pytest.importorskip("torchvision")
    with torch.device("meta"):
        tv = getattr(torchvision.models, name)(weights=None)
    ours = [m.stochastic_depth.p for m in _meta(name).modules() if hasattr(m, "stochastic_depth")]
    theirs = [m.stochastic_depth.p for m in tv.modules() if hasattr(m, "stochastic_depth")]
    assert ours == pytest.approx(theirs) and max(ours) < 0.2


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_stages_follow_the_table(variant):
    """Stem -> one nn.Sequential per table row with its layers -> 1x1 head conv to 1280; channels as the table."""
    table = VARIANTS[variant].stages
    m = _meta(NAMES[variant])
    stem, *stages, head = m.features
    assert len(stages) == len(table)
    assert stem[0].out_channels == table[0].in_chs and stem[0].stride == (2, 2)
    assert head[0].kernel_size == (1, 1) and head[0].out_channels == HEAD_CHS == m.num_features
    for row, stage in zip(table, stages):
        assert len(stage) == row.repeats
        assert _convs(stage[0])[0].in_channels == row.in_chs
        assert all(b.out_channels == row.out_chs for b in stage)
        assert [b.use_res_connect for b in stage] == [row.stride == 1 and row.in_chs == row.out_chs] + [True] * (
            row.repeats - 1)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_fused_then_mbconv_with_se(variant):
    """Fused stages: one k x k expansion conv (no depthwise), no SE; MBConv stages: depthwise k x k and SE 0.25."""
    table = VARIANTS[variant].stages
    fused = [row.fused for row in table]
    assert fused == sorted(fused, reverse=True) and fused.count(True) == 3, "the early stages are the fused ones"
    for row, stage in zip(table, _meta(NAMES[variant]).features[1:-1]):
        for j, block in enumerate(stage):
            convs = _convs(block)
            stride = (row.stride,) * 2 if j == 0 else (1, 1)
            assert isinstance(block, FusedMBConv if row.fused else MBConv)
            if row.fused:
                assert all(c.groups == 1 for c in convs), "Fused-MBConv has no depthwise convolution"
                assert convs[0].kernel_size == (row.kernel,) * 2 and convs[0].stride == stride
                assert len(convs) == (1 if row.expand == 1 else 2)
                assert not _squeeze_excites(block) and row.se == 0
            else:
                dw = [c for c in convs if c.groups > 1]
                assert len(dw) == 1 and dw[0].groups == dw[0].in_channels == convs[0].in_channels * row.expand
                assert dw[0].kernel_size == (row.kernel,) * 2 and dw[0].stride == stride
                (se,) = _squeeze_excites(block)
                assert row.se == 0.25 and se.fc1.out_channels == int(convs[0].in_channels * row.se)
            assert convs[-1].out_channels == row.out_chs


@pytest.mark.parametrize("variant,size,dropout", [("s", 384, 0.2), ("m", 480, 0.3), ("l", 480, 0.4)])
def test_variant_settings(variant, size, dropout):
    """Evaluation sizes 384/480/480, BatchNorm eps 1e-3 everywhere, classifier dropout 0.2/0.3/0.4."""
    name = NAMES[variant]
    assert model_info(name).input_size == (3, size, size)
    m = _meta(name)
    bns = [b for b in m.modules() if isinstance(b, nn.BatchNorm2d)]
    assert bns and all(b.eps == 1e-3 and b.momentum == 0.1 for b in bns)
    assert m.classifier[0].p == dropout
    assert m.min_input_size == 32 and _meta(name, small_input=True).min_input_size == 8


@pytest.fixture(scope="module")
def small_s() -> nn.Module:
    return create_model("efficientnet_v2_s", num_classes=10, small_input=True).eval()


@pytest.mark.parametrize("size,maps", [(32, [32, 32, 32, 16, 8, 8, 4]), (28, [28, 28, 28, 14, 7, 7, 4])])
def test_small_input_keeps_maps(small_s, size, maps):
    """small_input: stride-1 stem and first stride-2 stage, so stage 6 of S still sees 4x4 maps."""
    x = torch.randn(1, 3, size, size)
    seen = []
    with torch.no_grad():
        for layer in small_s.features[:-1]:
            x = layer(x)
            seen.append(x.shape[-1])
    assert seen == maps


def test_fused_mbconv_se_sits_between_expansion_and_projection():
    """A table row with SE on a fused stage gets it (Figure 2), after the k x k expansion conv."""
    block = Stage(True, 4, 3, 1, 16, 16, 1, 0.25).block(16, 1, 0.0, nn.BatchNorm2d, nn.SiLU).eval()
    kinds = [type(m).__name__ for m in block.block]
    assert kinds == ["ConvBnAct", "SqueezeExcite", "ConvBnAct"]
    assert block.block[1].fc1.out_channels == 4 and block.use_res_connect
    x = torch.randn(2, 16, 8, 8)
    assert block(x).shape == x.shape


def test_mbconv_without_se():
    """se_ratio=0 leaves the SE out of an MBConv; EfficientNet-B0's default keeps it."""
    assert not _squeeze_excites(MBConv(16, 24, 6, 3, 2, 0.0, se_ratio=0))
    assert len(_squeeze_excites(MBConv(16, 24, 6, 3, 2, 0.0))) == 1
