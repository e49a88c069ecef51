"""DenseNet: Huang, Liu, van der Maaten, Weinberger, "Densely Connected Convolutional Networks", CVPR 2017.

https://arxiv.org/abs/1608.06993

Inside a dense block every layer receives the concatenation of all earlier feature maps of the
block and adds ``k`` (the *growth rate*) maps of its own. All models here are the paper's
DenseNet-BC: each layer is a *bottleneck* BN-ReLU-Conv1x1(``bn_size * k``)-BN-ReLU-Conv3x3(``k``)
("B"), and each transition layer between blocks, BN-ReLU-Conv1x1-AvgPool2x2, *compresses* the
channels by ``compression = 0.5`` ("C"). A final BN-ReLU, global average pooling and one FC layer
close the network.

* ImageNet (Table 1): a 7x7/2 convolution with ``2k`` = 64 filters and a 3x3/2 max-pool, then four
  dense blocks. Module names are torchvision's (``features.conv0``, ``features.denseblock1.denselayer1.
  conv1``, ``features.transition1.conv``, ``features.norm5``, ``classifier``), so its weights load
  unchanged and the outputs match.
* CIFAR (section 4, ``densenet_bc_100_12``): a bare 3x3 convolution with ``2k`` filters (no BN-ReLU:
  the first dense layer starts with its own, as in the authors' code) and three dense blocks of equal
  size on 32x32, 16x16 and 8x8 maps. 769,162 parameters for 10 classes and 800,032 for 100 (the
  paper's "0.8M").

Small images (``small_input=True`` on the ImageNet models): the stem convolution becomes a 3x3
stride-1 one (still ``2k`` = 64 filters, still followed by BN-ReLU) and the max-pool is dropped, so
the total stride is 8 instead of 32 and the four blocks see 32-16-8-4 px maps for a 32x32 image
(28-14-7-3 for 28x28). Every weight but ``features.conv0`` keeps its torchvision shape.
"""

from __future__ import annotations

import math
from typing import Dict, List, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._spec import Paper, SmallInput, register_model
from ._base import ZooModel, linear_or_identity, min_size_for

__all__ = ["DenseNet", "DenseLayer", "DenseBlock", "Transition", "CONFIGS", "cifar_block_config"]

DENSENET = Paper(
    "Densely Connected Convolutional Networks",
    "Huang, Liu, van der Maaten, Weinberger", 2017, "https://arxiv.org/abs/1608.06993",
)


class DenseConfig(NamedTuple):
    """One DenseNet-BC variant."""

    growth_rate: int  # k: feature maps each dense layer adds
    block_config: tuple  # dense layers per block
    num_init_features: int  # width of the stem convolution (2k in the paper)
    small_input: bool  # True: the CIFAR 3x3 stride-1 stem with no max-pool
    stem_norm: bool  # BN-ReLU after the stem convolution (ImageNet only; on CIFAR the first dense layer's BN follows)


BN_SIZE = 4  # the bottleneck 1x1 convolution produces 4k maps (section 3, "Bottleneck layers")
COMPRESSION = 0.5  # theta: a transition keeps floor(theta * m) of its m input maps (section 3, "Compression")


