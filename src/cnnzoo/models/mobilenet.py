"""MobileNet v1 and v2.

* v1: Howard, Zhu, Chen, Kalenichenko, Wang, Weyand, Andreetto, Adam, "MobileNets: Efficient
  Convolutional Neural Networks for Mobile Vision Applications", 2017. https://arxiv.org/abs/1704.04861
* v2: Sandler, Howard, Zhu, Zhmoginov, Chen, "MobileNetV2: Inverted Residuals and Linear
  Bottlenecks", CVPR 2018. https://arxiv.org/abs/1801.04381

**MobileNet v1** (Table 1) factorises every convolution after the first into a 3x3 depthwise and a
1x1 pointwise convolution, each followed by BN and ReLU, then global average pooling and one FC
layer. Two hyper-parameters trade accuracy for cost (section 3.3, 3.4):

* the *width multiplier* alpha (``width_mult``) thins every layer to ``alpha * M`` channels, rounded
  to a multiple of 8 (``make_divisible``; exactly ``alpha * M`` for the paper's 1, 0.75, 0.5, 0.25);
* the *resolution multiplier* rho is simply the input size (224, 192, 160, 128 = rho x 224): it
  changes no weight, so it lives in the registration's ``input_size`` (``model_info(name).input_size``)
  and the network, being fully convolutional up to the global pool, runs at any size >= 32.

The registered variants are the paper's "1.0 / 0.75 / 0.5 / 0.25 MobileNet-224" (Table 6) and
"0.50 MobileNet-160" (Table 8).

**MobileNet v2** (Table 2) stacks *inverted residuals*: 1x1 expansion by t with ReLU6, 3x3 depthwise
with ReLU6, and a *linear* 1x1 projection (no activation: section 3.2, ReLU on a low-dimensional
bottleneck destroys information), with an identity shortcut between the thin bottlenecks when the
shape is kept. Widths are ``make_divisible(c * width_mult, 8)``; the last 1x1 convolution keeps
1280 channels for width multipliers below 1 (section 5.1). Module names are torchvision's
(``features.N.conv.K``, ``classifier.1``), so its weights load unchanged and the outputs match.

Small images (``small_input=True``, both versions, as in the usual CIFAR MobileNets): the stem
convolution gets stride 1 and the first stride-2 stage stride 1 (v1: the depthwise layer going to
128 channels, Table 1 row 3; v2: the ``t=6, c=24`` stage, Table 2 row 3). The total stride becomes
8 instead of 32 (``min_input_size`` 8 instead of 32), so a 32x32 image reaches the last stage as a
4x4 map (28x28: 4x4) instead of 1x1. No layer changes shape, so ImageNet weights still load.
"""

from __future__ import annotations

import math
from typing import Dict, NamedTuple

import torch
from torch import nn

from ..layers import ConvBnAct, DepthwiseSeparableConv, make_divisible
from ._spec import Paper, SmallInput, register_model
from ._base import SequentialHeadModel, init_weights_default, linear_or_identity

__all__ = ["MobileNetV1", "MobileNetV2", "InvertedResidual", "V1_LAYERS", "V2_SETTINGS", "V1_VARIANTS"]

MOBILENET_V1 = Paper(
    "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications",
    "Howard, Zhu, Chen, Kalenichenko, Wang, Weyand, Andreetto, Adam", 2017, "https://arxiv.org/abs/1704.04861",
)
MOBILENET_V2 = Paper(
    "MobileNetV2: Inverted Residuals and Linear Bottlenecks",
    "Sandler, Howard, Zhu, Zhmoginov, Chen", 2018, "https://arxiv.org/abs/1801.04381",
)

# --------------------------------------------------------------------------------------- MobileNet v1

