"""Wide ResNet: Zagoruyko, Komodakis, "Wide Residual Networks", BMVC 2016.

https://arxiv.org/abs/1605.07146

Residual networks made shallower and wider: WRN-n-k multiplies the widths of a residual network of
depth n by the *widening factor* k.

* CIFAR (Table 1 of the paper; ``wrn28_10``, ``wrn16_8``, ``wrn40_4``): a 3x3 convolution of 16
  filters, three stages of N = (n - 4) / 6 basic blocks of widths 16k, 32k and 64k on 32-16-8 px maps
  (the stride is on the first convolution of stages 2 and 3), BN-ReLU, global average pooling, FC.
  The blocks are the pre-activation ones of He et al. 2016 (Identity Mappings, Fig. 4e), the paper's
  B(3,3): BN-ReLU-conv3x3-BN-ReLU-conv3x3, with the paper's optional dropout between the two
  convolutions (section 2, "Dropout in residual blocks"; ``dropout=0.3`` in its CIFAR runs) as the
  ``dropout`` argument. Where the width or the stride changes, the shortcut is a 1x1 convolution of
  the pre-activated input (BN-ReLU shared with the residual branch), as in the authors' code. Module
  names are those of ``resnet.py``'s CIFAR ResNet (``conv1``, ``layer1-3``, ``fc``; ``downsample`` for
  the projection, as torchvision); no torchvision or timm model has this layout.
* ImageNet (section 4, "WRN-50-2-bottleneck"; ``wide_resnet50_2``, ``wide_resnet101_2``): ResNet-50/101
  whose bottlenecks' inner 1x1-3x3 widths are doubled (the outputs stay 256-512-1024-2048), built from
  ``resnet.py``'s ResNet with ``width_per_group = 128`` exactly as torchvision builds them, so its module
  names and weights load unchanged. Small images: ``small_input=True`` (the 3x3 stride-1 stem).

Decisions:
  * Convolutions have no bias (each is followed by BN), as in the authors' code; He-normal (fan-out)
    initialisation as their ``MSRinit``; PyTorch's default for the classifier.
  * ``min_input_size`` is 4 as for the CIFAR ResNets: the two stride-2 stages leave a 1x1 map.
"""

from __future__ import annotations

from typing import Dict, NamedTuple, Optional

import torch
from torch import nn

from ._spec import Paper, register_model
from ._base import PooledFcModel, linear_or_identity
from .resnet import _SMALL, ResNet, _create_resnet, _init

__all__ = ["WideResNet", "WideBasicBlock", "Widening", "CIFAR_VARIANTS", "IMAGENET_VARIANTS", "CIFAR_WIDTHS"]

WRN = Paper("Wide Residual Networks", "Zagoruyko, Komodakis", 2016, "https://arxiv.org/abs/1605.07146")


class Widening(NamedTuple):
    """WRN-n-k."""

    depth: int  # n: 6N + 4 layers on CIFAR (N blocks per stage); the ResNet depth on ImageNet
    k: int  # widening factor


# Table 1: the stem width and the three stages' widths before widening (x k), on 32-16-8 px maps.
STEM_WIDTH = 16
CIFAR_WIDTHS = (16, 32, 64)
CIFAR_VARIANTS: Dict[str, Widening] = {
    #                     n   k
    "wrn28_10": Widening(28, 10),
    "wrn16_8": Widening(16, 8),
    "wrn40_4": Widening(40, 4),
}
# Section 4: a ResNet's bottleneck widened by k is torchvision's width_per_group = 64k.
IMAGENET_VARIANTS: Dict[str, Widening] = {
    "wide_resnet50_2": Widening(50, 2),
    "wide_resnet101_2": Widening(101, 2),
}


