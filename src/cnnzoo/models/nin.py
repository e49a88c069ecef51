"""Network In Network: Lin, Chen, Yan, "Network In Network", ICLR 2014 (https://arxiv.org/abs/1312.4400).

Each "mlpconv" layer (section 3.1) slides a small MLP over the image: a k x k convolution followed by
two 1x1 convolutions, each with ReLU. The last mlpconv produces one feature map per class and
global average pooling of those maps gives the class scores (section 3.2): no fully connected layer.

* ``nin`` -- the CIFAR-10 network of section 4 and the authors' released model: three mlpconv layers
  192-160-96 (5x5), 192-192-192 (5x5), 192-192-classes (3x3), each of the first two followed by 3x3
  stride-2 max-pooling (section 4.1 says max-pooling after every mlpconv; the released model uses
  an average pool for the second) and dropout 0.5 ("applied on the outputs of all but the last
  mlpconv layers"). Native on 28 and 32 px.
* ``nin_imagenet`` -- the ImageNet model the authors released (not in the paper): mlpconv
  96-96-96 (11x11 stride 4), 256-256-256 (5x5), 384-384-384 (3x3), 1024-1024-classes (3x3), max-pooling
  after the first three and dropout only before the last, as in that model. Small images are
  resized to 224.

Pooling is ceil-mode, as in the authors' Caffe models (224 -> 54 -> 27 -> 13 -> 6; 32 -> 16 -> 8). The
class maps keep their ReLU, as in the released models. ``num_classes=0`` returns the global average
of the map entering the class-map convolution (the ``features`` output), and ``reset_classifier``
replaces that last 1x1 convolution. The paper gives no initialisation; Kaiming-normal is used (the
released models' hand-tuned Gaussian widths belong to their Caffe solvers).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import ConvBnAct
from ._spec import Paper, SmallInput, register_model
from ._base import ZooModel, init_weights_default, min_size_for

__all__ = ["NiN", "MlpConv"]

NIN = Paper("Network In Network", "Lin, Chen, Yan", 2014, "https://arxiv.org/abs/1312.4400")

# One row per mlpconv layer:
#   kernel, stride, padding, widths of the k x k conv and its two 1x1 convs (None: classes), pool after, dropout after
NIN_CIFAR = (
    (5, 1, 2, (192, 160, 96), True, True),  # 32 -> 16
    (5, 1, 2, (192, 192, 192), True, True),  # 16 -> 8
    (3, 1, 1, (192, 192, None), False, False),  # class maps, global average pool
)
NIN_IMAGENET = (
    (11, 4, 0, (96, 96, 96), True, False),  # 224 -> 54 -> 27
    (5, 1, 2, (256, 256, 256), True, False),  # 27 -> 13
    (3, 1, 1, (384, 384, 384), True, True),  # 13 -> 6
    (3, 1, 1, (1024, 1024, None), False, False),  # class maps, global average pool
)
POOL = (3, 2)  # 3x3 stride-2 max-pooling, ceil mode


class MlpConv(nn.Sequential):
    """A k x k convolution then 1x1 convolutions, each followed by ReLU (section 3.1).

    Children are ``ConvBnAct`` without norm (``0`` the convolution, ``1`` its ReLU).
    """

    def __init__(self, in_chs: int, widths: Sequence[int], kernel_size: int, stride: int = 1, padding: int = 0):
        layers: List[nn.Module] = []
        for i, out in enumerate(widths):
            k, s, p = (kernel_size, stride, padding) if i == 0 else (1, 1, 0)
            layers.append(ConvBnAct(in_chs, out, k, s, p, norm_layer=None, act_layer=nn.ReLU))
            in_chs = out
        super().__init__(*layers)


class NiN(ZooModel):
    """Network In Network from a table of mlpconv layers; the last one's final 1x1 conv is the classifier.

    Args:
        cfg: rows as in ``NIN_CIFAR``.
        num_classes: class maps; 0 gives the pooled features entering them.
        in_chans: input channels.
        drop_rate: dropout where the table asks for it (0.5 in the paper).
    """

    def __init__(
        self, cfg: Sequence[Tuple] = NIN_CIFAR, num_classes: int = 10, in_chans: int = 3, drop_rate: float = 0.5,
    ) -> None:
        super().__init__()
        self.num_classes, self.in_chans = num_classes, in_chans
        blocks: "OrderedDict[str, nn.Module]" = OrderedDict()
        sizes, stages, chs = [], {}, in_chans
        for i, (k, s, p, widths, pool, drop) in enumerate(cfg):
            name = f"block{i + 1}"
            last = i == len(cfg) - 1
            blocks[name] = MlpConv(chs, widths[:-1] if last else widths, k, s, p)
            sizes.append((k, s, p))
            stages[name] = (f"features.{name}",)
            if pool:
                blocks[f"pool{i + 1}"] = nn.MaxPool2d(*POOL, ceil_mode=True)
                sizes.append((*POOL, 0, 1, True))
            if drop:
                blocks[f"drop{i + 1}"] = nn.Dropout(drop_rate)
            chs = widths[-2] if last else widths[-1]
        self.features = nn.Sequential(blocks)
        self.num_features = chs
        self.classifier = self._class_maps(num_classes)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.min_input_size = min_size_for(sizes)
        self.stage_map = {**stages, "head": ("classifier",)}
        init_weights_default(self)

    def _class_maps(self, num_classes: int) -> nn.Module:
        return nn.Conv2d(self.num_features, num_classes, 1) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if not pre_logits:
            x = F.relu(self.classifier(x))  # a no-op on the (non-negative) features when num_classes=0
        return torch.flatten(self.global_pool(x), 1)

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.classifier = self._class_maps(num_classes)
        init_weights_default(self.classifier)


@register_model(family="NiN", paper=NIN, input_size=32)
def nin(**kwargs) -> NiN:
    """NiN for CIFAR-10: mlpconv 192-160-96, 192-192-192, 192-192-classes, global average pooling."""
    return NiN(**dict(dict(cfg=NIN_CIFAR), **kwargs))


@register_model(family="NiN", paper=NIN, input_size=224, small_input=SmallInput("resize", size=224))
def nin_imagenet(**kwargs) -> NiN:
    """NiN for ImageNet (the authors' released model): mlpconv 96, 256, 384, 1024-1024-classes."""
    return NiN(**dict(dict(cfg=NIN_IMAGENET), **kwargs))
