"""AlexNet: Krizhevsky, Sutskever, Hinton, "ImageNet Classification with Deep Convolutional Neural Networks",
NIPS 2012 (https://proceedings.neurips.cc/paper/2012/hash/c399862d3b9d6b76c8436e924a68c45b-Abstract.html).

* ``alexnet`` -- the paper (section 3, Figure 2): five convolutions 96-256-384-384-256 (11x11 stride 4,
  5x5, 3x3, 3x3, 3x3), ReLU everywhere, local response normalisation after conv1 and conv2,
  overlapping 3x3 stride-2 max-pooling after both normalisations and after conv5, then FC 4096 -
  4096 - classes with dropout 0.5 on the outputs of the two hidden FC layers, and the paper's init
  (section 5). ``groups=2`` gives the two-GPU network: conv2, conv4 and conv5 only see the maps of
  their own tower and each tower normalises its own maps (60,965,224 parameters; one tower:
  62,378,344).
* ``alexnet_owt`` -- torchvision's ``alexnet``: the single-tower widths 64-192-384-256-256 of
  Krizhevsky's "One weird trick for parallelizing convolutional neural networks" (2014), no LRN,
  dropout before the hidden FC layers, with torchvision's module names (61,100,840 parameters).

The 224/227 quirk: the paper says 224x224 inputs, but an 11x11 stride-4 unpadded convolution gives
its 55x55 conv1 maps only from 227x227 ((227 - 11) / 4 + 1 = 55), the crop Caffe's reference model
uses; ``alexnet`` therefore defaults to 227 with no padding, while ``alexnet_owt`` pads conv1 by 2 and
takes 224 as torchvision does. Both end in an adaptive 6x6 average pool (torchvision's), the identity
at the default size, so other sizes down to ``min_input_size`` work too. Small images are resized to
the default size.

ZFNet (``zfnet.py``) is this class with its own layer table.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ._spec import Paper, SmallInput, register_model
from ._base import SequentialHeadModel, linear_or_identity, min_size_for

__all__ = ["AlexNet", "GroupedLRN"]

ALEXNET = Paper(
    "ImageNet Classification with Deep Convolutional Neural Networks",
    "Krizhevsky, Sutskever, Hinton", 2012,
    "https://proceedings.neurips.cc/paper/2012/hash/c399862d3b9d6b76c8436e924a68c45b-Abstract.html",
)
OWT = Paper(
    "One weird trick for parallelizing convolutional neural networks",
    "Krizhevsky", 2014, "https://arxiv.org/abs/1404.5997",
)

# One row per convolution:
#   out channels, kernel, stride, padding, split across the two GPU towers, initial bias, what follows its ReLU
ALEXNET_CFG = (
    (96, 11, 4, 0, False, 0.0, ("lrn", "pool")),  # 227 -> 55 -> 27
    (256, 5, 1, 2, True, 1.0, ("lrn", "pool")),  # 27 -> 13
    (384, 3, 1, 1, False, 0.0, ()),  # conv3 reads the maps of both towers
    (384, 3, 1, 1, True, 1.0, ()),
    (256, 3, 1, 1, True, 1.0, ("pool",)),  # 13 -> 6
)
OWT_CFG = (
    (64, 11, 4, 2, False, 0.0, ("pool",)),  # 224 -> 55 -> 27
    (192, 5, 1, 2, False, 0.0, ("pool",)),  # 27 -> 13
    (384, 3, 1, 1, False, 0.0, ()),
    (256, 3, 1, 1, False, 0.0, ()),
    (256, 3, 1, 1, False, 0.0, ("pool",)),  # 13 -> 6
)
# Section 3.3: b = a / (k + alpha * sum of a^2 over n adjacent maps)^beta.
LRN = dict(size=5, alpha=1e-4, beta=0.75, k=2.0)
POOL = (3, 2)  # section 3.4: overlapping pooling, z = 3, s = 2
FC_WIDTH = 4096
POOL_SIZE = 6  # the 6x6 maps entering FC6
WEIGHT_STD = 0.01  # section 5: weights from N(0, 0.01^2)
FC_BIAS = 1.0  # section 5: biases of the hidden FC layers start at 1 (so ReLUs start with positive inputs)


class GroupedLRN(nn.Module):
    """Local response normalisation with the paper's constants, applied within each GPU tower.

    PyTorch's ``LocalResponseNorm`` divides alpha by n; the paper does not, so alpha x n is passed.
    """

    def __init__(self, size: int, alpha: float, beta: float, k: float, groups: int = 1) -> None:
        super().__init__()
        self.groups = groups
        self.lrn = nn.LocalResponseNorm(size, alpha=alpha * size, beta=beta, k=k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.groups == 1:
            return self.lrn(x)
        return torch.cat([self.lrn(t) for t in x.chunk(self.groups, 1)], 1)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


class AlexNet(SequentialHeadModel):
    """AlexNet-style network built from a layer table: convolutions, then FC - FC - classes.

    Args:
        cfg: one row per convolution (see ``ALEXNET_CFG``).
        num_classes: outputs; 0 gives the 4096 features of FC7.
        in_chans: input channels.
        groups: 2 for the paper's two-GPU split of the rows marked as split.
        lrn: constants of the ``"lrn"`` entries.
        ceil_pool: Caffe's ceil-mode pooling (ZFNet's map sizes need it).
        dropout_first: dropout before each hidden FC layer (torchvision) instead of on its output (the paper).
        drop_rate: dropout probability.
        weight_std: initialise every weight from N(0, std^2) with the table's biases and ``fc_bias``
            (the paper); ``None`` keeps PyTorch's defaults (torchvision).
        fc_bias: initial bias of the hidden FC layers.
    """

    def __init__(
        self, cfg: Sequence[Tuple] = ALEXNET_CFG, num_classes: int = 1000, in_chans: int = 3, groups: int = 1,
        lrn: Optional[Dict[str, float]] = None, ceil_pool: bool = False, dropout_first: bool = False,
        drop_rate: float = 0.5, weight_std: Optional[float] = WEIGHT_STD, fc_bias: float = FC_BIAS,
    ) -> None:
        super().__init__()
        self.num_classes, self.in_chans, self.groups = num_classes, in_chans, groups
        lrn = lrn or LRN
        layers, stages, sizes, biases = [], {}, [], []
        chs = in_chans
        for i, (out, k, s, p, split, bias, after) in enumerate(cfg):
            start = len(layers)
            layers += [nn.Conv2d(chs, out, k, s, p, groups=groups if split else 1), nn.ReLU(inplace=True)]
            sizes.append((k, s, p))
            biases.append(bias)
            for op in after:
                if op == "lrn":
                    layers.append(GroupedLRN(**lrn, groups=groups))
                else:
                    layers.append(nn.MaxPool2d(*POOL, ceil_mode=ceil_pool))
                    sizes.append((*POOL, 0, 1, ceil_pool))
            stages[f"conv{i + 1}"] = tuple(f"features.{j}" for j in range(start, len(layers)))
            chs = out
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((POOL_SIZE, POOL_SIZE))
        self.num_features = FC_WIDTH
        fc6, fc7 = nn.Linear(chs * POOL_SIZE * POOL_SIZE, FC_WIDTH), nn.Linear(FC_WIDTH, FC_WIDTH)
        hidden: List[nn.Module] = []
        for fc in (fc6, fc7):
            # The paper drops FC6/FC7's outputs; torchvision (after "one weird trick") drops their inputs.
            act, drop = nn.ReLU(inplace=True), nn.Dropout(drop_rate)
            hidden += [drop, fc, act] if dropout_first else [fc, act, drop]
        self.classifier = nn.Sequential(*hidden, linear_or_identity(FC_WIDTH, num_classes))
        fcs = tuple(f"classifier.{j}" for j, m in enumerate(hidden) if isinstance(m, nn.Linear))
        self.stage_map = {**stages, "fc": fcs, "head": ("classifier.6",)}
        self.min_input_size = min_size_for(sizes)
        self.weight_std = weight_std
        if weight_std is not None:
            convs = [m for m in self.features if isinstance(m, nn.Conv2d)]
            for conv, bias in zip(convs, biases):
                nn.init.normal_(conv.weight, 0, weight_std)
                nn.init.constant_(conv.bias, bias)
            for fc in (fc6, fc7):
                nn.init.normal_(fc.weight, 0, weight_std)
                nn.init.constant_(fc.bias, fc_bias)
            if isinstance(self.classifier[-1], nn.Linear):
                self.init_classifier(self.classifier[-1])

    def init_classifier(self, layer: nn.Linear) -> None:
        if self.weight_std is not None:  # the paper's N(0, 0.01), zero bias
            nn.init.normal_(layer.weight, 0, self.weight_std)
            nn.init.zeros_(layer.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


@register_model(family="AlexNet", paper=ALEXNET, input_size=227, small_input=SmallInput("resize", size=227))
def alexnet(**kwargs) -> AlexNet:
    """AlexNet as in the paper: 96-256-384-384-256, LRN, overlapping pooling; groups=2 for the two towers."""
    return AlexNet(**dict(dict(cfg=ALEXNET_CFG), **kwargs))


@register_model(
    family="AlexNet", paper=OWT, input_size=224, small_input=SmallInput("resize", size=224), torchvision="alexnet",
)
def alexnet_owt(**kwargs) -> AlexNet:
    """torchvision's AlexNet ("one weird trick" widths 64-192-384-256-256, no LRN): 61.1M parameters."""
    defaults = dict(cfg=OWT_CFG, dropout_first=True, weight_std=None)
    return AlexNet(**dict(defaults, **kwargs))
