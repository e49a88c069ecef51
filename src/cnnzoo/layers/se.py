"""Squeeze-and-Excitation (Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018)."""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn


class SqueezeExcite(nn.Module):
    """Channel attention: global pool -> FC (C -> C/r) -> act -> FC (C/r -> C) -> gate -> scale.

    The two FC layers are 1 x 1 convolutions with bias (``fc1``, ``fc2``), as in torchvision's
    EfficientNet, so those weights load unchanged.

    Args:
        channels: channels of the feature map to re-weight.
        reduction: the paper's reduction ratio r (16 in SENet).
        squeeze_channels: the bottleneck width, overriding ``channels // reduction``.
    """

    def __init__(
        self,
        channels: int,
        reduction: int = 16,
        squeeze_channels: Optional[int] = None,
        act_layer: Callable[..., nn.Module] = nn.ReLU,
        gate_layer: Callable[..., nn.Module] = nn.Sigmoid,
    ) -> None:
        super().__init__()
        sq = squeeze_channels or max(1, channels // reduction)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, sq, 1)
        self.fc2 = nn.Conv2d(sq, channels, 1)
        self.activation = act_layer()
        self.scale_activation = gate_layer()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return x * s
