"""ShuffleNet v1 / v2 and MobileNet v3: published sizes and costs, channel shuffle, the papers' tables."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnzoo import count_params, create_model, list_models, model_info
from cnnzoo.analysis.flops import count_macs
from cnnzoo.layers.conv import make_divisible
from cnnzoo.layers.se import SqueezeExcite
from cnnzoo.layers.shuffle import ChannelShuffle
from cnnzoo.models.mobilenet_v3 import ARCHS, Bneck
from cnnzoo.models.shufflenet import V1_STAGE_CHS, ShuffleV1Block, ShuffleV2Block

# The exact published counts are in tests/test_models.py (PUBLISHED), with every family's.
# Rounded figures, in millions: ShuffleNet v1 has no torchvision twin. g=3: mmpretrain's model card (1.87; the
# authors' ShuffleNet-Series README, whose FC has no bias, says 1.9); g=8: the authors' README.
ROUNDED = [("shufflenet_g3", "1.87"), ("shufflenet_g8", "2.4")]
# Multiply-adds at 224 px, in millions: ShuffleNet Table 1, ShuffleNet V2 Table 5, MobileNetV3 Table 3.
PAPER_MACS = {
    "shufflenet_g1": 143, "shufflenet_g2": 140, "shufflenet_g3": 137, "shufflenet_g4": 133, "shufflenet_g8": 137,
    "shufflenet_v2_x0_5": 41, "shufflenet_v2_x1_0": 146, "shufflenet_v2_x1_5": 299, "shufflenet_v2_x2_0": 591,
    "mobilenet_v3_large": 219, "mobilenet_v3_small": 56,
}


@pytest.mark.parametrize("name,millions", ROUNDED)
def test_rounded_parameter_counts(name, millions):
    digits = len(millions.split(".")[1])
    assert f"{count_params(name) / 1e6:.{digits}f}" == millions


@pytest.mark.parametrize("name,macs", sorted(PAPER_MACS.items()))
def test_multiply_adds_match_the_papers(name, macs):
    """Within 2%: the papers round, and count the layers the counter skips (SE scaling, hard-swish) differently."""
    with torch.device("meta"):
        m = create_model(name)
    assert count_macs(m, (3, 224, 224)) / 1e6 == pytest.approx(macs, rel=0.02)


@pytest.mark.parametrize("name", ["mobilenet_v3_large", "mobilenet_v3_small"])
def test_mobilenet_v3_width_multiplier_is_torchvisions(name):
    torchvision = pytest.importorskip("torchvision")
    with torch.device("meta"):
        tv = getattr(torchvision.models, name)(weights=None, width_mult=0.75)
    assert count_params(name, width_mult=0.75) == sum(p.numel() for p in tv.parameters())


TWINS = ["shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0", "mobilenet_v3_small",
         "mobilenet_v3_large"]


def test_every_variant_is_registered():
    names = ["shufflenet_g1", "shufflenet_g2", "shufflenet_g3", "shufflenet_g4", "shufflenet_g8", *TWINS]
    assert set(names) <= set(list_models())
    assert all(model_info(n).torchvision == n for n in TWINS)


# --------------------------------------------------------------------------------------- channel shuffle


def test_channel_shuffle_interleaves_the_groups():
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert ChannelShuffle(2)(x).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    assert ChannelShuffle(3)(x).flatten().tolist() == [0, 2, 4, 1, 3, 5]
    assert ChannelShuffle(1)(x).flatten().tolist() == list(range(6))


def test_channel_shuffle_is_reshape_transpose_flatten():
    x = torch.randn(2, 12, 3, 5)
    expected = x.reshape(2, 3, 4, 3, 5).transpose(1, 2).reshape(2, 12, 3, 5)
    assert torch.equal(ChannelShuffle(3)(x), expected)
    assert torch.equal(ChannelShuffle(3)(x.contiguous(memory_format=torch.channels_last)), expected)


def test_channel_shuffle_refuses_bad_groups():
    with pytest.raises(ValueError, match="at least 1 group"):
        ChannelShuffle(0)
    with pytest.raises(RuntimeError):
        ChannelShuffle(4)(torch.randn(1, 6, 2, 2))


@pytest.mark.parametrize("name,block,groups", [("shufflenet_g3", ShuffleV1Block, 3),
                                               ("shufflenet_g8", ShuffleV1Block, 8),
                                               ("shufflenet_v2_x0_5", ShuffleV2Block, 2)])
def test_every_unit_shuffles_once_per_forward(name, block, groups):
    with torch.device("meta"):  # the hooks see a meta forward too: no weights to initialise or compute with
        m = create_model(name, num_classes=10, small_input=True).eval()
    units = [u for u in m.modules() if isinstance(u, block)]
    assert len(units) == 16  # Stage2-4: 4 + 8 + 4
    calls = []
    for u in units:
        assert isinstance(u.shuffle, ChannelShuffle) and u.shuffle.groups == groups
        assert any(mod is u.shuffle for _, mod in u.named_children())
        u.shuffle.register_forward_hook(lambda mod, args, out: calls.append(mod))
    m(torch.zeros(1, 3, 32, 32, device="meta"))
    assert [id(c) for c in calls] == [id(u.shuffle) for u in units]


@pytest.mark.parametrize("groups", sorted(V1_STAGE_CHS))
def test_shufflenet_v1_follows_table_1(groups):
    """Grouped 1x1 convolutions except Stage2's first; bottleneck out/4; stride-2 units concatenate a pooled input."""
    with torch.device("meta"):
        m = create_model(f"shufflenet_g{groups}")
    for stage, out in zip((m.stage2, m.stage3, m.stage4), V1_STAGE_CHS[groups]):
        for j, u in enumerate(stage):
            assert u.conv1[0].groups == (1 if stage is m.stage2 and j == 0 else groups)
            assert u.conv3[0].groups == groups and u.conv2[0].groups == u.conv2[0].out_channels == out // 4
            assert u.conv3[0].out_channels == (out - u.conv1[0].in_channels if j == 0 else out)
            assert isinstance(u.downsample, nn.AvgPool2d) == (j == 0)
            assert not any(isinstance(a, nn.ReLU) for a in (*u.conv2, *u.conv3))  # no ReLU after DWConv, before the sum
    assert m.fc.in_features == V1_STAGE_CHS[groups][-1]


