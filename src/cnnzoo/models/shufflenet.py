"""ShuffleNet v1 and v2.

* v1: Zhang, Zhou, Lin, Sun, "ShuffleNet: An Extremely Efficient Convolutional Neural Network for Mobile
  Devices", CVPR 2018. https://arxiv.org/abs/1707.01083
* v2: Ma, Zhang, Zheng, Sun, "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design",
  ECCV 2018. https://arxiv.org/abs/1807.11164

Both versions share one frame (v1 Table 1, v2 Table 5): a 3x3/2 convolution to 24 channels, a 3x3/2 max
pool, Stage2-4 of 4, 8 and 4 units whose first unit halves the map, global average pooling and an FC layer
(v2 adds a 1x1 convolution, ``conv5``, before the pool). The stage names are the papers' (stage1 is the stem).

**v1** (Figure 2b/c): a unit is a bottleneck whose 1x1 convolutions are *grouped* (g groups, so they cost
1/g) with a *channel shuffle* after the first one, so that the second grouped convolution mixes information
from every group; between them a 3x3 depthwise convolution. Decisions, all from the paper unless noted:

* the bottleneck is 1/4 of the unit's output channels (section 3.3), in the stride-2 units too (as the
  authors' released code, megvii-model/ShuffleNet-Series);
* BN after every convolution; ReLU after the first 1x1 and after the shortcut sum, none after the depthwise
  convolution (section 3.2, after Xception) nor before the sum;
* stride-2 units (Figure 2c) take a 3x3/2 average pool of the input as the shortcut and *concatenate* it to
  the branch, so the branch outputs ``out - in`` channels;
* Stage2's first 1x1 convolution is not grouped: its 24 input channels are too few (section 3.3);
* the shuffle follows the first 1x1 convolution's BN-ReLU, as in Figure 2; the released code shuffles after
  the depthwise BN instead, which is the same function up to a permutation of the depthwise filters;
* the FC layer has a bias (the released code's has none: 1000 parameters fewer), so the head is the zoo's
  usual one; the registered variants are Table 1's 1x networks for g = 1, 2, 3, 4, 8 (no torchvision twin).

**v2** (Figure 3c/d, Table 5): following the paper's guidelines (equal widths, no grouped 1x1, less
fragmentation, no element-wise ops), a stride-1 unit *splits* the channels in two halves, keeps one and
passes the other through 1x1 -> 3x3 depthwise -> 1x1 (BN everywhere, ReLU after the 1x1s), concatenates
and shuffles with 2 groups; a stride-2 unit feeds the whole input to two branches (3x3/2 depthwise -> 1x1,
and the 1x1 -> 3x3/2 depthwise -> 1x1 one), doubling the channels. Module names are torchvision's
(``conv1``, ``stage2.0.branch1.0``, ``stage2.0.branch2.3``, ``conv5``, ``fc``), so its weights load unchanged
and the outputs match; global average pooling is ``avgpool`` here, ``x.mean([2, 3])`` there.

Both versions are initialised as the zoo's MobileNets (He fan-out convolutions, unit BN, N(0, 0.01) FC);
torchvision's ShuffleNet v2 keeps PyTorch's defaults, the released v1 code draws N(0, 1/fan-in).

Small images (``small_input=True``, both versions): the stem convolution gets stride 1 and the max pool is
removed, so the total stride is 8 instead of 32 (``min_input_size`` 8 instead of 32) and a 32x32 image (28x28:
4x4 too) reaches Stage4 as a 4x4 map instead of 1x1. No layer changes shape, so ImageNet weights still load.
"""

from __future__ import annotations

from typing import Callable, Dict, NamedTuple, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import ChannelShuffle, ConvBnAct
from ._spec import Paper, SmallInput, register_model
from ._base import PooledFcModel, init_weights_default, linear_or_identity

__all__ = ["ShuffleNet", "ShuffleNetV2", "ShuffleV1Block", "ShuffleV2Block", "V1_STAGE_CHS", "V2_VARIANTS"]

SHUFFLENET = Paper(
    "ShuffleNet: An Extremely Efficient Convolutional Neural Network for Mobile Devices",
    "Zhang, Zhou, Lin, Sun", 2018, "https://arxiv.org/abs/1707.01083",
)
SHUFFLENET_V2 = Paper(
    "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design",
    "Ma, Zhang, Zheng, Sun", 2018, "https://arxiv.org/abs/1807.11164",
)

