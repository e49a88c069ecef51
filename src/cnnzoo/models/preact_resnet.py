"""Pre-activation ResNet: He, Zhang, Ren, Sun, "Identity Mappings in Deep Residual Networks", ECCV 2016.

https://arxiv.org/abs/1603.05027

The paper moves BN and ReLU in front of each convolution ("full pre-activation", Fig. 4e), so that the
shortcut of every unit is a pure identity and nothing follows the addition: ``x_{l+1} = x_l + F(x_l)``,
and any deeper unit sees ``x_L = x_l + sum F``. Because the last unit's sum is not activated, the network
ends with an extra BN-ReLU before the global average pool (appendix).

* ImageNet (``preact_resnet18/34/50``): the depths and widths of the original ResNet (Table 1 of
  arXiv 1512.03385); the stem is the 7x7/2 convolution and 3x3/2 max-pool, without BN-ReLU of its own.
* CIFAR (section 4 and its tables): a 3x3 convolution of 16 filters, then three stages on 32, 16 and 8 px maps.
  ``preact_resnet110`` has basic units (6n+2 layers, n = 18, widths 16-32-64: 1,730,522 parameters for 10
  classes, the paper's 1.7M); ``preact_resnet164`` bottleneck units (9n+2 layers, n = 18, outputs 64-128-256:
  1,703,258, the paper's 1.7M). The paper's ResNet-1001 is the bottleneck table with n = 111; it is not
  registered, as its 1001 layers would dominate the registry-wide tests, but
  ``PreActResNet("bottleneck", (111,) * 3, CIFAR_WIDTHS, num_classes=10, small_input=True)`` builds it:
  10,327,706 parameters, of which 10,178,490 are convolution and FC weights (the paper's 10.2M leaves the
  BNs out).

Where the pre-activation goes, as in the authors' code (fb.resnet.torch's ``preresnet.lua``, the CIFAR
``resnet-pre-act.lua`` of KaimingHe/resnet-1k-layers) and timm's ``ResNetV2``: every unit opens with
BN-ReLU; in the first unit of each stage that activation feeds both paths (the appendix's "first activation
right after conv1 and before splitting into two paths"), so a projection shortcut (a bias-free 1x1
convolution, no BN: the next unit normalises) sees normalised input; in every other unit the shortcut is
the identity of the raw sum.

Parameter counts against the v1 ResNets (``resnet.py``): the same convolutions and FC layer, only the BNs
(2 parameters a channel) move. Each unit normalises its input width instead of its output width (the first
units of the stages: 1984 channels fewer in ResNet-50, 448 in ResNet-18/34), the stem's BN (64) and the
projection shortcuts' BNs (3840; 896) go, and the final BN (2048; 512) comes. ResNet-50 loses
2 x (1984 + 64 + 3840 - 2048) = 7,680 parameters: 25,549,352, as timm's ``resnetv2_50`` (25.5M), which has
this layout. ResNet-18 and -34 lose 2 x (448 + 64 + 896 - 512) = 1,792: 11,687,720 and 21,795,880.

Decisions:

* The stem has no BN-ReLU: the first unit's opens the first stage (timm's ``resnetv2`` and the authors'
  CIFAR code). fb.resnet.torch's ImageNet model puts that BN-ReLU before the max-pool instead; the
  parameters are the same.
* The stride of a bottleneck sits on its 3x3 convolution (fb.resnet.torch, timm); the authors' CIFAR code
  strides the first 1x1. The parameter count is the same either way.
* Small images (``small_input=True`` on the ImageNet models, as ``resnet.py``): a 3x3 stride-1 stem and no
  max-pool, total stride 8, so the four stages see 32-16-8-4 px maps for a 32 px image (28-14-7-4 for 28 px).
  The CIFAR models are built with it and take 28 and 32 px natively.
"""

from __future__ import annotations

from typing import Dict, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import nn

from ._spec import Paper, SmallInput, register_model
from ._base import PooledFcModel, init_weights_default, linear_or_identity

__all__ = ["PreActResNet", "PreActUnit", "UNITS", "CONFIGS"]

PREACT = Paper(
    "Identity Mappings in Deep Residual Networks",
    "He, Zhang, Ren, Sun", 2016, "https://arxiv.org/abs/1603.05027",
)