# --------------------------------------------------------------------------------------- MobileNet v3


@pytest.mark.parametrize("arch", ["large", "small"])
def test_mobilenet_v3_activations_and_se_follow_the_table(arch):
    with torch.device("meta"):
        m = create_model(f"mobilenet_v3_{arch}")
    rows = ARCHS[arch].blocks
    blocks = list(m.features)[1:-1]
    assert len(blocks) == len(rows) and all(isinstance(b, Bneck) for b in blocks)
    for b, row in zip(blocks, rows):
        wanted = nn.Hardswish if row.act == "HS" else nn.ReLU
        se = [mod for mod in b.block if isinstance(mod, SqueezeExcite)]
        convs = [mod for mod in b.block if not isinstance(mod, SqueezeExcite)]
        acts = [a for conv in convs for a in conv if isinstance(a, (nn.ReLU, nn.Hardswish))]
        assert acts and all(type(a) is wanted for a in acts), (row, acts)
        assert len(acts) == len(convs) - 1  # the projection is linear
        assert len(se) == int(row.se), row
        for s in se:
            assert isinstance(s.scale_activation, nn.Hardsigmoid) and isinstance(s.activation, nn.ReLU)
            assert s.fc1.out_channels == make_divisible(row.exp // 4, 8) and s.fc1.bias is not None
    for conv in (m.features[0], m.features[-1]):
        assert isinstance(conv[-1], nn.Hardswish)
    assert isinstance(m.classifier[1], nn.Hardswish)


# --------------------------------------------------------------------------------------- small images


@pytest.mark.parametrize("name", ["shufflenet_g3", "shufflenet_v2_x1_0", "mobilenet_v3_small"])
def test_small_input_keeps_a_4x4_map(name):
    assert model_info(name).small_input.kwargs == {"small_input": True}
    with torch.device("meta"):
        big = create_model(name)
        small = create_model(name, small_input=True, in_chans=1)
    assert (big.min_input_size, small.min_input_size) == (32, 8)
    for size in (28, 32):
        assert small.forward_features(torch.zeros(1, 1, size, size, device="meta")).shape[-2:] == (4, 4)
    assert big.forward_features(torch.zeros(1, 3, 224, 224, device="meta")).shape[-2:] == (7, 7)