V1_STEM = (32, 2)  # Table 1 row 1: full 3x3 convolution, (filters, stride)
# Table 1, rows 2-27: one depthwise-separable layer per entry (comments: output size for a 224x224 input).
V1_LAYERS = (
    # depthwise stride, pointwise filters
    (1, 64),  # 112x112
    (2, 128),  # 56x56
    (1, 128),
    (2, 256),  # 28x28
    (1, 256),
    (2, 512),  # 14x14
    *[(1, 512)] * 5,
    (2, 1024),  # 7x7
    (1, 1024),  # 7x7; Table 1 prints "s2" on this row, a typo: its output stays 7x7 (as in the reference code)
)
V1_WIDTH = 1024  # channels entering the average pool and the FC layer (x alpha)


class V1Variant(NamedTuple):
    """A point on the paper's accuracy / cost trade-off."""

    width: float  # width multiplier alpha
    resolution: int  # input size (the resolution multiplier rho x 224)


V1_VARIANTS: Dict[str, V1Variant] = {
    "mobilenet_v1": V1Variant(1.0, 224),  # 1.0 MobileNet-224: 4.2M parameters, 569M mult-adds
    "mobilenet_v1_075": V1Variant(0.75, 224),  # 0.75 MobileNet-224: 2.6M, 325M
    "mobilenet_v1_050": V1Variant(0.5, 224),  # 0.5 MobileNet-224: 1.3M, 149M
    "mobilenet_v1_025": V1Variant(0.25, 224),  # 0.25 MobileNet-224: 0.5M, 41M
    "mobilenet_v1_050_160": V1Variant(0.5, 160),  # 0.50 MobileNet-160 (Table 8, vs AlexNet / SqueezeNet): 1.32M
}


class MobileNetV1(SequentialHeadModel):
    """MobileNet v1: a 3x3 convolution and 13 depthwise-separable layers, GAP, FC.

    Args:
        width_mult: the width multiplier alpha.
        drop_rate: dropout before the FC layer (the paper uses none; its reference code keeps 0.999).
        small_input: stride-1 stem and stride-1 first stride-2 layer (total stride 8), for 28-32 px images.
    """

    def __init__(self, width_mult: float = 1.0, num_classes: int = 1000, in_chans: int = 3, drop_rate: float = 0.0,
                 small_input: bool = False) -> None:
        super().__init__()
        if width_mult <= 0:
            raise ValueError(f"width_mult must be positive, got {width_mult}")
        self.num_classes, self.in_chans, self.small_input = num_classes, in_chans, small_input
        self.width_mult, self.drop_rate = width_mult, drop_rate

        layers = list(V1_LAYERS)
        stem_chs, stem_stride = make_divisible(V1_STEM[0] * width_mult, 8), V1_STEM[1]
        if small_input:
            stem_stride = 1
            first = next(i for i, (s, _) in enumerate(layers) if s == 2)
            layers[first] = (1, layers[first][1])
        # Every layer is "same"-padded: the total stride is the smallest input that reaches the last layers
        # as more than padding.
        self.min_input_size = stem_stride * math.prod(s for s, _ in layers)

        blocks: list[nn.Module] = [ConvBnAct(in_chans, stem_chs, 3, stem_stride)]
        chs = stem_chs
        for stride, out in layers:
            out = make_divisible(out * width_mult, 8)
            blocks.append(DepthwiseSeparableConv(chs, out, 3, stride))
            chs = out
        self.features = nn.Sequential(*blocks)
        self.num_features = chs
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(drop_rate), linear_or_identity(chs, num_classes))
        # A new stage starts at every stride-2 layer of Table 1 (stages at 112, 56, 28, 14, 7 px for 224).
        self.stage_map = {"stem": ("features.0",)}
        start, n = 1, 1
        for i, (stride, _) in enumerate(V1_LAYERS[1:], start=2):
            if stride == 2:
                self.stage_map[f"stage{n}"] = tuple(f"features.{j}" for j in range(start, i))
                start, n = i, n + 1
        self.stage_map[f"stage{n}"] = tuple(f"features.{j}" for j in range(start, len(V1_LAYERS) + 1))
        self.stage_map["head"] = ("classifier",)
        init_weights_default(self)  # torchvision's MobileNet init: He fan-out, unit BN, N(0, 0.01) FC

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def init_classifier(self, layer: nn.Linear) -> None:
        nn.init.normal_(layer.weight, 0, 0.01)
        nn.init.zeros_(layer.bias)