# The frame both papers share (v1 Table 1, v2 Table 5; comments: output size for a 224x224 input).
STEM_CHS = 24  # Conv1: 3x3/2 (112x112), then MaxPool 3x3/2 (56x56)
STAGE_REPEATS = (4, 8, 4)  # Stage2 (28x28), Stage3 (14x14), Stage4 (7x7); the first unit of each has stride 2

# v1 Table 1: output channels of Stage2-4 for g groups (1x networks). Comments: the paper's complexity (MFLOPs).
V1_STAGE_CHS: Dict[int, Tuple[int, int, int]] = {
    1: (144, 288, 576),  # 143
    2: (200, 400, 800),  # 140
    3: (240, 480, 960),  # 137
    4: (272, 544, 1088),  # 133
    8: (384, 768, 1536),  # 137
}
V1_BOTTLENECK = 4  # bottleneck channels = output channels / 4 (section 3.3)


class V2Variant(NamedTuple):
    """One column of v2 Table 5."""

    stage_chs: Tuple[int, int, int]  # output channels of Stage2-4
    conv5: int  # the 1x1 convolution before the pool


# v2 Table 5 (comments: the paper's FLOPs and weights).
V2_VARIANTS: Dict[str, V2Variant] = {
    "x0_5": V2Variant((48, 96, 192), 1024),  # 41M, 1.4M
    "x1_0": V2Variant((116, 232, 464), 1024),  # 146M, 2.3M
    "x1_5": V2Variant((176, 352, 704), 1024),  # 299M, 3.5M
    "x2_0": V2Variant((244, 488, 976), 2048),  # 591M, 7.4M
}


def _check_stride(stride: int) -> None:
    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, got {stride}")


class ShuffleV1Block(nn.Module):
    """ShuffleNet v1 unit: 1x1 GConv -> channel shuffle -> 3x3 DWConv -> 1x1 GConv, with a shortcut.

    Stride 1 (Figure 2b): identity shortcut, added. Stride 2 (Figure 2c): 3x3/2 average-pooled shortcut,
    concatenated. ReLU after the merge.

    Args:
        in_chs: input channels.
        out_chs: output channels (with stride 2: the pooled input plus the branch's ``out_chs - in_chs``).
        groups: groups of the 1x1 convolutions and of the shuffle.
        stride: 1 or 2.
        first_groups: groups of the first 1x1 convolution (1 on the stem's few channels).
    """

    def __init__(self, in_chs: int, out_chs: int, groups: int, stride: int, first_groups: int) -> None:
        super().__init__()
        _check_stride(stride)
        mid = out_chs // V1_BOTTLENECK
        self.conv1 = ConvBnAct(in_chs, mid, 1, groups=first_groups)
        self.shuffle = ChannelShuffle(groups)
        self.conv2 = ConvBnAct(mid, mid, 3, stride, groups=mid, act_layer=None)
        self.conv3 = ConvBnAct(mid, out_chs - in_chs if stride == 2 else out_chs, 1, groups=groups, act_layer=None)
        self.downsample = nn.AvgPool2d(3, 2, 1) if stride == 2 else None
        self.out_channels = out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branch = self.conv3(self.conv2(self.shuffle(self.conv1(x))))
        if self.downsample is None:
            return F.relu(x + branch)
        return F.relu(torch.cat((self.downsample(x), branch), 1))


class ShuffleV2Block(nn.Module):
    """ShuffleNet v2 unit (torchvision's ``InvertedResidual``): split or duplicate, two branches, concat, shuffle.

    ``branch1`` (stride 2 only) is 3x3/2 DWConv -> 1x1; ``branch2`` is 1x1 -> 3x3 DWConv -> 1x1, on half the
    channels with stride 1 (the other half passes unchanged, Figure 3c) and on all of them with stride 2
    (Figure 3d). Each branch is one flat Sequential, torchvision's layout, built from ConvBnAct's children.
    """

    def __init__(self, in_chs: int, out_chs: int, stride: int) -> None:
        super().__init__()
        _check_stride(stride)
        half = out_chs // 2
        if stride == 1 and in_chs != 2 * half:
            raise ValueError(f"a stride-1 unit keeps its width: {in_chs} -> {out_chs} channels")
        self.stride = stride
        if stride == 2:
            self.branch1 = nn.Sequential(
                *ConvBnAct(in_chs, in_chs, 3, stride, groups=in_chs, act_layer=None), *ConvBnAct(in_chs, half, 1),
            )
        self.branch2 = nn.Sequential(
            *ConvBnAct(in_chs if stride == 2 else half, half, 1),
            *ConvBnAct(half, half, 3, stride, groups=half, act_layer=None),
            *ConvBnAct(half, half, 1),
        )
        self.shuffle = ChannelShuffle(2)
        self.out_channels = out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            kept, passed = x.chunk(2, dim=1)
            out = torch.cat((kept, self.branch2(passed)), 1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), 1)
        return self.shuffle(out)