class WideBasicBlock(nn.Module):
    """Pre-activation B(3,3): BN-ReLU-conv3x3 -> BN-ReLU-[dropout]-conv3x3, plus the shortcut.

    ``dropout`` (the paper's dropout between the convolutions) adds a ``dropout`` module only when set.
    """

    def __init__(self, inplanes: int, planes: int, stride: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.dropout: Optional[nn.Module] = nn.Dropout(dropout) if dropout > 0 else None
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.downsample: Optional[nn.Module] = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Conv2d(inplanes, planes, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu1(self.bn1(x))
        out = self.relu2(self.bn2(self.conv1(pre)))
        if self.dropout is not None:
            out = self.dropout(out)
        out = self.conv2(out)
        # The projection sees the pre-activated input, the identity the input itself (He et al. 2016, Fig. 4e).
        return out + (x if self.downsample is None else self.downsample(pre))


class WideResNet(PooledFcModel):
    """The CIFAR WRN-n-k of Table 1.

    Args:
        depth: n = 6N + 4 (16, 22, 28, 40, ...), N blocks per stage.
        widen_factor: k, the multiplier of the widths 16-32-64.
        dropout: dropout between the two convolutions of every block (the paper's 0.3), off at 0.
        drop_rate: dropout before the classifier.
    """

    def __init__(self, depth: int, widen_factor: int, num_classes: int = 10, in_chans: int = 3,
                 dropout: float = 0.0, drop_rate: float = 0.0) -> None:
        super().__init__()
        if (depth - 4) % 6 or depth < 10:
            raise ValueError(f"a CIFAR Wide ResNet has depth 6N+4 (16, 22, 28, 40), got {depth}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        n = (depth - 4) // 6
        self.num_classes, self.in_chans = num_classes, in_chans
        self.min_input_size = 2 ** (len(CIFAR_WIDTHS) - 1)
        self.conv1 = nn.Conv2d(in_chans, STEM_WIDTH, 3, 1, 1, bias=False)
        inplanes = STEM_WIDTH
        for i, width in enumerate(CIFAR_WIDTHS):
            planes = width * widen_factor
            blocks = [WideBasicBlock(inplanes if j == 0 else planes, planes, 2 if i > 0 and j == 0 else 1, dropout)
                      for j in range(n)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            inplanes = planes
        # The last blocks end in a convolution: the final BN-ReLU of the pre-activation stack.
        self.bn = nn.BatchNorm2d(inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.num_features = inplanes
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.drop_rate = drop_rate
        self.fc = linear_or_identity(self.num_features, num_classes)
        self.stage_map = {
            "stem": ("conv1",), "stage1": ("layer1",), "stage2": ("layer2",), "stage3": ("layer3", "bn"),
            "head": ("fc",),
        }
        _init(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.conv1(x))))
        return self.relu(self.bn(x))


def _create_wrn(variant: str, **kwargs) -> WideResNet:
    depth, k = CIFAR_VARIANTS[variant]
    return WideResNet(depth, k, **kwargs)


def _create_wide_resnet(variant: str, **kwargs) -> ResNet:
    depth, k = IMAGENET_VARIANTS[variant]
    return _create_resnet(depth, **dict(dict(width_per_group=64 * k), **kwargs))


@register_model(family="Wide ResNet", paper=WRN, small_input=_SMALL, torchvision="wide_resnet50_2")
def wide_resnet50_2(**kwargs) -> ResNet:
    """Wide ResNet-50-2: ResNet-50 with twice as wide bottlenecks, 68.9M parameters."""
    return _create_wide_resnet("wide_resnet50_2", **kwargs)


@register_model(family="Wide ResNet", paper=WRN, small_input=_SMALL, torchvision="wide_resnet101_2")
def wide_resnet101_2(**kwargs) -> ResNet:
    """Wide ResNet-101-2: ResNet-101 with twice as wide bottlenecks, 126.9M parameters."""
    return _create_wide_resnet("wide_resnet101_2", **kwargs)


@register_model(family="Wide ResNet (CIFAR)", paper=WRN, input_size=32)
def wrn28_10(**kwargs) -> WideResNet:
    """CIFAR WRN-28-10: four pre-activation blocks per stage, widths 160-320-640, 36.5M parameters."""
    return _create_wrn("wrn28_10", **kwargs)


@register_model(family="Wide ResNet (CIFAR)", paper=WRN, input_size=32)
def wrn16_8(**kwargs) -> WideResNet:
    """CIFAR WRN-16-8: two pre-activation blocks per stage, widths 128-256-512, 11.0M parameters."""
    return _create_wrn("wrn16_8", **kwargs)


@register_model(family="Wide ResNet (CIFAR)", paper=WRN, input_size=32)
def wrn40_4(**kwargs) -> WideResNet:
    """CIFAR WRN-40-4: six pre-activation blocks per stage, widths 64-128-256, 8.9M parameters."""
    return _create_wrn("wrn40_4", **kwargs)
