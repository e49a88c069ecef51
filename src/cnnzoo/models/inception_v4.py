"""Inception-v4 and Inception-ResNet-v2: Szegedy, Ioffe, Vanhoucke, Alemi, "Inception-v4, Inception-ResNet and the
Impact of Residual Connections on Learning", AAAI 2017. https://arxiv.org/abs/1602.07261

Both networks are written as layer tables (the data below), read top to bottom like the paper's figures: a
row is a convolution, a pool, a ``Mixed`` block (parallel branches, concatenated) or a ``Residual`` block (an
Inception-ResNet block: branches concatenated, a linear 1x1 convolution back to the input width, scaled and
added to the input, then ReLU). One model class builds either table.

* ``inception_v4``: Figure 9. The stem of Figure 3 (299 -> 35x35x384), 4 x Inception-A (Figure 4),
  Reduction-A (Figure 7, k, l, m, n = 192, 224, 256, 384), 7 x Inception-B (Figure 5), Reduction-B (Figure 8),
  3 x Inception-C (Figure 6), average pool, dropout (keep 0.8), FC: 42,679,816 parameters.
* ``inception_resnet_v2``: Figure 15, as released (TF-slim's ``inception_resnet_v2``, ported by timm):
  55,843,464 parameters.

**Where the figures and the released models disagree, the released models are followed (as timm does):**

* Inception-v4: the order of the 1x7 / 7x1 (and 1x3 / 3x1) factorisations inside a branch is TF-slim's, in places
  not the figures' (no parameter count changes).
* Inception-ResNet-v2 does not use Figure 3's stem: the released model has Inception-v3's stem (299 -> 35x35x192)
  followed by an Inception block (``mixed_5b``) that gives 320 channels, where the paper's stem gives 384.
* Its block widths are therefore those of the released model, not Figure 15's: 320 channels at 35x35, 1088 (not
  1154) at 17x17 and 2080 (not 2048) at 8x8; the 1x1 convolution of Conv2d_7b brings 2080 to 1536 before the pool.
* There are 10 / 20 / 10 Inception-ResNet-A / B / C blocks (Figure 15 draws 5 / 10 / 5), scaled by 0.17 / 0.10 /
  0.20 (section 3.3 scales residuals down by factors between 0.1 and 0.3 before the addition). The last C block
  has scale 1 and no ReLU, as the released model's ``block8(net, activation_fn=None)``.
* The up-projection convolutions of the residual blocks have a bias and no BatchNorm ("1x1 Conv (Linear)").

**Departures from timm:**

* Module names are this zoo's (the stem's layers by their TF-slim names; ``inception_a.0.1.0``: block, branch,
  layer), not timm's; parameters come in timm's order (block by block, branch by branch), so a timm state dict
  maps onto them by position.
* The classifier is ``fc`` (timm: ``last_linear`` / ``classif``) and dropout before it defaults to the paper's
  0.2 (keep 0.8; timm: 0). No auxiliary classifier: the paper describes none and timm builds none (TF-slim's
  optional one is not part of the published counts).
* Convolutions are He-initialised (fan-in), as TF-slim's ``inception_arg_scope`` for Inception-v4.

BatchNorm uses epsilon 0.001 and has an affine scale, as timm's ports (TF-slim's BatchNorm has no scale; the
published 42.7M / 55.8M count it). Average pools exclude the padding from the mean, as TF's "SAME" pooling.

**Input size.** Both stems and both grid reductions are valid-padded: 75 px is the smallest input (299 -> 35 / 17
/ 8 becomes 7 / 3 / 1). 28/32-px images are resized to **139 px**, as for ``inception_v3`` (``models/inception.py``)
and for the same reason: the smallest size at which the three grids are still 15 / 7 / 3, so that the 3x3, 1x3
and 3x1 convolutions of the last blocks see real neighbours rather than padding around one pixel.
"""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.inception import BasicConv2d
from ._spec import Paper, SmallInput, register_model
from ._base import PooledFcModel, init_weights_default, linear_or_identity, min_size_for