class _ShuffleFrame(PooledFcModel):
    """What both versions share: the stem, Stage2-4 (of the subclass's units), global pool, FC."""

    def __init__(self, num_classes: int, in_chans: int, small_input: bool) -> None:
        super().__init__()
        self.num_classes, self.in_chans, self.small_input = num_classes, in_chans, small_input
        self.conv1 = ConvBnAct(in_chans, STEM_CHS, 3, 1 if small_input else 2)
        self.maxpool = nn.Identity() if small_input else nn.MaxPool2d(3, 2, 1)
        # Every layer is "same"-padded: the total stride (stem, pool, one stride-2 unit per stage) is the smallest
        # input that reaches Stage4 as more than padding.
        self.min_input_size = (1 if small_input else 4) * 2 ** len(STAGE_REPEATS)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.stage_map = {"stem": ("conv1",)}

    def _build_stages(self, stage_chs: Tuple[int, int, int], unit: Callable[[int, int, int], nn.Module]) -> None:
        """Stage2-4 of ``unit(in, out, stride)``, widths ``stage_chs``: the first unit of each has stride 2."""
        chs = STEM_CHS
        for i, (repeats, out) in enumerate(zip(STAGE_REPEATS, stage_chs), start=2):
            name = f"stage{i}"
            setattr(self, name, nn.Sequential(*(unit(chs if j == 0 else out, out, 2 if j == 0 else 1)
                                                for j in range(repeats))))
            self.stage_map[name] = (name,)
            chs = out

    def _finish(self, num_features: int) -> None:
        """The FC head on ``num_features`` channels, then the initialisation."""
        self.num_features = num_features
        self.fc = linear_or_identity(num_features, self.num_classes)
        self.stage_map["head"] = ("fc",)
        init_weights_default(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        return self.stage4(self.stage3(self.stage2(x)))


class ShuffleNet(_ShuffleFrame):
    """ShuffleNet v1 (1x): Table 1's network for ``groups`` groups.

    Args:
        groups: groups of the pointwise convolutions, one of Table 1's 1, 2, 3, 4, 8.
        small_input: stride-1 stem and no max pool (total stride 8), for 28-32 px images.
    """

    def __init__(self, groups: int = 3, num_classes: int = 1000, in_chans: int = 3, small_input: bool = False) -> None:
        if groups not in V1_STAGE_CHS:
            raise ValueError(f"groups must be one of Table 1's {', '.join(map(str, V1_STAGE_CHS))}, got {groups}")
        super().__init__(num_classes, in_chans, small_input)
        self.groups = groups

        def unit(in_chs: int, out_chs: int, stride: int) -> ShuffleV1Block:
            # Section 3.3: the stem's 24 channels are too few to split, so that 1x1 convolution is not grouped.
            return ShuffleV1Block(in_chs, out_chs, groups, stride, first_groups=1 if in_chs == STEM_CHS else groups)

        self._build_stages(V1_STAGE_CHS[groups], unit)
        self._finish(V1_STAGE_CHS[groups][-1])


class ShuffleNetV2(_ShuffleFrame):
    """ShuffleNet v2: Table 5's network with the given stage widths, as torchvision's ``ShuffleNetV2``.

    Args:
        stage_chs: output channels of Stage2-4.
        conv5_chs: channels of the 1x1 convolution before the pool.
        small_input: stride-1 stem and no max pool (total stride 8), for 28-32 px images.
    """

    def __init__(self, stage_chs: Tuple[int, int, int] = V2_VARIANTS["x1_0"].stage_chs,
                 conv5_chs: int = V2_VARIANTS["x1_0"].conv5, num_classes: int = 1000, in_chans: int = 3,
                 small_input: bool = False) -> None:
        super().__init__(num_classes, in_chans, small_input)
        self._build_stages(stage_chs, ShuffleV2Block)
        self.conv5 = ConvBnAct(stage_chs[-1], conv5_chs, 1)
        self.stage_map["conv5"] = ("conv5",)
        self._finish(conv5_chs)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv5(super().forward_features(x))


# --------------------------------------------------------------------------------------- registrations


def _create_shufflenet(groups: int, **kwargs) -> ShuffleNet:
    return ShuffleNet(**dict(dict(groups=groups), **kwargs))


def _create_shufflenet_v2(variant: str, **kwargs) -> ShuffleNetV2:
    v = V2_VARIANTS[variant]
    return ShuffleNetV2(**dict(dict(stage_chs=v.stage_chs, conv5_chs=v.conv5), **kwargs))


_SMALL = SmallInput("option", {"small_input": True})


@register_model(family="ShuffleNet", paper=SHUFFLENET, small_input=_SMALL)
def shufflenet_g1(**kwargs) -> ShuffleNet:
    """ShuffleNet 1x, g=1 (Table 1: 143 MFLOPs): plain 1x1 convolutions, the shuffle is the identity."""
    return _create_shufflenet(1, **kwargs)


@register_model(family="ShuffleNet", paper=SHUFFLENET, small_input=_SMALL)
def shufflenet_g2(**kwargs) -> ShuffleNet:
    """ShuffleNet 1x, g=2 (Table 1: 140 MFLOPs)."""
    return _create_shufflenet(2, **kwargs)


@register_model(family="ShuffleNet", paper=SHUFFLENET, small_input=_SMALL)
def shufflenet_g3(**kwargs) -> ShuffleNet:
    """ShuffleNet 1x, g=3 (Table 1: 137 MFLOPs), the paper's usual configuration, 1.9M parameters."""
    return _create_shufflenet(3, **kwargs)


@register_model(family="ShuffleNet", paper=SHUFFLENET, small_input=_SMALL)
def shufflenet_g4(**kwargs) -> ShuffleNet:
    """ShuffleNet 1x, g=4 (Table 1: 133 MFLOPs)."""
    return _create_shufflenet(4, **kwargs)


@register_model(family="ShuffleNet", paper=SHUFFLENET, small_input=_SMALL)
def shufflenet_g8(**kwargs) -> ShuffleNet:
    """ShuffleNet 1x, g=8 (Table 1: 137 MFLOPs), 2.4M parameters."""
    return _create_shufflenet(8, **kwargs)


@register_model(family="ShuffleNet v2", paper=SHUFFLENET_V2, small_input=_SMALL, torchvision="shufflenet_v2_x0_5")
def shufflenet_v2_x0_5(**kwargs) -> ShuffleNetV2:
    """ShuffleNet v2 0.5x (Table 5: 41 MFLOPs, 1.4M parameters)."""
    return _create_shufflenet_v2("x0_5", **kwargs)


@register_model(family="ShuffleNet v2", paper=SHUFFLENET_V2, small_input=_SMALL, torchvision="shufflenet_v2_x1_0")
def shufflenet_v2_x1_0(**kwargs) -> ShuffleNetV2:
    """ShuffleNet v2 1x (Table 5: 146 MFLOPs, 2.3M parameters)."""
    return _create_shufflenet_v2("x1_0", **kwargs)


@register_model(family="ShuffleNet v2", paper=SHUFFLENET_V2, small_input=_SMALL, torchvision="shufflenet_v2_x1_5")
def shufflenet_v2_x1_5(**kwargs) -> ShuffleNetV2:
    """ShuffleNet v2 1.5x (Table 5: 299 MFLOPs, 3.5M parameters)."""
    return _create_shufflenet_v2("x1_5", **kwargs)


@register_model(family="ShuffleNet v2", paper=SHUFFLENET_V2, small_input=_SMALL, torchvision="shufflenet_v2_x2_0")
def shufflenet_v2_x2_0(**kwargs) -> ShuffleNetV2:
    """ShuffleNet v2 2x (Table 5: 591 MFLOPs, 7.4M parameters)."""
    return _create_shufflenet_v2("x2_0", **kwargs)