def cifar_block_config(depth: int, blocks: int = 3) -> tuple:
    """Layers per block of a CIFAR DenseNet-BC of depth L: ``(L - 4) / 6`` each.

    L counts the stem convolution, the two convolutions of every bottleneck layer, the transition
    convolutions between the three blocks and the FC layer: ``1 + 3 * 2n + 2 + 1 = 6n + 4``.
    """
    if (depth - 4) % 6:
        raise ValueError(f"a CIFAR DenseNet-BC has depth 6n+4 (e.g. 100, 190, 250), got {depth}")
    return ((depth - 4) // 6,) * blocks


# Table 1 (ImageNet, the comments give the output size of each block for a 224x224 input) and Table 2 (CIFAR).
CONFIGS: Dict[str, DenseConfig] = {
    #                          k   layers per block (56, 28, 14, 7 px)  stem  CIFAR stem  stem BN-ReLU
    "densenet121": DenseConfig(32, (6, 12, 24, 16), 64, False, True),
    "densenet169": DenseConfig(32, (6, 12, 32, 32), 64, False, True),
    "densenet201": DenseConfig(32, (6, 12, 48, 32), 64, False, True),
    #                                 k   layers per block (32, 16, 8 px)   stem  CIFAR stem  stem BN-ReLU
    "densenet_bc_100_12": DenseConfig(12, cifar_block_config(100), 24, True, False),
}


class DenseLayer(nn.Module):
    """Bottleneck dense layer: BN-ReLU-Conv1x1(bn_size*k) -> BN-ReLU-Conv3x3(k) on all earlier maps.

    Pre-activation order (BN-ReLU-Conv) as in the paper, so the concatenated inputs are normalised
    by each consumer separately.
    """

    def __init__(self, in_chs: int, growth_rate: int, bn_size: int = BN_SIZE, drop_rate: float = 0.0) -> None:
        super().__init__()
        mid = bn_size * growth_rate
        self.norm1 = nn.BatchNorm2d(in_chs)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_chs, mid, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(mid)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(mid, growth_rate, 3, padding=1, bias=False)
        self.drop_rate = float(drop_rate)

    def forward(self, features: List[torch.Tensor]) -> torch.Tensor:
        x = self.conv1(self.relu1(self.norm1(torch.cat(features, 1))))
        x = self.conv2(self.relu2(self.norm2(x)))
        if self.drop_rate > 0:
            # Section 4.2: dropout after each convolution when training without data augmentation.
            x = F.dropout(x, self.drop_rate, self.training)
        return x


class DenseBlock(nn.ModuleDict):
    """``num_layers`` dense layers; the output is the input concatenated with every layer's ``k`` maps."""

    def __init__(self, num_layers: int, in_chs: int, growth_rate: int, bn_size: int = BN_SIZE,
                 drop_rate: float = 0.0) -> None:
        super().__init__()
        for i in range(num_layers):
            self.add_module(f"denselayer{i + 1}", DenseLayer(in_chs + i * growth_rate, growth_rate, bn_size, drop_rate))
        self.out_channels = in_chs + num_layers * growth_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """Between blocks: BN-ReLU-Conv1x1 (compressing the channels) then 2x2 average pooling."""

    def __init__(self, in_chs: int, out_chs: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_chs)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(in_chs, out_chs, 1, bias=False)
        self.pool = nn.AvgPool2d(2, 2)


class DenseNet(ZooModel):
    """DenseNet-BC.

    Args:
        growth_rate: k, the maps each dense layer adds.
        block_config: dense layers per block (4 blocks on ImageNet, 3 on CIFAR).
        num_init_features: width of the stem convolution (2k in the paper).
        bn_size: the bottleneck width as a multiple of k.
        compression: the transitions' theta (0.5 for DenseNet-BC).
        drop_rate: dropout after every dense layer (the paper's 0.2 for C10/C100 without augmentation).
        small_input: the CIFAR stem (3x3 stride-1 convolution, no max-pool) instead of the ImageNet
            one (7x7 stride-2 convolution, 3x3 stride-2 max-pool).
        stem_norm: BN-ReLU after the stem convolution. The ImageNet models have it; the paper's CIFAR
            models do not (the reference code's stem is a bare convolution, as every dense layer
            begins with its own BN-ReLU).
    """

    def __init__(
        self, growth_rate: int = 32, block_config: Sequence[int] = (6, 12, 24, 16), num_init_features: int = 64,
        num_classes: int = 1000, in_chans: int = 3, bn_size: int = BN_SIZE, compression: float = COMPRESSION,
        drop_rate: float = 0.0, small_input: bool = False, stem_norm: bool = True,
    ) -> None:
        super().__init__()
        if not 0.0 < compression <= 1.0:
            raise ValueError(f"compression must be in (0, 1], got {compression}")
        self.num_classes, self.in_chans, self.small_input = num_classes, in_chans, small_input
        self.growth_rate, self.block_config = growth_rate, tuple(block_config)

        self.features = nn.Sequential()
        if small_input:
            self.features.add_module("conv0", nn.Conv2d(in_chans, num_init_features, 3, 1, 1, bias=False))
            stem_layers = [(3, 1, 1)]
        else:
            self.features.add_module("conv0", nn.Conv2d(in_chans, num_init_features, 7, 2, 3, bias=False))
            stem_layers = [(7, 2, 3), (3, 2, 1)]
        if stem_norm:
            self.features.add_module("norm0", nn.BatchNorm2d(num_init_features))
            self.features.add_module("relu0", nn.ReLU(inplace=True))
        if not small_input:
            self.features.add_module("pool0", nn.MaxPool2d(3, 2, 1))

        self.stage_map = {"stem": ("features.conv0", "features.norm0") if stem_norm else ("features.conv0",)}
        chs, n_blocks = num_init_features, len(self.block_config)
        for i, num_layers in enumerate(self.block_config, start=1):
            block = DenseBlock(num_layers, chs, growth_rate, bn_size, drop_rate)
            self.features.add_module(f"denseblock{i}", block)
            chs = block.out_channels
            if i < n_blocks:
                out = int(math.floor(chs * compression))
                self.features.add_module(f"transition{i}", Transition(chs, out))
                chs = out
                self.stage_map[f"block{i}"] = (f"features.denseblock{i}", f"features.transition{i}")
        # The final BN of the pre-activation stack; its ReLU is applied in forward_features (torchvision's layout).
        self.features.add_module(f"norm{n_blocks + 1}", nn.BatchNorm2d(chs))
        self.stage_map[f"block{n_blocks}"] = (f"features.denseblock{n_blocks}", f"features.norm{n_blocks + 1}")

        # The transitions' 2x2 average pools do not pad: the smallest input is the one that still leaves
        # a 1x1 map after the last of them (29 px on ImageNet, 8 with small_input, 4 for the 3-block CIFAR net).
        self.min_input_size = min_size_for(stem_layers + [(2, 2, 0)] * (n_blocks - 1))
        self.num_features = chs
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = linear_or_identity(chs, num_classes)
        self.stage_map["head"] = ("classifier",)
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's init: He-normal convolutions (fan-in), unit BN, zero classifier bias.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.features(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)
        return x if pre_logits else self.classifier(x)

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.classifier = linear_or_identity(self.num_features, num_classes)


def _create_densenet(variant: str, **kwargs) -> DenseNet:
    c = CONFIGS[variant]
    defaults = dict(growth_rate=c.growth_rate, block_config=c.block_config, num_init_features=c.num_init_features,
                    small_input=c.small_input, stem_norm=c.stem_norm)
    return DenseNet(**dict(defaults, **kwargs))


_SMALL = SmallInput("option", {"small_input": True})


@register_model(family="DenseNet", paper=DENSENET, small_input=_SMALL, torchvision="densenet121")
def densenet121(**kwargs) -> DenseNet:
    """DenseNet-121 (k=32, blocks 6-12-24-16), 7.98M parameters."""
    return _create_densenet("densenet121", **kwargs)


@register_model(family="DenseNet", paper=DENSENET, small_input=_SMALL, torchvision="densenet169")
def densenet169(**kwargs) -> DenseNet:
    """DenseNet-169 (k=32, blocks 6-12-32-32), 14.15M parameters."""
    return _create_densenet("densenet169", **kwargs)


@register_model(family="DenseNet", paper=DENSENET, small_input=_SMALL, torchvision="densenet201")
def densenet201(**kwargs) -> DenseNet:
    """DenseNet-201 (k=32, blocks 6-12-48-32), 20.01M parameters."""
    return _create_densenet("densenet201", **kwargs)


@register_model(family="DenseNet (CIFAR)", paper=DENSENET, input_size=32)
def densenet_bc_100_12(**kwargs) -> DenseNet:
    """CIFAR DenseNet-BC (L=100, k=12): three blocks of 16 bottleneck layers, 0.8M parameters."""
    return _create_densenet("densenet_bc_100_12", **kwargs)