__all__ = [
    "Conv", "Mixed", "Residual", "Concat", "ResidualBlock", "InceptionV4", "V4_LAYOUT", "IRV2_LAYOUT", "MAX", "AVG",
]

INCEPTION_V4 = Paper(
    "Inception-v4, Inception-ResNet and the Impact of Residual Connections on Learning",
    "Szegedy, Ioffe, Vanhoucke, Alemi", 2017, "https://arxiv.org/abs/1602.07261",
)

# ------------------------------------------------------------------------------------------ the table's vocabulary


class Conv(NamedTuple):
    """A convolution -> BatchNorm -> ReLU of a layer table."""

    out: int
    kernel: Union[int, Tuple[int, int]] = 1
    stride: int = 1
    valid: bool = False  # the figures' "V": no padding; otherwise "same" padding


MAX = "max"  # 3x3/2 valid max pool (stems and grid reductions)
AVG = "avg"  # 3x3/1 average pool, padding excluded from the mean (TF's "SAME" pooling)

# A branch is a sequence of layers. A tuple of Convs inside a branch is applied side by side to the same input and
# concatenated: the 1x3 | 3x1 split at the end of Inception-C's branches (Figure 6).
Layer = Union[Conv, str, Tuple[Conv, ...]]
Branch = Tuple[Layer, ...]


class Mixed(NamedTuple):
    """An Inception block: parallel branches on the same input, concatenated along the channels."""

    branches: Tuple[Branch, ...]


class Residual(NamedTuple):
    """An Inception-ResNet block: ``relu(x + scale * conv1x1(concat(branches(x))))``."""

    branches: Tuple[Branch, ...]
    scale: float
    relu: bool = True


Spec = Union[Conv, str, Mixed, Residual]
# stage, module name, spec, repeats
Row = Tuple[str, str, Spec, int]

# ------------------------------------------------------------------------------------------ Inception-v4

# Figure 3, the stem's three Mixed blocks (channels x grid at 299 px).
V4_MIXED_3A = Mixed(((MAX,), (Conv(96, 3, 2, valid=True),)))  # 160 x 73
V4_MIXED_4A = Mixed((
    (Conv(64), Conv(96, 3, valid=True)),
    (Conv(64), Conv(64, (1, 7)), Conv(64, (7, 1)), Conv(96, 3, valid=True)),
))  # 192 x 71
V4_MIXED_5A = Mixed(((Conv(192, 3, 2, valid=True),), (MAX,)))  # 384 x 35
INCEPTION_A = Mixed((  # Figure 4: 384 x 35
    (Conv(96),),
    (Conv(64), Conv(96, 3)),
    (Conv(64), Conv(96, 3), Conv(96, 3)),
    (AVG, Conv(96)),
))
REDUCTION_A = Mixed((  # Figure 7 with k, l, m, n = 192, 224, 256, 384: 1024 x 17
    (Conv(384, 3, 2, valid=True),),
    (Conv(192), Conv(224, 3), Conv(256, 3, 2, valid=True)),
    (MAX,),
))
INCEPTION_B = Mixed((  # Figure 5: 1024 x 17
    (Conv(384),),
    (Conv(192), Conv(224, (1, 7)), Conv(256, (7, 1))),
    (Conv(192), Conv(192, (7, 1)), Conv(224, (1, 7)), Conv(224, (7, 1)), Conv(256, (1, 7))),
    (AVG, Conv(128)),
))
REDUCTION_B = Mixed((  # Figure 8: 1536 x 8
    (Conv(192), Conv(192, 3, 2, valid=True)),
    (Conv(256), Conv(256, (1, 7)), Conv(320, (7, 1)), Conv(320, 3, 2, valid=True)),
    (MAX,),
))
INCEPTION_C = Mixed((  # Figure 6: 1536 x 8
    (Conv(256),),
    (Conv(384), (Conv(256, (1, 3)), Conv(256, (3, 1)))),
    (Conv(384), Conv(448, (3, 1)), Conv(512, (1, 3)), (Conv(256, (1, 3)), Conv(256, (3, 1)))),
    (AVG, Conv(256)),
))

