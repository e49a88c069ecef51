"""Inception-v2 (BN-Inception) and Inception-v3.

* ``bn_inception``: Ioffe, Szegedy, "Batch Normalization: Accelerating Deep Network Training by Reducing
  Internal Covariate Shift", ICML 2015. https://arxiv.org/abs/1502.03167
  The GoogLeNet variant of section 4.2 / Figure 5: BatchNorm after every convolution; each 5x5
  convolution replaced by two stacked 3x3 ones (the "double 3x3" branch); three
  28x28 modules (3a, 3b, 3c) instead of two; no max pools between module groups: modules 3c and 4e
  halve the grid themselves with stride-2 convolutions next to a stride-2 max pool whose output
  passes through unprojected; a mix of average and max pooling inside the modules as the table
  lists. Section 4.2.1 removes dropout and local response normalisation, so neither is here.
  11,285,224 parameters (11.3M); the released Caffe model also gives every convolution a bias,
  10,016 more, for its 11,295,240. Like torchvision's GoogLeNet the stem max pools use ceil mode; the
  stride-2 pools of 3c/4e are padded by 1 so that they stay aligned with the stride-2 convolutions
  beside them at any input size (the Caffe model's unpadded ceil-mode pool only matches them on
  even grids).
* ``inception_v3``: Szegedy, Vanhoucke, Ioffe, Shlens, Wojna, "Rethinking the Inception Architecture for
  Computer Vision", CVPR 2016. https://arxiv.org/abs/1512.00567
  A valid-padding 3x3 stem (299 -> 35), three 35x35 modules with factorised 5x5s (Figure 5), a grid
  reduction (Figure 10), four 17x17 modules with 1x7/7x1 factorisations (Figure 6), a second
  reduction, two expanded 8x8 modules (Figure 7), and a BatchNorm auxiliary classifier on the 17x17
  grid. Module names and widths are those of the released model as torchvision ships it (the
  table of the paper differs slightly from the released network), so its weights load unchanged:
  23,834,568 parameters, 27,161,264 with the auxiliary head.

**Input size of Inception-v3.** The stem's unpadded convolutions and the two unpadded grid
reductions need at least 75 px (torchvision's documented minimum); at 75 px the 35/17/8 grids of
the 299-px design are 7/3/1, so the last modules' 3x3, 1x3 and 3x1 convolutions see only padding
around a single pixel. 28/32-px images are therefore resized to **139 px**, the smallest size at
which the three grids are still 15/7/3: every convolution keeps real neighbours, at a fifth of the
cost of 299 px (which remains the size to use when it is affordable). The auxiliary head's 5x5/3
average pool followed by a 5x5 valid convolution needs the full 17x17 grid (299 px); on smaller
grids it pools adaptively to the same 5x5 instead, so training with the auxiliary head works from
75 px up, and at 299 px and above the head computes exactly what torchvision's does.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.inception import BasicConv2d, tf_input_from_imagenet
from ._spec import Paper, SmallInput, register_model
from ._base import AuxHeadsModel, PooledFcModel, init_weights_default, linear_or_identity, min_size_for

__all__ = [
    "BNInception", "BNInceptionModule", "Inception3", "InceptionA", "InceptionB", "InceptionC", "InceptionD",
    "InceptionE", "InceptionAux", "BN_INCEPTION_MODULES", "V3_STEM", "V3_MIXED",
]

BN_INCEPTION = Paper(
    "Batch Normalization: Accelerating Deep Network Training by Reducing Internal Covariate Shift",
    "Ioffe, Szegedy", 2015, "https://arxiv.org/abs/1502.03167",
)
INCEPTION_V3 = Paper(
    "Rethinking the Inception Architecture for Computer Vision",
    "Szegedy, Vanhoucke, Ioffe, Shlens, Wojna", 2016, "https://arxiv.org/abs/1512.00567",
)

# ------------------------------------------------------------------------------------------ BN-Inception

# Figure 5 of the BN paper, one row per module. A module's output width is the sum of its branches
# (the pool branch passes its input through when it has no projection), as in the released Caffe
# model: 608 channels after 4c and 4d, 1056 after 4e.
BN_INCEPTION_MODULES: Dict[str, Tuple[int, int, int, int, int, str, int, int]] = {
    #      #1x1  #3x3 reduce  #3x3  double #3x3 reduce  double #3x3  pool  pool proj  stride
    "3a": (64, 64, 64, 64, 96, "avg", 32, 1),
    "3b": (64, 64, 96, 64, 96, "avg", 64, 1),
    "3c": (0, 128, 160, 64, 96, "max", 0, 2),  # grid 28 -> 14, pool passes through
    "4a": (224, 64, 96, 96, 128, "avg", 128, 1),
    "4b": (192, 96, 128, 96, 128, "avg", 128, 1),
    "4c": (160, 128, 160, 128, 160, "avg", 128, 1),
    "4d": (96, 128, 192, 160, 192, "avg", 128, 1),
    "4e": (0, 128, 192, 192, 256, "max", 0, 2),  # grid 14 -> 7, pool passes through
    "5a": (352, 192, 320, 160, 224, "avg", 128, 1),
    "5b": (352, 192, 320, 192, 224, "max", 128, 1),
}
BN_STEM_WIDTHS = (64, 64, 192)  # conv1 7x7/2, conv2 reduce 1x1, conv2 3x3


class BNInceptionModule(nn.Module):
    """A BN-Inception module: 1x1 | 1x1 -> 3x3 | 1x1 -> 3x3 -> 3x3 | pool (-> 1x1), concatenated.

    With ``stride=2`` (3c, 4e) the 1x1 branch is absent, the last convolution of both 3x3 branches
    has stride 2 and the max pool's output is concatenated unprojected.
    """

    def __init__(
        self, in_chs: int, ch1x1: int, ch3x3red: int, ch3x3: int, dbl_red: int, dbl: int, pool: str,
        pool_proj: int, stride: int = 1,
    ) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_chs, ch1x1, 1) if ch1x1 else None
        self.branch3x3 = nn.Sequential(BasicConv2d(in_chs, ch3x3red, 1), BasicConv2d(ch3x3red, ch3x3, 3, stride, 1))
        self.branch3x3dbl = nn.Sequential(
            BasicConv2d(in_chs, dbl_red, 1), BasicConv2d(dbl_red, dbl, 3, 1, 1), BasicConv2d(dbl, dbl, 3, stride, 1),
        )
        pool_layer = nn.AvgPool2d(3, stride, 1) if pool == "avg" else nn.MaxPool2d(3, stride, 1)
        self.branch_pool = nn.Sequential(pool_layer, BasicConv2d(in_chs, pool_proj, 1)) if pool_proj else pool_layer
        self.out_channels = ch1x1 + ch3x3 + dbl + (pool_proj or in_chs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = [] if self.branch1x1 is None else [self.branch1x1(x)]
        out += [self.branch3x3(x), self.branch3x3dbl(x), self.branch_pool(x)]
        return torch.cat(out, 1)


class BNInception(PooledFcModel):
    """BN-Inception (Inception-v2 of the BN paper).

    Args:
        num_classes: classifier outputs; 0 gives pooled features.
        in_chans: input channels.
        small_input: 3x3/1 stem convolution and no stem max pools, for 28-32 px images (the 4x
            modules then work on 16x16 maps of a 32x32 image instead of 2x2).
        drop_rate: dropout before the classifier; 0 as section 4.2.1 removes dropout.
    """

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, small_input: bool = False,
                 drop_rate: float = 0.0) -> None:
        super().__init__()
        self.num_classes, self.in_chans, self.small_input = num_classes, in_chans, small_input
        c1, c2r, c2 = BN_STEM_WIDTHS
        if small_input:
            self.conv1 = BasicConv2d(in_chans, c1, 3, 1, 1)
            self.maxpool1: nn.Module = nn.Identity()
        else:
            self.conv1 = BasicConv2d(in_chans, c1, 7, 2, 3)
            self.maxpool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2_reduce = BasicConv2d(c1, c2r, 1)
        self.conv2 = BasicConv2d(c2r, c2, 3, 1, 1)
        self.maxpool2: nn.Module = nn.Identity() if small_input else nn.MaxPool2d(3, 2, ceil_mode=True)
        specs = [(3, 1, 1)] if small_input else [(7, 2, 3), (3, 2, 0, 1, True), (3, 2, 0, 1, True)]

        chs, self._body = c2, []
        for name, row in BN_INCEPTION_MODULES.items():
            block = BNInceptionModule(chs, *row)
            setattr(self, f"inception{name}", block)
            self._body.append(f"inception{name}")
            chs = block.out_channels
            if row[-1] > 1:
                specs.append((3, row[-1], 1))
        self.min_input_size = min_size_for(specs)

        self.num_features = chs
        self.avgpool = nn.AdaptiveAvgPool2d(1)  # the table's 7x7 average pool, for any input size
        self.drop_rate = drop_rate
        self.fc = linear_or_identity(chs, num_classes)
        groups: Dict[str, List[str]] = {"inception3": [], "inception4": [], "inception5": []}
        for name in BN_INCEPTION_MODULES:
            groups[f"inception{name[0]}"].append(f"inception{name}")
        self.stage_map = {"stem": ("conv1", "conv2_reduce", "conv2"), **{k: tuple(v) for k, v in groups.items()},
                          "head": ("fc",)}
        init_weights_default(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv2(self.conv2_reduce(x)))
        for name in self._body:
            x = getattr(self, name)(x)
        return x



# ------------------------------------------------------------------------------------------ Inception-v3

# The stem (grid sizes for a 299-px input). "pool" rows are 3x3/2 max pools.
V3_STEM: Tuple[Tuple[str, int, int, int, int], ...] = (
    # name            out  kernel stride padding
    ("Conv2d_1a_3x3", 32, 3, 2, 0),  # 149
    ("Conv2d_2a_3x3", 32, 3, 1, 0),  # 147
    ("Conv2d_2b_3x3", 64, 3, 1, 1),  # 147
    ("maxpool1", 0, 3, 2, 0),  # 73
    ("Conv2d_3b_1x1", 80, 1, 1, 0),  # 73
    ("Conv2d_4a_3x3", 192, 3, 1, 0),  # 71
    ("maxpool2", 0, 3, 2, 0),  # 35
)
# The Inception modules. Kinds: A = Figure 5 (35x35; argument: pool projection width),
# B = 35 -> 17 grid reduction (Figure 10), C = Figure 6 (17x17; argument: width inside the 1x7/7x1
# factorisations), D = 17 -> 8 reduction, E = Figure 7 (8x8, expanded filter banks).
V3_MIXED: Tuple[Tuple[str, str, Optional[int]], ...] = (
    # name      kind  argument   output channels x grid (299 px)
    ("Mixed_5b", "A", 32),  # 256 x 35
    ("Mixed_5c", "A", 64),  # 288 x 35
    ("Mixed_5d", "A", 64),  # 288 x 35
    ("Mixed_6a", "B", None),  # 768 x 17
    ("Mixed_6b", "C", 128),  # 768 x 17
    ("Mixed_6c", "C", 160),  # 768 x 17
    ("Mixed_6d", "C", 160),  # 768 x 17
    ("Mixed_6e", "C", 192),  # 768 x 17
    ("Mixed_7a", "D", None),  # 1280 x 8
    ("Mixed_7b", "E", None),  # 2048 x 8
    ("Mixed_7c", "E", None),  # 2048 x 8
)
V3_AUX_AFTER = "Mixed_6e"  # section 4: one (BatchNorm) auxiliary classifier on the last 17x17 layer
# The paper gives no weight for the auxiliary loss; 0.4 is the reference TF-slim training script's.
V3_AUX_WEIGHT = 0.4
V3_AUX_GRID = 17  # the grid the auxiliary head's 5x5/3 pool + 5x5 valid conv are sized for


class InceptionA(nn.Module):
    """Figure 5: 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | 3x3 avg pool -> 1x1.

    The released model keeps one 5x5 branch beside the factorised double 3x3.
    """

    def __init__(self, in_chs: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_chs, 64, 1)
        self.branch5x5_1 = BasicConv2d(in_chs, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_chs, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(in_chs, pool_features, 1)
        self.out_channels = 64 + 64 + 96 + pool_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(F.avg_pool2d(x, 3, 1, 1))
        return torch.cat([b1, b5, b3, bp], 1)


class InceptionB(nn.Module):
    """35 -> 17 grid reduction (Figure 10): stride-2 convolutions beside a stride-2 max pool."""

    def __init__(self, in_chs: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(in_chs, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_chs, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)
        self.out_channels = 384 + 96 + in_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3(x)
        b3d = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([b3, b3d, F.max_pool2d(x, 3, 2)], 1)


class InceptionC(nn.Module):
    """Figure 6: n x n convolutions factorised into 1 x n and n x 1 (n = 7) on the 17x17 grid."""

    def __init__(self, in_chs: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_chs, 192, 1)
        self.branch7x7_1 = BasicConv2d(in_chs, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_chs, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_chs, 192, 1)
        self.out_channels = 4 * 192

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        b7d = self.branch7x7dbl_1(x)
        for conv in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            b7d = conv(b7d)
        bp = self.branch_pool(F.avg_pool2d(x, 3, 1, 1))
        return torch.cat([b1, b7, b7d, bp], 1)


class InceptionD(nn.Module):
    """17 -> 8 grid reduction: 1x1 -> 3x3/2 | 1x1 -> 1x7 -> 7x1 -> 3x3/2 | 3x3/2 max pool."""

    def __init__(self, in_chs: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_chs, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_chs, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)
        self.out_channels = 320 + 192 + in_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, 3, 2)], 1)


class InceptionE(nn.Module):
    """Figure 7: the 8x8 modules, whose 3x3s end in parallel 1x3 and 3x1 convolutions (wider, not deeper)."""

    def __init__(self, in_chs: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_chs, 320, 1)
        self.branch3x3_1 = BasicConv2d(in_chs, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_chs, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_chs, 192, 1)
        self.out_channels = 320 + 2 * 384 + 2 * 384 + 192

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        b3d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        b3d = torch.cat([self.branch3x3dbl_3a(b3d), self.branch3x3dbl_3b(b3d)], 1)
        bp = self.branch_pool(F.avg_pool2d(x, 3, 1, 1))
        return torch.cat([b1, b3, b3d, bp], 1)


class InceptionAux(nn.Module):
    """The BatchNorm auxiliary classifier: 5x5/3 avg pool, 1x1 conv 128, 5x5 conv 768, FC.

    Sized for the 17x17 grid of a 299-px input (17 -> 5 -> 1). Smaller grids are pooled adaptively
    to 5x5 instead, so the head also trains on inputs down to the network's 75-px minimum.
    """

    def __init__(self, in_chs: int, num_classes: int) -> None:
        super().__init__()
        self.conv0 = BasicConv2d(in_chs, 128, 1)
        self.conv1 = BasicConv2d(128, 768, 5)
        self.fc = linear_or_identity(768, num_classes)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.fc = linear_or_identity(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) >= V3_AUX_GRID:
            x = F.avg_pool2d(x, 5, 3)
        else:
            x = F.adaptive_avg_pool2d(x, 5)
        x = self.conv1(self.conv0(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


_V3_BLOCKS = {"A": InceptionA, "B": InceptionB, "C": InceptionC, "D": InceptionD, "E": InceptionE}


class Inception3(AuxHeadsModel):
    """Inception-v3 as released (torchvision's module names and widths).

    Args:
        num_classes: classifier outputs; 0 gives pooled features.
        in_chans: input channels.
        aux_logits: build the auxiliary classifier; in training mode ``forward`` then returns
            ``AuxOutputs(logits, [aux])``.
        drop_rate: dropout before the classifier (torchvision's 0.5).
        transform_input: re-normalise ImageNet-normalised input to [-1, 1] as torchvision's
            pretrained weights expect (3-channel input only).
    """

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, aux_logits: bool = True,
                 drop_rate: float = 0.5, transform_input: bool = False) -> None:
        super().__init__()
        if transform_input and in_chans != 3:
            raise ValueError(f"transform_input=True re-normalises RGB images and needs in_chans=3, got {in_chans}")
        self.num_classes, self.in_chans = num_classes, in_chans
        self.aux_logits, self.aux_weight, self.transform_input = aux_logits, V3_AUX_WEIGHT, transform_input

        chs, specs, self._stem = in_chans, [], []
        for name, out, k, s, p in V3_STEM:
            if name.startswith("maxpool"):
                setattr(self, name, nn.MaxPool2d(k, s, p))
            else:
                setattr(self, name, BasicConv2d(chs, out, k, s, p))
                chs = out
            self._stem.append(name)
            specs.append((k, s, p))
        self._mixed = []
        for name, kind, arg in V3_MIXED:
            block = _V3_BLOCKS[kind](chs) if arg is None else _V3_BLOCKS[kind](chs, arg)
            setattr(self, name, block)
            self._mixed.append(name)
            if kind in ("B", "D"):
                specs.append((3, 2, 0))  # the reductions' unpadded 3x3/2 convolutions and pool
            if name == V3_AUX_AFTER:
                self.AuxLogits = InceptionAux(block.out_channels, num_classes) if aux_logits else None
            chs = block.out_channels
        # Unpadded stem convolutions and reductions: 75 px, torchvision's documented minimum.
        self.min_input_size = min_size_for(specs)

        self.num_features = chs
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.drop_rate = drop_rate
        self.fc = linear_or_identity(chs, num_classes)
        self.stage_map = {
            "stem": tuple(n for n in self._stem if not n.startswith("maxpool")),
            "mixed5": tuple(n for n in self._mixed if n.startswith("Mixed_5")),
            "mixed6": tuple(n for n in self._mixed if n.startswith("Mixed_6")),
            "mixed7": tuple(n for n in self._mixed if n.startswith("Mixed_7")),
            "head": self._head_modules(),
        }
        self._init_weights()

    def _head_modules(self) -> Tuple[str, ...]:
        return (("AuxLogits",) if self.AuxLogits is not None else ()) + ("fc",)

    def _init_weights(self) -> None:
        # torchvision's (TF-slim's) init: truncated normal, std 0.1; 0.01 and 0.001 in the auxiliary head.
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.1, a=-2, b=2)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if self.AuxLogits is not None:
            nn.init.trunc_normal_(self.AuxLogits.conv1.conv.weight, mean=0.0, std=0.01, a=-2, b=2)
            if isinstance(self.AuxLogits.fc, nn.Linear):
                nn.init.trunc_normal_(self.AuxLogits.fc.weight, mean=0.0, std=0.001, a=-2, b=2)

    def _features(self, x: torch.Tensor, with_aux: bool) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        if self.transform_input:
            x = tf_input_from_imagenet(x)
        for name in self._stem:
            x = getattr(self, name)(x)
        aux = []
        for name in self._mixed:
            x = getattr(self, name)(x)
            if with_aux and name == V3_AUX_AFTER and self.AuxLogits is not None:
                aux.append(self.AuxLogits(x))
        return x, aux

    def aux_heads(self) -> List[nn.Module]:
        return [self.AuxLogits] if self.AuxLogits is not None else []

    def aux_head_names(self) -> Tuple[str, ...]:
        return ("AuxLogits",)


# ------------------------------------------------------------------------------------------ registrations


def _create_bn_inception(**kwargs) -> BNInception:
    return BNInception(**kwargs)


def _create_inception_v3(**kwargs) -> Inception3:
    return Inception3(**kwargs)


@register_model(family="Inception", paper=BN_INCEPTION, small_input=SmallInput("option", {"small_input": True}))
def bn_inception(**kwargs) -> BNInception:
    """BN-Inception (Inception-v2): GoogLeNet with BatchNorm, double 3x3s and stride-2 modules, 11.3M parameters."""
    return _create_bn_inception(**kwargs)


# 139 px: the smallest input whose 35/17/8 grids stay 15/7/3 (see the module docstring).
@register_model(family="Inception", paper=INCEPTION_V3, input_size=299, small_input=SmallInput("resize", size=139),
                torchvision="inception_v3")
def inception_v3(**kwargs) -> Inception3:
    """Inception-v3 as released, torchvision-compatible: 23.8M parameters (27.2M with the auxiliary head)."""
    return _create_inception_v3(**dict(dict(aux_logits=True), **kwargs))
