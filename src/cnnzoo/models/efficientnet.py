"""EfficientNet: Tan, Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks", ICML 2019.

https://arxiv.org/abs/1905.11946

The baseline B0 (Table 1 of the paper) is a stack of mobile inverted bottlenecks (MBConv, from
MobileNet v2 / MnasNet) with Squeeze-and-Excitation and SiLU ("swish"). B1-B7 are B0 scaled by
*compound scaling* (section 3.3): depth ``d = alpha**phi``, width ``w = beta**phi``, resolution
``r = gamma**phi`` with ``alpha = 1.2, beta = 1.1, gamma = 1.15`` found by a grid search under
``alpha * beta**2 * gamma**2 ~= 2`` (so each unit of ``phi`` roughly doubles the FLOPs). The released
B1-B7 use hand-rounded coefficients (``VARIANTS`` below, those of the official code and torchvision);
each variant here is ONLY those coefficients: widths are ``make_divisible(c * w, 8)`` and repeats
``ceil(n * d)`` of the B0 table, derived at build time. ``phi=`` builds B0 scaled by the exact powers.

Module names are torchvision's (``features.N.M.block.K``, ``classifier.1``), so its weights load
unchanged and the outputs match. The body (:class:`MBConvNet`: stem, stages built from a table whose rows make
their blocks, head conv, classifier, torchvision's init) and the blocks are shared with ``efficientnet_v2.py``.
Like torchvision, B5-B7 use TensorFlow's BatchNorm settings (eps 1e-3, momentum 0.01), the ones their ported
weights were trained with; B0-B4 PyTorch's defaults.

Small images (``small_input=True``): the stem convolution gets stride 1 and the first stride-2
MBConv stage (stage 2 of the table, 16 -> 24 channels) stride 1, so the total stride is 8 instead
of 32 (``min_input_size`` 8 instead of 32). The outputs of the paper's stages 2-8 (``features.1-7``)
are then 32-32-16-8-8-4-4 px for a 32x32 image and 28-28-14-7-7-4-4 px for a 28x28 one, so the last
stage and the 1x1 head conv work on 4x4 maps instead of 1x1.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Protocol, Sequence

import torch
from torch import nn

from ..layers import ConvBnAct, DropPath, SqueezeExcite, make_divisible
from ._spec import Paper, SmallInput, register_model
from ._base import SequentialHeadModel, init_weights_default, linear_or_identity

__all__ = ["EfficientNet", "MBConv", "MBConvNet", "ResidualBlock", "Scaling", "StageRow", "B0_STAGES", "VARIANTS",
           "scaling_from_phi", "squeeze_excite"]

EFFICIENTNET = Paper(
    "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks",
    "Tan, Le", 2019, "https://arxiv.org/abs/1905.11946",
)


class Stage(NamedTuple):
    """One row (stages 2-8) of Table 1: an MBConv stage of the B0 baseline."""

    expand: int  # expansion ratio t of the inverted bottleneck (MBConv1 / MBConv6)
    kernel: int  # depthwise kernel k x k
    stride: int  # stride of the stage's first block
    in_chs: int  # input channels
    out_chs: int  # output channels
    repeats: int  # blocks in the stage

    def block(self, in_chs: int, stride: int, drop_path: float, norm_layer: Callable[..., nn.Module],
              act_layer: Callable[..., nn.Module]) -> nn.Module:
        """One block of the stage: an MBConv (``in_chs`` and ``stride`` are the first block's or the rest's)."""
        return MBConv(in_chs, self.out_chs, self.expand, self.kernel, stride, drop_path, norm_layer, act_layer)


class StageRow(Protocol):
    """What :class:`MBConvNet` reads from a row of a stage table (EfficientNet's Table 1, EfficientNetV2's Table 4)."""

    stride: int
    in_chs: int
    out_chs: int
    repeats: int

    def _replace(self, **kwargs: Any) -> "StageRow": ...

    def block(self, in_chs: int, stride: int, drop_path: float, norm_layer: Callable[..., nn.Module],
              act_layer: Callable[..., nn.Module]) -> nn.Module: ...


# Table 1: the EfficientNet-B0 baseline (comments: a stage's output size for a 224x224 input). Stage 1 is the
# 3x3/2 stem to B0_STAGES[0].in_chs channels; stage 9 the 1x1 conv to HEAD_MULT x the last width, pooling, FC.
B0_STAGES = (
    #     t  k  s   in  out  n
    Stage(1, 3, 1, 32, 16, 1),  # 112x112
    Stage(6, 3, 2, 16, 24, 2),  # 56x56
    Stage(6, 5, 2, 24, 40, 2),  # 28x28
    Stage(6, 3, 2, 40, 80, 3),  # 14x14
    Stage(6, 5, 1, 80, 112, 3),  # 14x14
    Stage(6, 5, 2, 112, 192, 4),  # 7x7
    Stage(6, 3, 1, 192, 320, 1),  # 7x7
)
STEM_STRIDE = 2
HEAD_MULT = 4  # 1280 = 4 x 320 in B0; the head width scales with the last stage's width
SE_RATIO = 0.25  # SE bottleneck = 1/4 of the block's INPUT channels (MnasNet / official code)
DROP_PATH_RATE = 0.2  # stochastic depth, rising linearly over the blocks (section 5.2)


class Scaling(NamedTuple):
    """A variant's compound-scaling coefficients."""

    width: float  # channel multiplier w
    depth: float  # layer-repeat multiplier d
    resolution: int  # input size r (pixels)
    dropout: float  # dropout before the classifier


