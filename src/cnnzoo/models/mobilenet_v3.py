"""MobileNet v3: Howard, Sandler, Chu, Chen, Chen, Tan, Wang, Zhu, Pang, Vasudevan, Le, Adam, "Searching for
MobileNetV3", ICCV 2019. https://arxiv.org/abs/1905.02244

MobileNetV3-Large (Table 1) and -Small (Table 2) were found by platform-aware NAS (MnasNet) and NetAdapt, then
edited by hand (section 5). Each ``bneck`` row is a MobileNet v2 inverted residual (1x1 expansion -> k x k
depthwise -> linear 1x1 projection, identity shortcut when the shape holds) with, where the table marks it, a
Squeeze-and-Excitation block after the depthwise convolution (section 5.3): its bottleneck is 1/4 of the
*expansion* width (rounded to a multiple of 8) and its gate the hard sigmoid ``ReLU6(x + 3) / 6``. The
nonlinearity is the table's NL column: ReLU (RE) in the early layers, *hard-swish* ``x * ReLU6(x + 3) / 6``
(HS) in the deeper ones, where the maps are small enough for its cost (section 5.2). The redesigned last stage
(section 5.1, Figure 5) pools the 7x7 map right after the 1x1 expansion to 960 (Small: 576) channels, and the
1x1 "conv2d NBN" layers that follow act on a 1x1 map: they are the Linear layers of ``classifier``.

The implementation is torchvision's (module names ``features.N.block.K``, ``classifier.0``/``.3``, so its
weights load unchanged and the outputs match), which follows the authors' TensorFlow release where the paper
is silent or differs:

* BatchNorm with eps 1e-3 and momentum 0.01 (TensorFlow's settings, those of the released weights);
* dropout 0.2 before the last Linear layer;
* Table 2 marks SE on Small's final 1x1 convolution (576 channels) too; the released networks have none there,
  nor has this one;
* ``width_mult`` scales every width of the tables to ``make_divisible(c * width_mult, 8)`` (the paper's
  multipliers, Tables 3 and 4); the last convolution stays 6x the last bneck's output, and the hidden head
  width is scaled too.

Small images (``small_input=True``, as the MobileNets of ``mobilenet.py``): the stem convolution gets stride 1
and the first stride-2 bneck (Large: the one to 24 channels; Small: the first one) stride 1, so the total
stride is 8 instead of 32 (``min_input_size`` 8 instead of 32) and a 32x32 image (28x28 too) reaches the last
bnecks as a 4x4 map instead of 1x1. No layer changes shape, so ImageNet weights still load.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable, Dict, NamedTuple, Sequence, Tuple

import torch
from torch import nn

from ..layers.conv import ConvBnAct, make_divisible
from ..layers.se import SqueezeExcite
from ._spec import Paper, SmallInput, register_model
from ._base import SequentialHeadModel, init_weights_default, linear_or_identity

__all__ = ["MobileNetV3", "Bneck", "BneckConfig", "V3Arch", "ARCHS", "ACTIVATIONS"]

MOBILENET_V3 = Paper(
    "Searching for MobileNetV3",
    "Howard, Sandler, Chu, Chen, Chen, Tan, Wang, Zhu, Pang, Vasudevan, Le, Adam", 2019,
    "https://arxiv.org/abs/1905.02244",
)

# The NL column of Tables 1 and 2.
ACTIVATIONS: Dict[str, Callable[..., nn.Module]] = {"RE": nn.ReLU, "HS": nn.Hardswish}


class BneckConfig(NamedTuple):
    """One ``bneck`` row of Table 1 or 2 (the input width is the previous row's output)."""

    kernel: int  # depthwise kernel k x k
    exp: int  # "exp size": width of the 1x1 expansion (no expansion when it equals the input width)
    out: int  # "#out": output channels
    se: bool  # "SE": squeeze-and-excitation after the depthwise convolution
    act: str  # "NL": RE (ReLU) or HS (hard-swish)
    stride: int  # "s"


class V3Arch(NamedTuple):
    """A whole table: the stem, the bnecks, the last convolution and the head."""

    stem: int  # 3x3/2 conv2d, hard-swish
    blocks: Tuple[BneckConfig, ...]
    head: int  # the 1x1 "conv2d NBN" after the pool, hard-swish (a Linear layer here)


STEM_STRIDE = 2
LAST_CONV_MULT = 6  # the 1x1 conv before the pool: 960 = 6 x 160 (Large), 576 = 6 x 96 (Small)
SE_DIVISOR = 4  # SE bottleneck = expansion width / 4 (section 5.3), then make_divisible(., 8)
DROPOUT = 0.2
# TensorFlow's BatchNorm settings, those of the released weights (torchvision's too).
BATCHNORM = dict(eps=1e-3, momentum=0.01)

# Comments: the output size for a 224x224 input.
LARGE = V3Arch(16, (  # Table 1
    #           k  exp  out    SE    NL   s
    BneckConfig(3, 16, 16, False, "RE", 1),  # 112x112
    BneckConfig(3, 64, 24, False, "RE", 2),  # 56x56
    BneckConfig(3, 72, 24, False, "RE", 1),
    BneckConfig(5, 72, 40, True, "RE", 2),  # 28x28
    BneckConfig(5, 120, 40, True, "RE", 1),
    BneckConfig(5, 120, 40, True, "RE", 1),
    BneckConfig(3, 240, 80, False, "HS", 2),  # 14x14
    BneckConfig(3, 200, 80, False, "HS", 1),
    BneckConfig(3, 184, 80, False, "HS", 1),
    BneckConfig(3, 184, 80, False, "HS", 1),
    BneckConfig(3, 480, 112, True, "HS", 1),
    BneckConfig(3, 672, 112, True, "HS", 1),
    BneckConfig(5, 672, 160, True, "HS", 2),  # 7x7
    BneckConfig(5, 960, 160, True, "HS", 1),
    BneckConfig(5, 960, 160, True, "HS", 1),
), head=1280)
SMALL = V3Arch(16, (  # Table 2
    #           k  exp  out    SE    NL   s
    BneckConfig(3, 16, 16, True, "RE", 2),  # 56x56
    BneckConfig(3, 72, 24, False, "RE", 2),  # 28x28
    BneckConfig(3, 88, 24, False, "RE", 1),
    BneckConfig(5, 96, 40, True, "HS", 2),  # 14x14
    BneckConfig(5, 240, 40, True, "HS", 1),
    BneckConfig(5, 240, 40, True, "HS", 1),
    BneckConfig(5, 120, 48, True, "HS", 1),
    BneckConfig(5, 144, 48, True, "HS", 1),
    BneckConfig(5, 288, 96, True, "HS", 2),  # 7x7
    BneckConfig(5, 576, 96, True, "HS", 1),
    BneckConfig(5, 576, 96, True, "HS", 1),
), head=1024)
ARCHS: Dict[str, V3Arch] = {"large": LARGE, "small": SMALL}


class Bneck(nn.Module):
    """A ``bneck`` (torchvision's ``InvertedResidual``): [1x1 expand] -> k x k depthwise -> [SE] -> 1x1 linear.

    ``block`` is torchvision's layout; the shortcut is the identity when stride 1 keeps the width.
    """

    def __init__(self, in_chs: int, cfg: BneckConfig, norm_layer: Callable[..., nn.Module]) -> None:
        super().__init__()
        act = ACTIVATIONS[cfg.act]
        layers: list[nn.Module] = []
        if cfg.exp != in_chs:
            layers.append(ConvBnAct(in_chs, cfg.exp, 1, norm_layer=norm_layer, act_layer=act))
        layers.append(ConvBnAct(cfg.exp, cfg.exp, cfg.kernel, cfg.stride, groups=cfg.exp, norm_layer=norm_layer,
                                act_layer=act))
        if cfg.se:
            layers.append(SqueezeExcite(cfg.exp, squeeze_channels=make_divisible(cfg.exp // SE_DIVISOR, 8),
                                        act_layer=nn.ReLU, gate_layer=nn.Hardsigmoid))
        # Linear bottleneck (MobileNet v2): no activation after the projection.
        layers.append(ConvBnAct(cfg.exp, cfg.out, 1, norm_layer=norm_layer, act_layer=None))
        self.block = nn.Sequential(*layers)
        self.use_res_connect = cfg.stride == 1 and in_chs == cfg.out
        self.out_channels = cfg.out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return out + x if self.use_res_connect else out


def _stage_map(strides: Sequence[int]) -> Dict[str, Tuple[str, ...]]:
    """Stem, then a stage per resolution (a new one at each stride-2 bneck of the table), conv head, head."""
    stages: list[list[str]] = [[]]
    for i, s in enumerate(strides, start=1):
        if s == 2 and stages[-1]:
            stages.append([])
        stages[-1].append(f"features.{i}")
    stage_map = {"stem": ("features.0",)}
    stage_map.update({f"stage{n}": tuple(paths) for n, paths in enumerate(stages, start=1)})
    stage_map.update({"conv_head": (f"features.{len(strides) + 1}",), "head": ("classifier",)})
    return stage_map


class MobileNetV3(SequentialHeadModel):
    """MobileNet v3, Large or Small.

    ``num_features`` is the hidden head width (1280 / 1024), the input of the last Linear layer and what
    ``pre_logits`` returns; ``forward_features`` ends with the 960 / 576-channel map.

    Args:
        arch: ``"large"`` (Table 1) or ``"small"`` (Table 2).
        width_mult: every width becomes ``make_divisible(c * width_mult, 8)``.
        drop_rate: dropout before the last Linear layer.
        small_input: stride-1 stem and stride-1 first stride-2 bneck (total stride 8), for 28-32 px images.
    """

    def __init__(self, arch: str = "large", width_mult: float = 1.0, num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = DROPOUT, small_input: bool = False) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got {arch!r}")
        if width_mult <= 0:
            raise ValueError(f"width_mult must be positive, got {width_mult}")
        self.num_classes, self.in_chans, self.small_input = num_classes, in_chans, small_input
        self.arch, self.width_mult, self.drop_rate = arch, width_mult, drop_rate
        table = ARCHS[arch]

        def width(c: int) -> int:
            return make_divisible(c * width_mult, 8)

        blocks = [b._replace(exp=width(b.exp), out=width(b.out)) for b in table.blocks]
        stem_stride = STEM_STRIDE
        if small_input:
            stem_stride = 1
            first = next(i for i, b in enumerate(blocks) if b.stride == 2)
            blocks[first] = blocks[first]._replace(stride=1)
        # Every layer is "same"-padded: the total stride is the smallest input that reaches the last bnecks as
        # more than padding.
        self.min_input_size = stem_stride * math.prod(b.stride for b in blocks)

        norm_layer = partial(nn.BatchNorm2d, **BATCHNORM)
        chs = width(table.stem)
        layers: list[nn.Module] = [ConvBnAct(in_chans, chs, 3, stem_stride, norm_layer=norm_layer,
                                             act_layer=nn.Hardswish)]
        for cfg in blocks:
            layers.append(Bneck(chs, cfg, norm_layer))
            chs = cfg.out
        last_conv = LAST_CONV_MULT * chs
        layers.append(ConvBnAct(chs, last_conv, 1, norm_layer=norm_layer, act_layer=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = width(table.head)
        self.classifier = nn.Sequential(
            nn.Linear(last_conv, self.num_features), nn.Hardswish(inplace=True), nn.Dropout(drop_rate, inplace=True),
            linear_or_identity(self.num_features, num_classes),
        )
        self.stage_map = _stage_map([b.stride for b in table.blocks])
        init_weights_default(self)  # torchvision's: He fan-out convolutions, unit BN, N(0, 0.01) Linear layers

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def init_classifier(self, layer: nn.Linear) -> None:
        nn.init.normal_(layer.weight, 0, 0.01)
        nn.init.zeros_(layer.bias)


# --------------------------------------------------------------------------------------- registrations


def _create_mobilenet_v3(arch: str, **kwargs) -> MobileNetV3:
    return MobileNetV3(**dict(dict(arch=arch), **kwargs))


_SMALL_INPUT = SmallInput("option", {"small_input": True})


@register_model(family="MobileNet v3", paper=MOBILENET_V3, small_input=_SMALL_INPUT, torchvision="mobilenet_v3_large")
def mobilenet_v3_large(**kwargs) -> MobileNetV3:
    """MobileNetV3-Large 1.0 (Table 1, 224 px): 15 bnecks, 219M mult-adds, 5.4M parameters."""
    return _create_mobilenet_v3("large", **kwargs)


@register_model(family="MobileNet v3", paper=MOBILENET_V3, small_input=_SMALL_INPUT, torchvision="mobilenet_v3_small")
def mobilenet_v3_small(**kwargs) -> MobileNetV3:
    """MobileNetV3-Small 1.0 (Table 2, 224 px): 11 bnecks, 56M mult-adds, 2.5M parameters."""
    return _create_mobilenet_v3("small", **kwargs)
