"""ResNet: He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016.

ImageNet ResNets (Table 1 of the paper) and the CIFAR ResNets of section 4.2 (6n+2 layers,
16-32-64 filters, parameter-free "option A" shortcuts). The ImageNet models put the stride of a
bottleneck on its 3x3 convolution ("ResNet v1.5", as torchvision and every modern reference do;
the parameter count is the paper's either way) and keep torchvision's module names, so its
weights load unchanged.

Squeeze-and-Excitation (``se_reduction=16``) is an option of every block here; ``senet.py``
registers the SE-ResNets with it. As in torchvision, the bottleneck also takes ``groups`` (the
cardinality of a grouped 3x3 convolution) and ``width_per_group`` (its width per group, 64 in a
ResNet), and the stage widths and count are arguments: ``resnext.py`` and ``wide_resnet.py`` build
ResNeXt and Wide ResNet-50/101 from this one :class:`ResNet`.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Type

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
        se_reduction: Optional[int] = None, drop_path: float = 0.0, groups: int = 1, base_width: int = 64,
    ) -> None:
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError(f"BasicBlock takes only groups=1 and width_per_group=64, got {groups} and {base_width}")
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
    """1x1 reduce -> 3x3 -> 1x1 expand (x4), the deeper nets' block.

    The inner width is ``planes * base_width / 64 * groups``: ``planes`` in a ResNet, ``C x d`` for a
    ResNeXt of cardinality ``C = groups`` and ``d = base_width * planes / 64`` (Xie et al., Fig. 3c),
    ``k x planes`` in a Wide ResNet (``base_width = 64k``).
    """

    expansion = 4

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: Optional[nn.Module] = None,
        se_reduction: Optional[int] = None, drop_path: float = 0.0, groups: int = 1, base_width: int = 64,
    ) -> None:
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        out = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out, 1, bias=False)
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
    """ImageNet ResNet, and the ResNeXts and Wide ResNets built from it.

    Args:
        block: ``BasicBlock`` or ``Bottleneck``.
        layers: blocks per stage.
        small_input: for 28-32 px images: a 3x3 stride-1 first convolution and no max-pool
            (the CIFAR stem), so the four stages see 32-16-8-4 maps instead of 8-4-2-1.
        se_reduction: add a Squeeze-and-Excitation block with this ratio to every block.
        groups: cardinality of every bottleneck's 3x3 convolution (ResNeXt's C; 1 in a ResNet).
        width_per_group: a bottleneck's 3x3 width per group at 64 planes (ResNeXt's d, 64k in a
            Wide ResNet of widening factor k); the first stage's inner width is ``groups * width_per_group``.
        stage_widths: ``planes`` of each stage (a basic block's width, a bottleneck's output / 4), one per
            entry of ``layers``; the first stage keeps the resolution, every later one halves it.
        drop_rate: dropout before the classifier.
        drop_path_rate: stochastic depth, rising linearly to this rate over the blocks.
        zero_init_residual: start every block's last BatchNorm at zero.
    """

    def __init__(
        self, block: Type[nn.Module], layers: Sequence[int], num_classes: int = 1000, in_chans: int = 3,
        small_input: bool = False, se_reduction: Optional[int] = None, drop_rate: float = 0.0,
        drop_path_rate: float = 0.0, zero_init_residual: bool = False, groups: int = 1, width_per_group: int = 64,
        stage_widths: Sequence[int] = STAGE_WIDTHS,
    ) -> None:
        super().__init__()
        if len(stage_widths) != len(layers):
            raise ValueError(f"stage_widths {tuple(stage_widths)} and layers {tuple(layers)} differ in length")
        self.num_classes, self.in_chans, self.small_input = num_classes, in_chans, small_input
        if small_input:
            self.conv1 = nn.Conv2d(in_chans, 64, 3, 1, 1, bias=False)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(in_chans, 64, 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        # The total stride (stem x one halving per later stage): smaller inputs reach the last stage as padding only.
        self.min_input_size = (1 if small_input else 4) * 2 ** (len(layers) - 1)

        block_args = dict(se_reduction=se_reduction, groups=groups, base_width=width_per_group)
        total, done = sum(layers), 0
        self.inplanes = 64
        self.layer_names = tuple(f"layer{i + 1}" for i in range(len(layers)))
        for i, (planes, n) in enumerate(zip(stage_widths, layers)):
            rates = [drop_path_rate * (done + j) / max(total - 1, 1) for j in range(n)]
            done += n
            setattr(self, self.layer_names[i], self._make_layer(block, planes, 1 if i == 0 else 2, rates, block_args))
        self.num_features = stage_widths[-1] * block.expansion
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.drop_rate = drop_rate
        self.fc = linear_or_identity(self.num_features, num_classes)
        self.stage_map = {"stem": ("conv1", "bn1")}
        self.stage_map.update({f"stage{i + 1}": (name,) for i, name in enumerate(self.layer_names)})
        self.stage_map["head"] = ("fc",)
        _init(self)
        if zero_init_residual:
            _zero_init_last_bn(self)

    def _make_layer(self, block: Type[nn.Module], planes: int, stride: int, rates: Sequence[float],
                    block_args: Dict[str, Any]) -> nn.Sequential:
        """One stage: ``len(rates)`` blocks (``rates``: their drop-path rates), the first with the stride."""
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, downsample, drop_path=rates[0], **block_args)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, 1, None, drop_path=r, **block_args) for r in rates[1:]]
        return nn.Sequential(*layers)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for name in self.layer_names:
            x = getattr(self, name)(x)
        return x


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