# The released B0-B7 (official code, torchvision, timm): everything else is derived from these.
VARIANTS: Dict[str, Scaling] = {
    #           width depth  res  dropout
    "b0": Scaling(1.0, 1.0, 224, 0.2),
    "b1": Scaling(1.0, 1.1, 240, 0.2),
    "b2": Scaling(1.1, 1.2, 260, 0.3),
    "b3": Scaling(1.2, 1.4, 300, 0.3),
    "b4": Scaling(1.4, 1.8, 380, 0.4),
    "b5": Scaling(1.6, 2.2, 456, 0.4),
    "b6": Scaling(1.8, 2.6, 528, 0.5),
    "b7": Scaling(2.0, 3.1, 600, 0.5),
}

# Section 3.3: d = ALPHA**phi, w = BETA**phi, r = GAMMA**phi, with ALPHA * BETA**2 * GAMMA**2 ~= 2.
ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15

# torchvision's B5-B7 carry TensorFlow's BatchNorm settings (their weights come from the TF release).
TF_BATCHNORM = dict(eps=1e-3, momentum=0.01)
BATCHNORM: Dict[str, dict] = {"b5": TF_BATCHNORM, "b6": TF_BATCHNORM, "b7": TF_BATCHNORM}


def scaling_from_phi(phi: float, dropout: float = 0.2) -> Scaling:
    """The paper's compound scaling of B0 by ``phi``: ``(beta**phi, alpha**phi, 224 * gamma**phi)``.

    The released B1-B7 round these by hand (``phi=1`` gives B2's w and d, at 258 px), so the registered
    variants use ``VARIANTS``; this is for scaling B0 to a budget of one's own.
    """
    return Scaling(BETA ** phi, ALPHA ** phi, int(round(224 * GAMMA ** phi)), dropout)


def squeeze_excite(channels: int, in_chs: int, se_ratio: float, act_layer: Callable[..., nn.Module]) -> List[nn.Module]:
    """A block's SE on ``channels`` maps, its bottleneck ``se_ratio`` x the block's input channels; none for 0."""
    if not se_ratio:
        return []
    return [SqueezeExcite(channels, squeeze_channels=max(1, int(in_chs * se_ratio)), act_layer=act_layer)]


class ResidualBlock(nn.Module):
    """A ``block`` Sequential with the identity shortcut (stochastic depth on the branch) when it keeps the shape."""

    def __init__(self, layers: Sequence[nn.Module], in_chs: int, out_chs: int, stride: int, drop_path: float) -> None:
        super().__init__()
        self.use_res_connect = stride == 1 and in_chs == out_chs
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = DropPath(drop_path)
        self.out_channels = out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        if self.use_res_connect:
            out = self.stochastic_depth(out) + x
        return out


class MBConv(ResidualBlock):
    """Mobile inverted bottleneck with SE: 1x1 expand -> k x k depthwise -> SE -> 1x1 linear project.

    The expansion is skipped when the ratio is 1 (MBConv1); ``se_ratio=0`` leaves out the SE.
    """

    def __init__(
        self, in_chs: int, out_chs: int, expand: int, kernel: int, stride: int, drop_path: float,
        norm_layer: Callable[..., nn.Module] = nn.BatchNorm2d, act_layer: Callable[..., nn.Module] = nn.SiLU,
        se_ratio: float = SE_RATIO,
    ) -> None:
        mid = make_divisible(in_chs * expand, 8)
        layers: list[nn.Module] = []
        if mid != in_chs:
            layers.append(ConvBnAct(in_chs, mid, 1, norm_layer=norm_layer, act_layer=act_layer))
        layers.append(ConvBnAct(mid, mid, kernel, stride, groups=mid, norm_layer=norm_layer, act_layer=act_layer))
        layers += squeeze_excite(mid, in_chs, se_ratio, act_layer)
        # Linear bottleneck (MobileNet v2): no activation after the projection.
        layers.append(ConvBnAct(mid, out_chs, 1, norm_layer=norm_layer, act_layer=None))
        super().__init__(layers, in_chs, out_chs, stride, drop_path)