# --------------------------------------------------------------------------------------- MobileNet v2

V2_STEM = (32, 2)  # Table 2 row 1: full 3x3 convolution, (filters, stride)
# Table 2, rows 2-8: inverted-residual stages (comments: output size for a 224x224 input).
V2_SETTINGS = (
    # t  c    n  s     (expansion, output channels, repeats, stride of the first block)
    (1, 16, 1, 1),  # 112x112
    (6, 24, 2, 2),  # 56x56
    (6, 32, 3, 2),  # 28x28
    (6, 64, 4, 2),  # 14x14
    (6, 96, 3, 1),  # 14x14
    (6, 160, 3, 2),  # 7x7
    (6, 320, 1, 1),  # 7x7
)
V2_LAST = 1280  # the final 1x1 convolution (Table 2 row 9)
V2_DROPOUT = 0.2  # before the classifier (torchvision's and the reference recipe's)


class InvertedResidual(nn.Module):
    """1x1 expand (ReLU6) -> 3x3 depthwise (ReLU6) -> 1x1 linear projection, identity shortcut if the shape holds.

    ``conv`` is torchvision's layout: ``[expand,] depthwise, project conv, project BN``.
    """

    def __init__(self, in_chs: int, out_chs: int, stride: int, expand_ratio: int,
                 act_layer: type = nn.ReLU6) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        self.stride = stride
        self.use_res_connect = stride == 1 and in_chs == out_chs
        hidden = int(round(in_chs * expand_ratio))
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvBnAct(in_chs, hidden, 1, act_layer=act_layer))
        layers += [
            ConvBnAct(hidden, hidden, 3, stride, groups=hidden, act_layer=act_layer),
            # Linear bottleneck: no activation after the projection (section 3.2).
            nn.Conv2d(hidden, out_chs, 1, bias=False),
            nn.BatchNorm2d(out_chs),
        ]
        self.conv = nn.Sequential(*layers)
        self.out_channels = out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(SequentialHeadModel):
    """MobileNet v2.

    Args:
        width_mult: width multiplier; every width becomes ``make_divisible(c * width_mult, 8)`` (the last
            convolution's 1280 is only ever scaled up).
        drop_rate: dropout before the classifier.
        small_input: stride-1 stem and stride-1 first stride-2 stage (total stride 8), for 28-32 px images.
    """

    def __init__(self, width_mult: float = 1.0, num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = V2_DROPOUT, small_input: bool = False) -> None:
        super().__init__()
        if width_mult <= 0:
            raise ValueError(f"width_mult must be positive, got {width_mult}")
        self.num_classes, self.in_chans, self.small_input = num_classes, in_chans, small_input
        self.width_mult, self.drop_rate = width_mult, drop_rate

        settings = list(V2_SETTINGS)
        stem_chs, stem_stride = make_divisible(V2_STEM[0] * width_mult, 8), V2_STEM[1]
        if small_input:
            stem_stride = 1
            first = next(i for i, row in enumerate(settings) if row[3] == 2)
            settings[first] = settings[first][:3] + (1,)
        # Every layer is "same"-padded: the total stride is the smallest input that reaches the last stage
        # as more than padding.
        self.min_input_size = stem_stride * math.prod(s for *_, s in settings)

        act_layer = nn.ReLU6  # section 3: ReLU6 for its robustness in low-precision computation
        blocks: list[nn.Module] = [ConvBnAct(in_chans, stem_chs, 3, stem_stride, act_layer=act_layer)]
        self.stage_map = {"stem": ("features.0",)}
        chs = stem_chs
        for i, (t, c, n, s) in enumerate(settings, start=1):
            out = make_divisible(c * width_mult, 8)
            first = len(blocks)
            for j in range(n):
                blocks.append(InvertedResidual(chs, out, s if j == 0 else 1, t, act_layer))
                chs = out
            self.stage_map[f"stage{i}"] = tuple(f"features.{k}" for k in range(first, len(blocks)))
        self.num_features = make_divisible(V2_LAST * max(1.0, width_mult), 8)
        blocks.append(ConvBnAct(chs, self.num_features, 1, act_layer=act_layer))
        self.stage_map["conv_head"] = (f"features.{len(blocks) - 1}",)
        self.features = nn.Sequential(*blocks)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(drop_rate), linear_or_identity(self.num_features, num_classes))
        self.stage_map["head"] = ("classifier",)
        init_weights_default(self)  # torchvision's MobileNet init: He fan-out, unit BN, N(0, 0.01) FC

    forward_features = MobileNetV1.forward_features
    init_classifier = MobileNetV1.init_classifier


