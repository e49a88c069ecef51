"""The small five-layer ConvNets of the PyTorch case study, taught before the classic architectures.

* ``simple_convnet`` -- the "Basic ConvNet": three 3x3 convolution + ReLU layers (32-64-128 filters,
  2x2 max-pooling after the first two) and two fully connected layers. It is the LeNet recipe of
  LeCun, Bottou, Bengio, Haffner, "Gradient-Based Learning Applied to Document Recognition", 1998
  (https://doi.org/10.1109/5.726791) -- local receptive fields, shared weights, subsampling, then
  fully connected layers -- with ReLU, max-pooling and dropout.
* ``bn_convnet`` -- the same network with Batch Normalization after every convolution: Ioffe, Szegedy,
  "Batch Normalization: Accelerating Deep Network Training by Reducing Internal Covariate Shift", 2015
  (https://arxiv.org/abs/1502.03167). It trains faster and tolerates larger learning rates.

The third convolution ends in global average pooling instead of a third max-pool + flatten, so the
same weights take 28x28 grey and 32x32 colour images (and any size from 4 px) natively.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import ConvBnAct
from ._spec import Paper, register_model
from ._base import ZooModel, linear_or_identity

__all__ = ["SimpleConvNet"]

LENET = Paper(
    "Gradient-Based Learning Applied to Document Recognition",
    "LeCun, Bottou, Bengio, Haffner", 1998, "https://doi.org/10.1109/5.726791",
)
BATCHNORM = Paper(
    "Batch Normalization: Accelerating Deep Network Training by Reducing Internal Covariate Shift",
    "Ioffe, Szegedy", 2015, "https://arxiv.org/abs/1502.03167",
)

# out channels, max-pool 2x2 after it -- every convolution is 3x3, stride 1, padding 1
CONVS = (
    (32, True),
    (64, True),
    (128, False),  # followed by global average pooling
)
HIDDEN = 256  # the first fully connected layer


class SimpleConvNet(ZooModel):
    """Three conv layers and two fully connected layers.

    Args:
        num_classes: outputs; 0 gives the ``HIDDEN``-wide features of the first FC layer.
        in_chans: input channels.
        norm_layer: ``nn.BatchNorm2d`` after every convolution (``bn_convnet``) or ``None``.
        drop_rate: dropout before the last layer.
    """

    def __init__(
        self, num_classes: int = 10, in_chans: int = 3,
        norm_layer: Optional[Callable[..., nn.Module]] = None, drop_rate: float = 0.5,
    ) -> None:
        super().__init__()
        self.num_classes, self.in_chans, self.drop_rate = num_classes, in_chans, drop_rate
        chs = in_chans
        self.pooled = []
        for i, (out, pool) in enumerate(CONVS):
            # ConvBnAct gives the convolution a bias only when there is no norm layer after it.
            setattr(self, f"conv{i + 1}", ConvBnAct(chs, out, 3, norm_layer=norm_layer, act_layer=nn.ReLU))
            self.pooled.append(pool)
            chs = out
        self.pool = nn.MaxPool2d(2, 2)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(chs, HIDDEN)
        self.num_features = HIDDEN
        self.fc = linear_or_identity(self.num_features, num_classes)
        self.min_input_size = 2 ** sum(p for _, p in CONVS)  # the total stride of the max-pools
        self.stage_map = {f"conv{i + 1}": (f"conv{i + 1}",) for i in range(len(CONVS))}
        self.stage_map.update({"fc": ("fc1",), "head": ("fc",)})
        # PyTorch's default initialisation, as in the case study.

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for i, pool in enumerate(self.pooled):
            x = getattr(self, f"conv{i + 1}")(x)
            if pool:
                x = self.pool(x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = F.relu(self.fc1(torch.flatten(self.global_pool(x), 1)))
        if pre_logits:
            return x
        return self.fc(F.dropout(x, self.drop_rate, self.training))

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.fc = linear_or_identity(self.num_features, num_classes)


@register_model(family="Basic ConvNet", paper=LENET, input_size=32)
def simple_convnet(**kwargs) -> SimpleConvNet:
    """Basic ConvNet: conv 32-64-128 (ReLU, max-pool), global average pool, FC 256, FC classes."""
    return SimpleConvNet(**kwargs)


@register_model(family="Basic ConvNet", paper=BATCHNORM, input_size=32)
def bn_convnet(**kwargs) -> SimpleConvNet:
    """BatchNorm + ConvNet: the Basic ConvNet with BatchNorm after every convolution."""
    return SimpleConvNet(**dict(dict(norm_layer=nn.BatchNorm2d), **kwargs))