def without_first_downsampling(stages: Sequence[StageRow]) -> List[StageRow]:
    """The table with its first stride-2 stage at stride 1: with a stride-1 stem, total stride 8 for small images."""
    first = next(i for i, s in enumerate(stages) if s.stride == 2)
    return [s._replace(stride=1) if i == first else s for i, s in enumerate(stages)]


class MBConvNet(SequentialHeadModel):
    """3x3 stem -> stages of inverted bottlenecks -> 1x1 head conv -> pool -> dropout -> FC (EfficientNet v1, v2).

    Subclasses set ``num_classes``, ``in_chans`` and ``small_input``, then call :meth:`_build` with their stage
    table. Module names are torchvision's: ``features.0`` the stem, ``features.1..n`` the stages,
    ``features.n+1`` the head conv, ``classifier.1`` the FC.
    """

    small_input: bool = False

    def _build(
        self, stages: Sequence[StageRow], head_chs: int, drop_rate: float, drop_path_rate: float,
        norm_layer: Callable[..., nn.Module], act_layer: Callable[..., nn.Module] = nn.SiLU,
    ) -> None:
        """Build the network; ``small_input`` gives the stem and the first stride-2 stage stride 1."""
        stem_stride = 1 if self.small_input else STEM_STRIDE
        if self.small_input:
            stages = without_first_downsampling(stages)
        # Every layer is "same"-padded, so the total stride is the smallest input that reaches the last
        # stage as more than padding: 32 (8 with small_input).
        self.min_input_size = stem_stride * math.prod(s.stride for s in stages)

        layers: list[nn.Module] = [ConvBnAct(self.in_chans, stages[0].in_chs, 3, stem_stride,
                                             norm_layer=norm_layer, act_layer=act_layer)]
        total, idx = sum(s.repeats for s in stages), 0
        for s in stages:
            blocks = []
            for j in range(s.repeats):
                blocks.append(s.block(s.in_chs if j == 0 else s.out_chs, s.stride if j == 0 else 1,
                                      drop_path_rate * idx / total, norm_layer, act_layer))
                idx += 1
            layers.append(nn.Sequential(*blocks))
        self.num_features = head_chs
        layers.append(ConvBnAct(stages[-1].out_chs, head_chs, 1, norm_layer=norm_layer, act_layer=act_layer))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(drop_rate, inplace=True),
                                        linear_or_identity(self.num_features, self.num_classes))

        n = len(stages)
        self.stage_map = {"stem": ("features.0",)}
        self.stage_map.update({f"stage{i}": (f"features.{i}",) for i in range(1, n + 1)})
        self.stage_map.update({"conv_head": (f"features.{n + 1}",), "head": ("classifier",)})
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's init: He-normal (fan-out) convs, unit BN, uniform(+-1/sqrt(classes)) classifier.
        init_weights_default(self)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                r = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -r, r)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class EfficientNet(MBConvNet):
    """EfficientNet-B0 scaled by width / depth multipliers.

    Args:
        width_mult: channel multiplier ``w``; every width of Table 1 becomes ``make_divisible(c * w, 8)``.
        depth_mult: depth multiplier ``d``; every stage's repeats become ``ceil(n * d)``.
        drop_rate: dropout before the classifier.
        drop_path_rate: stochastic depth; block i of N drops its branch with ``rate * i / N`` (torchvision).
        phi: compound coefficient; when given, replaces ``width_mult`` and ``depth_mult`` by
            ``BETA**phi`` and ``ALPHA**phi`` (the paper's scaling of B0; train at ``224 * GAMMA**phi`` px).
        small_input: stride-1 stem and stride-1 first stride-2 stage (total stride 8), for 28-32 px images.
        bn_eps, bn_momentum: BatchNorm settings (PyTorch defaults; TensorFlow's 1e-3 / 0.01 for B5-B7).
    """

    def __init__(
        self, width_mult: float = 1.0, depth_mult: float = 1.0, num_classes: int = 1000, in_chans: int = 3,
        drop_rate: float = 0.2, drop_path_rate: float = DROP_PATH_RATE, phi: Optional[float] = None,
        small_input: bool = False, bn_eps: float = 1e-5, bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        if phi is not None:
            width_mult, depth_mult = BETA ** phi, ALPHA ** phi
        self.num_classes, self.in_chans, self.small_input = num_classes, in_chans, small_input
        self.width_mult, self.depth_mult, self.drop_rate = width_mult, depth_mult, drop_rate

        def width(c: int) -> int:
            return make_divisible(c * width_mult, 8)

        stages = [s._replace(in_chs=width(s.in_chs), out_chs=width(s.out_chs),
                             repeats=int(math.ceil(s.repeats * depth_mult))) for s in B0_STAGES]
        norm_layer = partial(nn.BatchNorm2d, eps=bn_eps, momentum=bn_momentum)
        self._build(stages, HEAD_MULT * stages[-1].out_chs, drop_rate, drop_path_rate, norm_layer)


def _create_efficientnet(variant: str, **kwargs) -> EfficientNet:
    s = VARIANTS[variant]
    bn = BATCHNORM.get(variant, {})
    defaults = dict(width_mult=s.width, depth_mult=s.depth, drop_rate=s.dropout,
                    bn_eps=bn.get("eps", 1e-5), bn_momentum=bn.get("momentum", 0.1))
    return EfficientNet(**dict(defaults, **kwargs))


_SMALL = SmallInput("option", {"small_input": True})


@register_model(family="EfficientNet", paper=EFFICIENTNET, input_size=VARIANTS["b0"].resolution,
                small_input=_SMALL, torchvision="efficientnet_b0")
def efficientnet_b0(**kwargs) -> EfficientNet:
    """EfficientNet-B0, the NAS-found baseline (w=1.0, d=1.0, 224 px); phi= scales it by the paper's rule."""
    return _create_efficientnet("b0", **kwargs)


@register_model(family="EfficientNet", paper=EFFICIENTNET, input_size=VARIANTS["b1"].resolution,
                small_input=_SMALL, torchvision="efficientnet_b1")
def efficientnet_b1(**kwargs) -> EfficientNet:
    """EfficientNet-B1: B0 with w=1.0, d=1.1 at 240 px."""
    return _create_efficientnet("b1", **kwargs)


@register_model(family="EfficientNet", paper=EFFICIENTNET, input_size=VARIANTS["b2"].resolution,
                small_input=_SMALL, torchvision="efficientnet_b2")
def efficientnet_b2(**kwargs) -> EfficientNet:
    """EfficientNet-B2: B0 with w=1.1, d=1.2 at 260 px."""
    return _create_efficientnet("b2", **kwargs)


@register_model(family="EfficientNet", paper=EFFICIENTNET, input_size=VARIANTS["b3"].resolution,
                small_input=_SMALL, torchvision="efficientnet_b3")
def efficientnet_b3(**kwargs) -> EfficientNet:
    """EfficientNet-B3: B0 with w=1.2, d=1.4 at 300 px."""
    return _create_efficientnet("b3", **kwargs)


@register_model(family="EfficientNet", paper=EFFICIENTNET, input_size=VARIANTS["b4"].resolution,
                small_input=_SMALL, torchvision="efficientnet_b4")
def efficientnet_b4(**kwargs) -> EfficientNet:
    """EfficientNet-B4: B0 with w=1.4, d=1.8 at 380 px."""
    return _create_efficientnet("b4", **kwargs)


@register_model(family="EfficientNet", paper=EFFICIENTNET, input_size=VARIANTS["b5"].resolution,
                small_input=_SMALL, torchvision="efficientnet_b5")
def efficientnet_b5(**kwargs) -> EfficientNet:
    """EfficientNet-B5: B0 with w=1.6, d=2.2 at 456 px."""
    return _create_efficientnet("b5", **kwargs)


@register_model(family="EfficientNet", paper=EFFICIENTNET, input_size=VARIANTS["b6"].resolution,
                small_input=_SMALL, torchvision="efficientnet_b6")
def efficientnet_b6(**kwargs) -> EfficientNet:
    """EfficientNet-B6: B0 with w=1.8, d=2.6 at 528 px."""
    return _create_efficientnet("b6", **kwargs)


@register_model(family="EfficientNet", paper=EFFICIENTNET, input_size=VARIANTS["b7"].resolution,
                small_input=_SMALL, torchvision="efficientnet_b7")
def efficientnet_b7(**kwargs) -> EfficientNet:
    """EfficientNet-B7: B0 with w=2.0, d=3.1 at 600 px (66.3M parameters)."""
    return _create_efficientnet("b7", **kwargs)