V4_LAYOUT: Tuple[Row, ...] = (
    # stage         name           spec                        repeats   channels x grid at 299 px
    ("stem", "conv2d_1a", Conv(32, 3, 2, valid=True), 1),  # 32 x 149
    ("stem", "conv2d_2a", Conv(32, 3, valid=True), 1),  # 32 x 147
    ("stem", "conv2d_2b", Conv(64, 3), 1),  # 64 x 147
    ("stem", "mixed_3a", V4_MIXED_3A, 1),  # 160 x 73
    ("stem", "mixed_4a", V4_MIXED_4A, 1),  # 192 x 71
    ("stem", "mixed_5a", V4_MIXED_5A, 1),  # 384 x 35
    ("inception_a", "inception_a", INCEPTION_A, 4),  # 384 x 35
    ("inception_b", "reduction_a", REDUCTION_A, 1),  # 1024 x 17
    ("inception_b", "inception_b", INCEPTION_B, 7),  # 1024 x 17
    ("inception_c", "reduction_b", REDUCTION_B, 1),  # 1536 x 8
    ("inception_c", "inception_c", INCEPTION_C, 3),  # 1536 x 8
)

# ------------------------------------------------------------------------------------------ Inception-ResNet-v2

# The released model's widths (see the module docstring); Figures 16-19 give the branches.
IRV2_MIXED_5B = Mixed((  # 320 x 35
    (Conv(96),),
    (Conv(48), Conv(64, 5)),
    (Conv(64), Conv(96, 3), Conv(96, 3)),
    (AVG, Conv(64)),
))
BLOCK35 = Residual((  # Figure 16, Inception-ResNet-A: 320 x 35
    (Conv(32),),
    (Conv(32), Conv(32, 3)),
    (Conv(32), Conv(48, 3), Conv(64, 3)),
), scale=0.17)
IRV2_REDUCTION_A = Mixed((  # Figure 7 with k, l, m, n = 256, 256, 384, 384: 1088 x 17
    (Conv(384, 3, 2, valid=True),),
    (Conv(256), Conv(256, 3), Conv(384, 3, 2, valid=True)),
    (MAX,),
))
BLOCK17 = Residual((  # Figure 17, Inception-ResNet-B: 1088 x 17
    (Conv(192),),
    (Conv(128), Conv(160, (1, 7)), Conv(192, (7, 1))),
), scale=0.10)
IRV2_REDUCTION_B = Mixed((  # Figure 18: 2080 x 8
    (Conv(256), Conv(384, 3, 2, valid=True)),
    (Conv(256), Conv(288, 3, 2, valid=True)),
    (Conv(256), Conv(288, 3), Conv(320, 3, 2, valid=True)),
    (MAX,),
))
BLOCK8 = Residual((  # Figure 19, Inception-ResNet-C: 2080 x 8
    (Conv(192),),
    (Conv(192), Conv(224, (1, 3)), Conv(256, (3, 1))),
), scale=0.20)
BLOCK8_LAST = BLOCK8._replace(scale=1.0, relu=False)  # the released model's last block