# The BN-ReLU-conv layers of one unit: (kernel, output width as a multiple of the stage's planes). A unit's
# stride sits on its first 3x3 convolution; its output width is the last row's.
UNITS: Dict[str, Tuple[Tuple[int, int], ...]] = {
    "basic": ((3, 1), (3, 1)),  # two 3x3
    "bottleneck": ((1, 1), (3, 1), (1, 4)),  # 1x1 reduce, 3x3, 1x1 expand by 4
}
IMAGENET_WIDTHS = (64, 128, 256, 512)  # planes per stage (Table 1 of arXiv 1512.03385); the stem is 64 wide
CIFAR_WIDTHS = (16, 32, 64)  # planes per stage (section 4); the stem is 16 wide


class PreActConfig(NamedTuple):
    """One registered variant."""

    unit: str  # a key of UNITS
    layers: Tuple[int, ...]  # units per stage
    widths: Tuple[int, ...]  # planes per stage
    small_input: bool  # the CIFAR stem (3x3/1, no max-pool) by default


CONFIGS: Dict[str, PreActConfig] = {
    #                                         units per stage  (56, 28, 14, 7 px at 224)
    "preact_resnet18": PreActConfig("basic", (2, 2, 2, 2), IMAGENET_WIDTHS, False),
    "preact_resnet34": PreActConfig("basic", (3, 4, 6, 3), IMAGENET_WIDTHS, False),
    "preact_resnet50": PreActConfig("bottleneck", (3, 4, 6, 3), IMAGENET_WIDTHS, False),
    #                                           units per stage  (32, 16, 8 px)
    "preact_resnet110": PreActConfig("basic", (18, 18, 18), CIFAR_WIDTHS, True),  # 6n+2, n = 18
    "preact_resnet164": PreActConfig("bottleneck", (18, 18, 18), CIFAR_WIDTHS, True),  # 9n+2, n = 18
}