# --------------------------------------------------------------------------------------- registrations


def _create_mobilenet_v1(variant: str, **kwargs) -> MobileNetV1:
    return MobileNetV1(**dict(dict(width_mult=V1_VARIANTS[variant].width), **kwargs))


def _create_mobilenet_v2(**kwargs) -> MobileNetV2:
    return MobileNetV2(**kwargs)


_SMALL = SmallInput("option", {"small_input": True})


@register_model(family="MobileNet v1", paper=MOBILENET_V1, input_size=V1_VARIANTS["mobilenet_v1"].resolution,
                small_input=_SMALL)
def mobilenet_v1(**kwargs) -> MobileNetV1:
    """1.0 MobileNet-224 (alpha=1.0, 224 px), 4.2M parameters."""
    return _create_mobilenet_v1("mobilenet_v1", **kwargs)


@register_model(family="MobileNet v1", paper=MOBILENET_V1, input_size=V1_VARIANTS["mobilenet_v1_075"].resolution,
                small_input=_SMALL)
def mobilenet_v1_075(**kwargs) -> MobileNetV1:
    """0.75 MobileNet-224 (alpha=0.75, 224 px), 2.6M parameters."""
    return _create_mobilenet_v1("mobilenet_v1_075", **kwargs)


@register_model(family="MobileNet v1", paper=MOBILENET_V1, input_size=V1_VARIANTS["mobilenet_v1_050"].resolution,
                small_input=_SMALL)
def mobilenet_v1_050(**kwargs) -> MobileNetV1:
    """0.5 MobileNet-224 (alpha=0.5, 224 px), 1.3M parameters."""
    return _create_mobilenet_v1("mobilenet_v1_050", **kwargs)


@register_model(family="MobileNet v1", paper=MOBILENET_V1, input_size=V1_VARIANTS["mobilenet_v1_025"].resolution,
                small_input=_SMALL)
def mobilenet_v1_025(**kwargs) -> MobileNetV1:
    """0.25 MobileNet-224 (alpha=0.25, 224 px), 0.5M parameters."""
    return _create_mobilenet_v1("mobilenet_v1_025", **kwargs)


@register_model(family="MobileNet v1", paper=MOBILENET_V1,
                input_size=V1_VARIANTS["mobilenet_v1_050_160"].resolution, small_input=_SMALL)
def mobilenet_v1_050_160(**kwargs) -> MobileNetV1:
    """0.50 MobileNet-160 (alpha=0.5, 160 px): the paper's AlexNet/SqueezeNet comparison, 1.3M parameters."""
    return _create_mobilenet_v1("mobilenet_v1_050_160", **kwargs)


@register_model(family="MobileNet v2", paper=MOBILENET_V2, small_input=_SMALL, torchvision="mobilenet_v2")
def mobilenet_v2(**kwargs) -> MobileNetV2:
    """MobileNet v2 (width 1.0, 224 px): 17 inverted residuals, 3.50M parameters."""
    return _create_mobilenet_v2(**kwargs)