IRV2_LAYOUT: Tuple[Row, ...] = (
    # stage                name          spec                        repeats   channels x grid at 299 px
    ("stem", "conv2d_1a", Conv(32, 3, 2, valid=True), 1),  # 32 x 149
    ("stem", "conv2d_2a", Conv(32, 3, valid=True), 1),  # 32 x 147
    ("stem", "conv2d_2b", Conv(64, 3), 1),  # 64 x 147
    ("stem", "maxpool_3a", MAX, 1),  # 64 x 73
    ("stem", "conv2d_3b", Conv(80), 1),  # 80 x 73
    ("stem", "conv2d_4a", Conv(192, 3, valid=True), 1),  # 192 x 71
    ("stem", "maxpool_5a", MAX, 1),  # 192 x 35
    ("stem", "mixed_5b", IRV2_MIXED_5B, 1),  # 320 x 35
    ("inception_resnet_a", "block35", BLOCK35, 10),  # 320 x 35
    ("inception_resnet_b", "mixed_6a", IRV2_REDUCTION_A, 1),  # 1088 x 17
    ("inception_resnet_b", "block17", BLOCK17, 20),  # 1088 x 17
    ("inception_resnet_c", "mixed_7a", IRV2_REDUCTION_B, 1),  # 2080 x 8
    ("inception_resnet_c", "block8", BLOCK8, 9),  # 2080 x 8
    ("inception_resnet_c", "block8_last", BLOCK8_LAST, 1),  # 2080 x 8
    ("inception_resnet_c", "conv2d_7b", Conv(1536), 1),  # 1536 x 8
)

# ------------------------------------------------------------------------------------------ blocks


def _pair(kernel: Union[int, Tuple[int, int]]) -> Tuple[int, int]:
    return (kernel, kernel) if isinstance(kernel, int) else kernel


