"""Blocks shared by the Inception family files (``googlenet.py``, ``inception.py``).

Import from this module directly: ``from ..layers.inception import BasicConv2d``.
"""

from __future__ import annotations

from typing import Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BasicConv2d"]

_Size = Union[int, Tuple[int, int]]


class BasicConv2d(nn.Module):
    """Bias-free convolution -> BatchNorm -> ReLU, with children named ``conv`` and ``bn``.

    The names and the BatchNorm epsilon of 0.001 are those of torchvision's GoogLeNet and
    Inception-v3 (inherited from the TF-slim checkpoints), so their state dicts load unchanged.
    The ReLU is functional, as there, so it adds no key.
    """

    def __init__(
        self, in_chs: int, out_chs: int, kernel_size: _Size = 1, stride: _Size = 1, padding: _Size = 0,
        eps: float = 0.001,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_chs, eps=eps)
        self.out_channels = out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


def tf_input_from_imagenet(x: torch.Tensor) -> torch.Tensor:
    """Map ImageNet-mean/std-normalised RGB to the [-1, 1] range the TF-ported Inception weights expect."""
    mean = x.new_tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = x.new_tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (x * std + mean - 0.5) / 0.5
