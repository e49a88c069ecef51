"""Darknet-53: Redmon, Farhadi, "YOLOv3: An Incremental Improvement", 2018.

https://arxiv.org/abs/1804.02767

The classification backbone of YOLOv3 (Table 1): a 3x3 convolution of 32 filters, then five stages, each
a 3x3 stride-2 convolution that doubles the width followed by residual units, and global average pooling
with a 1000-way FC layer. A residual unit is a 1x1 convolution halving the channels and a 3x3 convolution
restoring them, added to the input. Every convolution is followed by BN and a leaky ReLU of slope 0.1
(Darknet's ``leaky``); the sums are not activated (``[shortcut] activation=linear`` in ``darknet53.cfg``).
52 convolutions and the FC layer make the 53 layers; 41,609,928 parameters for 1000 classes, as timm's
``darknet53`` (41.6M).

Decisions:

* The FC layer is a ``Linear`` after the pool; ``darknet53.cfg`` writes it as a 1x1 convolution with bias on
  the pooled 1x1 map, the same weights. Table 1's softmax is left to the loss.
* The leaky ReLU's slope is the paper's 0.1; timm's ``darknet53`` uses PyTorch's default 0.01.
* The registered input is 256 px, the size Table 2 tests the backbones at; the network is fully
  convolutional up to the pool.
* Small images (``small_input=True``): the first two stride-2 convolutions get stride 1, so the total stride
  is 8 instead of 32 and a 32 px image reaches the five stages as 32-32-16-8-4 px maps (28 px: 28-28-14-7-4)
  instead of 16-8-4-2-1, as ``resnet.py``'s small-input option leaves its last stage 4x4. No weight changes
  shape.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable, Tuple

import torch
from torch import nn

from ..layers import ConvBnAct
from ._spec import Paper, SmallInput, register_model
from ._base import PooledFcModel, init_weights_default, linear_or_identity

__all__ = ["Darknet", "DarkBlock", "DarkStage", "DARKNET53"]

YOLOV3 = Paper("YOLOv3: An Incremental Improvement", "Redmon, Farhadi", 2018, "https://arxiv.org/abs/1804.02767")

STEM_WIDTH = 32  # Table 1, first row: 32 filters 3x3
# Table 1, one row per stage: (filters of the 3x3/2 convolution opening it, residual units). Output size at 256 px.
DARKNET53: Tuple[Tuple[int, int], ...] = (
    (64, 1),  # 128x128
    (128, 2),  # 64x64
    (256, 8),  # 32x32
    (512, 8),  # 16x16
    (1024, 4),  # 8x8
)
LEAKY_SLOPE = 0.1  # Darknet's "leaky" activation
SMALL_INPUT_STRIDE1 = 2  # with small_input, the first two downsampling convolutions keep the resolution


class DarkBlock(nn.Module):
    """Residual unit: 1x1 convolution to half the channels, 3x3 back to all of them, plus the input (not activated)."""

    def __init__(self, chs: int, act_layer: Callable[..., nn.Module]) -> None:
        super().__init__()
        self.conv1 = ConvBnAct(chs, chs // 2, 1, act_layer=act_layer)
        self.conv2 = ConvBnAct(chs // 2, chs, 3, act_layer=act_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.conv1(x))


class DarkStage(nn.Sequential):
    """One row of :data:`DARKNET53`: a 3x3 downsampling convolution (``conv_down``), then the units (``blocks``)."""

    def __init__(self, in_chs: int, out_chs: int, depth: int, stride: int, act_layer: Callable[..., nn.Module]) -> None:
        super().__init__()
        self.conv_down = ConvBnAct(in_chs, out_chs, 3, stride, act_layer=act_layer)
        self.blocks = nn.Sequential(*(DarkBlock(out_chs, act_layer) for _ in range(depth)))


class Darknet(PooledFcModel):
    """Darknet classification backbone: stem, :class:`DarkStage` per row of ``stages``, global pool, FC.

    Args:
        stages: (width, residual units) per stage, as :data:`DARKNET53`.
        small_input: for 28-32 px images: the first two downsampling convolutions get stride 1 (total stride 8).
        drop_rate: dropout before the classifier.
    """

    def __init__(
        self, stages: Tuple[Tuple[int, int], ...] = DARKNET53, num_classes: int = 1000, in_chans: int = 3,
        small_input: bool = False, drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.num_classes, self.in_chans, self.small_input = num_classes, in_chans, small_input
        act_layer = partial(nn.LeakyReLU, LEAKY_SLOPE)
        strides = [1 if small_input and i < SMALL_INPUT_STRIDE1 else 2 for i in range(len(stages))]
        # Every layer is "same"-padded: the total stride is the smallest input that reaches the last stage as
        # more than padding.
        self.min_input_size = math.prod(strides)

        self.stem = ConvBnAct(in_chans, STEM_WIDTH, 3, act_layer=act_layer)
        chs = STEM_WIDTH
        self.stages = nn.Sequential()
        for (width, depth), stride in zip(stages, strides):
            self.stages.append(DarkStage(chs, width, depth, stride, act_layer))
            chs = width
        self.num_features = chs
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.drop_rate = drop_rate
        self.fc = linear_or_identity(chs, num_classes)
        self.stage_map = {"stem": ("stem",), **{f"stage{i + 1}": (f"stages.{i}",) for i in range(len(stages))},
                          "head": ("fc",)}
        init_weights_default(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))


_SMALL = SmallInput("option", {"small_input": True})


@register_model(family="Darknet", paper=YOLOV3, input_size=256, small_input=_SMALL)
def darknet53(**kwargs) -> Darknet:
    """Darknet-53: the YOLOv3 backbone, residual units 1-2-8-8-4, 41.61M parameters."""
    return Darknet(DARKNET53, **kwargs)