def _conv(in_chs: int, c: Conv) -> BasicConv2d:
    kh, kw = _pair(c.kernel)
    padding = (0, 0) if c.valid else (kh // 2, kw // 2)
    return BasicConv2d(in_chs, c.out, (kh, kw), c.stride, padding)


class Concat(nn.ModuleList):
    """Modules applied side by side to the same input, their outputs concatenated along the channels."""

    def __init__(self, modules: Sequence[nn.Module], out_channels: int) -> None:
        super().__init__(modules)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([m(x) for m in self], 1)


def _layer(in_chs: int, layer: Layer) -> Tuple[nn.Module, int]:
    """One layer of a branch and its output width."""
    if isinstance(layer, Conv):
        return _conv(in_chs, layer), layer.out
    if layer == MAX:
        return nn.MaxPool2d(3, 2), in_chs
    if layer == AVG:
        return nn.AvgPool2d(3, 1, 1, count_include_pad=False), in_chs
    split = Concat([_conv(in_chs, c) for c in layer], sum(c.out for c in layer))
    return split, split.out_channels


def _branch(in_chs: int, branch: Branch) -> Tuple[nn.Sequential, int]:
    layers = []
    for layer in branch:
        module, in_chs = _layer(in_chs, layer)
        layers.append(module)
    return nn.Sequential(*layers), in_chs


def _concat(in_chs: int, branches: Tuple[Branch, ...]) -> Concat:
    built = [_branch(in_chs, b) for b in branches]
    return Concat([m for m, _ in built], sum(c for _, c in built))


class ResidualBlock(nn.Module):
    """An Inception-ResNet block (Figures 16, 17, 19): ``relu(x + scale * up(concat(branches(x))))``.

    ``up`` is the "1x1 Conv (Linear)" filter expansion back to the input width: a bias, no BatchNorm, no ReLU.
    Section 3.3: scaling the residual down before the addition keeps very wide networks from dying early in training.
    """

    def __init__(self, in_chs: int, spec: Residual) -> None:
        super().__init__()
        self.branches = _concat(in_chs, spec.branches)
        self.up = nn.Conv2d(self.branches.out_channels, in_chs, 1)
        self.scale, self.relu = spec.scale, spec.relu
        self.out_channels = in_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.scale * self.up(self.branches(x))
        return F.relu(x) if self.relu else x

    def extra_repr(self) -> str:
        return f"scale={self.scale}, relu={self.relu}"


def _build(in_chs: int, spec: Spec) -> Tuple[nn.Module, int]:
    """A row's module and its output width."""
    if isinstance(spec, Mixed):
        block = _concat(in_chs, spec.branches)
        return block, block.out_channels
    if isinstance(spec, Residual):
        return ResidualBlock(in_chs, spec), in_chs
    return _layer(in_chs, spec)


def _grid_path(spec: Union[Spec, Layer]) -> List[Tuple[int, int, int]]:
    """(kernel, stride, padding) along one path through ``spec``, for :func:`min_size_for`.

    The branches of a block give the same grid (they are concatenated), so the first one stands for all.
    """
    if isinstance(spec, Conv):
        k = _pair(spec.kernel)[0]
        return [(k, spec.stride, 0 if spec.valid else k // 2)]
    if spec == MAX:
        return [(3, 2, 0)]
    if spec == AVG:
        return [(3, 1, 1)]
    if isinstance(spec, (Mixed, Residual)):
        return [step for layer in spec.branches[0] for step in _grid_path(layer)]
    return _grid_path(spec[0])  # convolutions side by side


# ------------------------------------------------------------------------------------------ the model


class InceptionV4(PooledFcModel):
    """Inception-v4 or Inception-ResNet-v2, built from a layer table (``V4_LAYOUT``, ``IRV2_LAYOUT``).

    Args:
        layout: rows of (stage, module name, spec, repeats); a row repeated n times is an ``nn.Sequential``.
        num_classes: classifier outputs; 0 gives pooled features.
        in_chans: input channels.
        drop_rate: dropout before the classifier; the paper's 0.2 (keep 0.8).
    """

    def __init__(self, layout: Sequence[Row] = V4_LAYOUT, num_classes: int = 1000, in_chans: int = 3,
                 drop_rate: float = 0.2) -> None:
        super().__init__()
        self.num_classes, self.in_chans, self.drop_rate = num_classes, in_chans, drop_rate
        chs, path = in_chans, []
        stages: Dict[str, List[str]] = {}
        for stage, name, spec, repeats in layout:
            modules = []
            for _ in range(repeats):
                module, chs = _build(chs, spec)
                modules.append(module)
            setattr(self, name, modules[0] if repeats == 1 else nn.Sequential(*modules))
            stages.setdefault(stage, []).append(name)
            path += _grid_path(spec) * repeats
        self._body = [name for names in stages.values() for name in names]
        self.min_input_size = min_size_for(path)

        self.num_features = chs
        self.avgpool = nn.AdaptiveAvgPool2d(1)  # the figures' 8x8 average pool, for any input size
        self.fc = linear_or_identity(chs, num_classes)
        self.stage_map = {**{s: tuple(names) for s, names in stages.items()}, "head": ("fc",)}
        init_weights_default(self, mode="fan_in")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for name in self._body:
            x = getattr(self, name)(x)
        return x


# ------------------------------------------------------------------------------------------ registrations

# 139 px: the smallest input whose 35/17/8 grids stay 15/7/3 (see the module docstring).
_SMALL = SmallInput("resize", size=139)


def _create_inception_v4(layout: Sequence[Row], **kwargs) -> InceptionV4:
    return InceptionV4(layout, **kwargs)


@register_model(family="Inception-v4", paper=INCEPTION_V4, input_size=299, small_input=_SMALL)
def inception_v4(**kwargs) -> InceptionV4:
    """Inception-v4 (Figure 9): a pure Inception network of uniform A/B/C blocks, 42.7M parameters."""
    return _create_inception_v4(V4_LAYOUT, **kwargs)


@register_model(family="Inception-v4", paper=INCEPTION_V4, input_size=299, small_input=_SMALL)
def inception_resnet_v2(**kwargs) -> InceptionV4:
    """Inception-ResNet-v2 as released: Inception blocks with scaled residual connections, 55.8M parameters."""
    return _create_inception_v4(IRV2_LAYOUT, **kwargs)
