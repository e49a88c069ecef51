"""ResNet: He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016.

ImageNet ResNets (Table 1 of the paper) and the CIFAR ResNets of section 4.2 (6n+2 layers,
16-32-64 filters, parameter-free "option A" shortcuts). The ImageNet models put the stride of a
bottleneck on its 3x3 convolution ("ResNet v1.5", as torchvision and every modern reference do;
the parameter count is the paper's either way) and keep torchvision's module names, so its
weights load unchanged.

Squeeze-and-Excitation (``se_reduction=16``) is an option of every block here; ``senet.py``
registers the SE-ResNets with it.
"""

from __future__ import annotations

from typing import Optional, Sequence, Type

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import DropPath, SqueezeExcite
from ._spec import Paper, SmallInput, register_model
from ._base import PooledFcModel, linear_or_identity

__all__ = ["ResNet", "CifarResNet", "BasicBlock", "Bottleneck"]

RESNET = Paper(
    "Deep Residual Learning for Image Recognition",
    "He, Zhang, Ren, Sun", 2016, "https://arxiv.org/abs/1512.03385",
)

# Table 1: blocks per stage (conv2_x ... conv5_x) of each ImageNet depth.
IMAGENET_DEPTHS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}
STAGE_WIDTHS = (64, 128, 256, 512)  # output width of a basic block; a bottleneck's 1x1 width
CIFAR_WIDTHS = (16, 32, 64)  # section 4.2: 6n+2 layers, n blocks per stage


def _drop_path(rate: float) -> Optional[nn.Module]:
    return DropPath(rate) if rate > 0 else None


def _se(channels: int, reduction: Optional[int]) -> Optional[nn.Module]:
    return SqueezeExcite(channels, reduction) if reduction else None


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or projection) shortcut."""

    expansion = 1

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None,
        se_reduction: Optional[int] = None, drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.se = _se(planes, se_reduction)
        self.downsample = downsample
        self.drop_path = _drop_path(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.se is not None:
            out = self.se(out)
        if self.drop_path is not None:
            out = self.drop_path(out)
        out += identity  # in place, as torchvision: no extra tensor per block
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 -> 1x1 expand (x4), the deeper nets' block."""

    expansion = 4

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None,
        se_reduction: Optional[int] = None, drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.se = _se(out, se_reduction)
        self.downsample = downsample
        self.drop_path = _drop_path(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.se is not None:
            out = self.se(out)
        if self.drop_path is not None:
            out = self.drop_path(out)
        out += identity  # in place, as torchvision: no extra tensor per block
        return self.relu(out)


def _zero_init_last_bn(model: nn.Module) -> None:
    # Goyal et al. 2017: each residual block starts as the identity.
    for m in model.modules():
        if isinstance(m, Bottleneck):
            nn.init.zeros_(m.bn3.weight)
        elif isinstance(m, (BasicBlock, CifarBasicBlock)):
            nn.init.zeros_(m.bn2.weight)


def _init(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class ResNet(PooledFcModel):
    """ImageNet ResNet.

    Args:
        block: ``BasicBlock`` or ``Bottleneck``.
        layers: blocks per stage.
        small_input: for 28-32 px images: a 3x3 stride-1 first convolution and no max-pool
            (the CIFAR stem), so the four stages see 32-16-8-4 maps instead of 8-4-2-1.
        se_reduction: add a Squeeze-and-Excitation block with this ratio to every block.
        drop_rate: dropout before the classifier.
        drop_path_rate: stochastic depth, rising linearly to this rate over the blocks.
        zero_init_residual: start every block's last BatchNorm at zero.
    """

    def __init__(
        self, block: Type[nn.Module], layers: Sequence[int], num_classes: int = 1000, in_chans: int = 3,
        small_input: bool = False, se_reduction: Optional[int] = None, drop_rate: float = 0.0,
        drop_path_rate: float = 0.0, zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        self.num_classes, self.in_chans, self.small_input = num_classes, in_chans, small_input
        if small_input:
            self.conv1 = nn.Conv2d(in_chans, 64, 3, 1, 1, bias=False)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(in_chans, 64, 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        # The total stride: smaller inputs reach the last stage as padding only.
        self.min_input_size = 8 if small_input else 32

        total, done = sum(layers), 0
        self.inplanes = 64
        for i, (planes, n) in enumerate(zip(STAGE_WIDTHS, layers)):
            rates = [drop_path_rate * (done + j) / max(total - 1, 1) for j in range(n)]
            done += n
            stage = self._make_layer(block, planes, n, 1 if i == 0 else 2, se_reduction, rates)
            setattr(self, f"layer{i + 1}", stage)
        self.num_features = 512 * block.expansion
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.drop_rate = drop_rate
        self.fc = linear_or_identity(self.num_features, num_classes)
        self.stage_map = {
            "stem": ("conv1", "bn1"), "stage1": ("layer1",), "stage2": ("layer2",),
            "stage3": ("layer3",), "stage4": ("layer4",), "head": ("fc",),
        }
        _init(self)
        if zero_init_residual:
            _zero_init_last_bn(self)

    def _make_layer(self, block, planes, blocks, stride, se_reduction, rates) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample, se_reduction, rates[0])]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, 1, None, se_reduction, r) for r in rates[1:]]
        return nn.Sequential(*layers)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))