class PreActUnit(nn.Module):
    """A full pre-activation residual unit (Fig. 4e): (BN-ReLU-conv) per row of :data:`UNITS`, plus the shortcut.

    Args:
        in_chs: input channels.
        planes: the stage's planes (a bottleneck's output is 4x).
        unit: ``"basic"`` or ``"bottleneck"``.
        stride: stride of the first 3x3 convolution and of the projection shortcut.
        shares_preact: the first BN-ReLU feeds the shortcut too (the first unit of a stage).
    """

    def __init__(self, in_chs: int, planes: int, unit: str, stride: int = 1, shares_preact: bool = False) -> None:
        super().__init__()
        rows = UNITS[unit]
        strided = next(i for i, (k, _) in enumerate(rows) if k == 3)
        self.norms, self.convs = nn.ModuleList(), nn.ModuleList()
        chs = in_chs
        for i, (k, mult) in enumerate(rows):
            self.norms.append(nn.BatchNorm2d(chs))
            self.convs.append(nn.Conv2d(chs, planes * mult, k, stride if i == strided else 1, k // 2, bias=False))
            chs = planes * mult
        self.relu = nn.ReLU(inplace=True)
        self.out_channels, self.shares_preact = chs, shares_preact
        self.downsample: Optional[nn.Module] = None
        if stride != 1 or in_chs != chs:
            self.downsample = nn.Conv2d(in_chs, chs, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu(self.norms[0](x))
        shortcut = pre if self.shares_preact else x
        if self.downsample is not None:
            shortcut = self.downsample(shortcut)
        out = self.convs[0](pre)
        for norm, conv in zip(self.norms[1:], self.convs[1:]):
            out = conv(self.relu(norm(out)))
        return out + shortcut  # no activation after the sum: the identity path stays clean


class PreActResNet(PooledFcModel):
    """Pre-activation ResNet: stem convolution, stages of :class:`PreActUnit`, BN-ReLU, global pool, FC.

    Args:
        unit: ``"basic"`` or ``"bottleneck"`` (:data:`UNITS`).
        layers: units per stage.
        widths: planes per stage; the stem is ``widths[0]`` wide.
        small_input: the 3x3 stride-1 stem without max-pool (the CIFAR stem) instead of the 7x7/2 convolution
            and 3x3/2 max-pool.
        drop_rate: dropout before the classifier.
    """

    def __init__(
        self, unit: str, layers: Sequence[int], widths: Sequence[int], num_classes: int = 1000, in_chans: int = 3,
        small_input: bool = False, drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if len(layers) != len(widths):
            raise ValueError(f"layers {tuple(layers)} and widths {tuple(widths)} must name the same stages")
        self.num_classes, self.in_chans, self.small_input = num_classes, in_chans, small_input
        if small_input:
            self.conv1 = nn.Conv2d(in_chans, widths[0], 3, 1, 1, bias=False)
            self.maxpool: nn.Module = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(in_chans, widths[0], 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        # The total stride (stem, then 2 per stage after the first): smaller inputs reach the last stage as
        # padding only.
        self.min_input_size = (1 if small_input else 4) * 2 ** (len(layers) - 1)
        self.stages = _make_stages(unit, layers, widths)
        self.num_features = self.stages[-1][-1].out_channels
        # The last unit's sum is not activated: the final BN-ReLU (appendix) belongs to the last stage.
        self.norm = nn.BatchNorm2d(self.num_features)
        self.relu = nn.ReLU(inplace=True)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.drop_rate = drop_rate
        self.fc = linear_or_identity(self.num_features, num_classes)
        last = len(layers) - 1
        self.stage_map = {
            "stem": ("conv1",),
            **{f"stage{i + 1}": (f"stages.{i}",) + (("norm",) if i == last else ()) for i in range(len(layers))},
            "head": ("fc",),
        }
        init_weights_default(self)  # as the authors' code: He-normal (fan-out) convolutions, unit BN

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.maxpool(self.conv1(x)))
        return self.relu(self.norm(x))


def _make_stages(unit: str, layers: Sequence[int], widths: Sequence[int]) -> nn.Sequential:
    """One Sequential of units per stage; a stage's first unit strides (from stage 2) and shares its BN-ReLU."""
    stages, chs = nn.Sequential(), widths[0]
    for i, (planes, n) in enumerate(zip(widths, layers)):
        units = []
        for j in range(n):
            units.append(PreActUnit(chs, planes, unit, 2 if i > 0 and j == 0 else 1, shares_preact=j == 0))
            chs = units[-1].out_channels
        stages.append(nn.Sequential(*units))
    return stages


def _create_preact(variant: str, **kwargs) -> PreActResNet:
    c = CONFIGS[variant]
    return PreActResNet(c.unit, c.layers, c.widths, **dict(dict(small_input=c.small_input), **kwargs))


_SMALL = SmallInput("option", {"small_input": True})


@register_model(family="Pre-activation ResNet", paper=PREACT, small_input=_SMALL)
def preact_resnet18(**kwargs) -> PreActResNet:
    """Pre-activation ResNet-18: basic units 2-2-2-2, 11.69M parameters."""
    return _create_preact("preact_resnet18", **kwargs)


@register_model(family="Pre-activation ResNet", paper=PREACT, small_input=_SMALL)
def preact_resnet34(**kwargs) -> PreActResNet:
    """Pre-activation ResNet-34: basic units 3-4-6-3, 21.80M parameters."""
    return _create_preact("preact_resnet34", **kwargs)


@register_model(family="Pre-activation ResNet", paper=PREACT, small_input=_SMALL)
def preact_resnet50(**kwargs) -> PreActResNet:
    """Pre-activation ResNet-50: bottleneck units 3-4-6-3, 25.55M parameters (timm's resnetv2_50)."""
    return _create_preact("preact_resnet50", **kwargs)


@register_model(family="Pre-activation ResNet (CIFAR)", paper=PREACT, input_size=32)
def preact_resnet110(**kwargs) -> PreActResNet:
    """CIFAR pre-activation ResNet-110: basic units, n=18, 1.7M parameters."""
    return _create_preact("preact_resnet110", **kwargs)


@register_model(family="Pre-activation ResNet (CIFAR)", paper=PREACT, input_size=32)
def preact_resnet164(**kwargs) -> PreActResNet:
    """CIFAR pre-activation ResNet-164: bottleneck units, n=18, 1.7M parameters."""
    return _create_preact("preact_resnet164", **kwargs)