class CifarBasicBlock(nn.Module):
    """Basic block with the paper's option-A shortcut: subsample and zero-pad the channels."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, se_reduction: Optional[int] = None,
                 drop_path: float = 0.0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.se = _se(planes, se_reduction)
        self.drop_path = _drop_path(drop_path)
        self.stride, self.pad = stride, planes - inplanes

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.pad:
            x = F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.se is not None:
            out = self.se(out)
        if self.drop_path is not None:
            out = self.drop_path(out)
        out += self.shortcut(x)
        return self.relu(out)


class CifarResNet(PooledFcModel):
    """The 6n+2-layer CIFAR ResNet of section 4.2: 3x3 conv, 3 stages of n blocks, GAP, FC.

    Args:
        depth: 6n+2 (20, 32, 44, 56, 110, ...).
        se_reduction: add Squeeze-and-Excitation with this ratio to every block.
    """

    def __init__(self, depth: int, num_classes: int = 10, in_chans: int = 3, se_reduction: Optional[int] = None,
                 drop_rate: float = 0.0, drop_path_rate: float = 0.0, zero_init_residual: bool = False) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n+2 (20, 32, 44, 56, 110), got {depth}")
        n = (depth - 2) // 6
        self.num_classes, self.in_chans = num_classes, in_chans
        self.min_input_size = 4  # two stride-2 stages
        self.conv1 = nn.Conv2d(in_chans, CIFAR_WIDTHS[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(CIFAR_WIDTHS[0])
        self.relu = nn.ReLU(inplace=True)
        inplanes, total = CIFAR_WIDTHS[0], 3 * n
        for i, planes in enumerate(CIFAR_WIDTHS):
            blocks = []
            for j in range(n):
                rate = drop_path_rate * (i * n + j) / max(total - 1, 1)
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(CifarBasicBlock(inplanes, planes, stride, se_reduction, rate))
                inplanes = planes
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.num_features = CIFAR_WIDTHS[-1]
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.drop_rate = drop_rate
        self.fc = linear_or_identity(self.num_features, num_classes)
        self.stage_map = {
            "stem": ("conv1", "bn1"), "stage1": ("layer1",), "stage2": ("layer2",), "stage3": ("layer3",),
            "head": ("fc",),
        }
        _init(self)
        if zero_init_residual:
            _zero_init_last_bn(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        return self.layer3(self.layer2(self.layer1(x)))


def _create_resnet(depth: int, **kwargs) -> ResNet:
    kind, layers = IMAGENET_DEPTHS[depth]
    return ResNet(BasicBlock if kind == "basic" else Bottleneck, layers, **kwargs)


_SMALL = SmallInput("option", {"small_input": True})


@register_model(family="ResNet", paper=RESNET, small_input=_SMALL, torchvision="resnet18")
def resnet18(**kwargs) -> ResNet:
    """ResNet-18: basic blocks 2-2-2-2."""
    return _create_resnet(18, **kwargs)


@register_model(family="ResNet", paper=RESNET, small_input=_SMALL, torchvision="resnet34")
def resnet34(**kwargs) -> ResNet:
    """ResNet-34: basic blocks 3-4-6-3."""
    return _create_resnet(34, **kwargs)


@register_model(family="ResNet", paper=RESNET, small_input=_SMALL, torchvision="resnet50")
def resnet50(**kwargs) -> ResNet:
    """ResNet-50: bottleneck blocks 3-4-6-3."""
    return _create_resnet(50, **kwargs)


@register_model(family="ResNet", paper=RESNET, small_input=_SMALL, torchvision="resnet101")
def resnet101(**kwargs) -> ResNet:
    """ResNet-101: bottleneck blocks 3-4-23-3."""
    return _create_resnet(101, **kwargs)


@register_model(family="ResNet", paper=RESNET, small_input=_SMALL, torchvision="resnet152")
def resnet152(**kwargs) -> ResNet:
    """ResNet-152: bottleneck blocks 3-8-36-3."""
    return _create_resnet(152, **kwargs)


@register_model(family="ResNet (CIFAR)", paper=RESNET, input_size=32)
def resnet20(**kwargs) -> CifarResNet:
    """CIFAR ResNet-20 (n=3), 0.27M parameters."""
    return CifarResNet(20, **kwargs)


@register_model(family="ResNet (CIFAR)", paper=RESNET, input_size=32)
def resnet32(**kwargs) -> CifarResNet:
    """CIFAR ResNet-32 (n=5), 0.46M parameters."""
    return CifarResNet(32, **kwargs)


@register_model(family="ResNet (CIFAR)", paper=RESNET, input_size=32)
def resnet44(**kwargs) -> CifarResNet:
    """CIFAR ResNet-44 (n=7), 0.66M parameters."""
    return CifarResNet(44, **kwargs)


@register_model(family="ResNet (CIFAR)", paper=RESNET, input_size=32)
def resnet56(**kwargs) -> CifarResNet:
    """CIFAR ResNet-56 (n=9), 0.85M parameters."""
    return CifarResNet(56, **kwargs)


@register_model(family="ResNet (CIFAR)", paper=RESNET, input_size=32)
def resnet110(**kwargs) -> CifarResNet:
    """CIFAR ResNet-110 (n=18), 1.7M parameters."""
    return CifarResNet(110, **kwargs)
