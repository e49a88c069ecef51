"""EfficientNetV2: Tan, Le, "EfficientNetV2: Smaller Models and Faster Training", ICML 2021.

https://arxiv.org/abs/2104.00298

EfficientNetV2 keeps EfficientNet's stem / MBConv stages / 1x1 head conv, but a training-aware architecture
search (accuracy, training step time and parameters) puts *Fused-MBConv* in the early stages (section 3.2,
Figure 2): the 1x1 expansion and the k x k depthwise convolution of MBConv are fused into one regular k x k
convolution, faster on accelerators at high resolution. The found network, V2-S, is Table 4 of the paper; the
later stages are MBConv with Squeeze-and-Excitation. Every stage table (``VARIANTS``) is data: block kind,
expansion ratio, kernel, stride, channels, layers and SE ratio per row.

Follows torchvision (whose module names are kept, ``features.N.M.block.K`` and ``classifier.1``, so its state
dicts load unchanged and the outputs match):
  * the stage tables: S is the paper's Table 4; M and L are not printed in the paper and come from the official
    code (google/automl ``efficientnetv2``), with a seventh stage (304 -> 512, 384 -> 640 channels) that S lacks;
  * BatchNorm eps 1e-3 (TensorFlow's), momentum PyTorch's 0.1;
  * stochastic depth 0.2, rising linearly over the blocks; dropout before the classifier 0.2 / 0.3 / 0.4
    (S / M / L), the official configurations' values;
  * SE bottleneck 1/4 of the block's input channels with SiLU inside; a 1280-wide head conv for every variant;
  * a Fused-MBConv with expansion ratio 1 is a single k x k conv (with its activation), no projection.

Decisions (where it departs from the paper):
  * input size: the registered size is the evaluation size of Table 7 and of torchvision's weights, 384 / 480 /
    480 px, not the last training size of progressive learning (300 / 384 / 384 px): a model is evaluated and
    fine-tuned at the size its weights are measured at;
  * progressive learning (image size, dropout, RandAugment and mixup raised together during training,
    section 4) is a training recipe, not part of the architecture: dropout is fixed at the final value;
  * small images (``small_input=True``): as in ``efficientnet.py``, the stem gets stride 1 and the first stride-2
    stage (stage 2, Fused-MBConv 24 -> 48 in S) stride 1, so the total stride is 8 instead of 32
    (``min_input_size`` 8 instead of 32). Stages 1-6 of S then give 32-32-16-8-8-4 px maps for a 32x32 image
    and 28-28-14-7-7-4 px for a 28x28 one (M and L add a seventh stage at 4 px).
"""

from __future__ import annotations

from functools import partial
from typing import Callable, Dict, NamedTuple, Sequence, Tuple

from torch import nn

from ..layers import ConvBnAct, make_divisible
from ._spec import Paper, SmallInput, register_model
from .efficientnet import MBConv, MBConvNet, ResidualBlock, squeeze_excite

__all__ = ["EfficientNetV2", "FusedMBConv", "Stage", "Variant", "VARIANTS"]

EFFICIENTNET_V2 = Paper(
    "EfficientNetV2: Smaller Models and Faster Training",
    "Tan, Le", 2021, "https://arxiv.org/abs/2104.00298",
)


class Stage(NamedTuple):
    """One row of a stage table (Table 4 of the paper for V2-S)."""

    fused: bool  # Fused-MBConv (k x k expansion conv, no depthwise) or MBConv (1x1 expand, k x k depthwise)
    expand: int  # expansion ratio of the inverted bottleneck
    kernel: int  # k x k of the expansion (fused) or depthwise (MBConv) convolution
    stride: int  # stride of the stage's first block
    in_chs: int  # input channels
    out_chs: int  # output channels
    repeats: int  # layers (blocks) in the stage
    se: float  # SE bottleneck as a fraction of the block's input channels; 0 = no SE

    def block(self, in_chs: int, stride: int, drop_path: float, norm_layer: Callable[..., nn.Module],
              act_layer: Callable[..., nn.Module]) -> nn.Module:
        """One block of the stage (``in_chs`` and ``stride`` are the first block's or the rest's)."""
        kind = FusedMBConv if self.fused else MBConv
        return kind(in_chs, self.out_chs, self.expand, self.kernel, stride, drop_path, norm_layer, act_layer,
                    se_ratio=self.se)


class Variant(NamedTuple):
    """A released EfficientNetV2: its stage table, evaluation size and classifier dropout."""

    stages: Tuple[Stage, ...]
    resolution: int  # evaluation input size (Table 7; torchvision's weights)
    dropout: float  # dropout before the classifier (official configurations, torchvision)


# Stage 0 is the 3x3/2 stem to stages[0].in_chs channels; the last stage the 1x1 conv to HEAD_CHS, pooling, FC.
# Comments: a stage's output size at the variant's evaluation size.
VARIANTS: Dict[str, Variant] = {
    # Table 4 of the paper.
    "s": Variant((
        #     fused  t  k  s  in   out  n   se
        Stage(True, 1, 3, 1, 24, 24, 2, 0),  # 192x192
        Stage(True, 4, 3, 2, 24, 48, 4, 0),  # 96x96
        Stage(True, 4, 3, 2, 48, 64, 4, 0),  # 48x48
        Stage(False, 4, 3, 2, 64, 128, 6, 0.25),  # 24x24
        Stage(False, 6, 3, 1, 128, 160, 9, 0.25),  # 24x24
        Stage(False, 6, 3, 2, 160, 256, 15, 0.25),  # 12x12
    ), 384, 0.2),
    # The official code's efficientnetv2-m and -l (not tabulated in the paper).
    "m": Variant((
        Stage(True, 1, 3, 1, 24, 24, 3, 0),  # 240x240
        Stage(True, 4, 3, 2, 24, 48, 5, 0),  # 120x120
        Stage(True, 4, 3, 2, 48, 80, 5, 0),  # 60x60
        Stage(False, 4, 3, 2, 80, 160, 7, 0.25),  # 30x30
        Stage(False, 6, 3, 1, 160, 176, 14, 0.25),  # 30x30
        Stage(False, 6, 3, 2, 176, 304, 18, 0.25),  # 15x15
        Stage(False, 6, 3, 1, 304, 512, 5, 0.25),  # 15x15
    ), 480, 0.3),
    "l": Variant((
        Stage(True, 1, 3, 1, 32, 32, 4, 0),  # 240x240
        Stage(True, 4, 3, 2, 32, 64, 7, 0),  # 120x120
        Stage(True, 4, 3, 2, 64, 96, 7, 0),  # 60x60
        Stage(False, 4, 3, 2, 96, 192, 10, 0.25),  # 30x30
        Stage(False, 6, 3, 1, 192, 224, 19, 0.25),  # 30x30
        Stage(False, 6, 3, 2, 224, 384, 25, 0.25),  # 15x15
        Stage(False, 6, 3, 1, 384, 640, 7, 0.25),  # 15x15
    ), 480, 0.4),
}
HEAD_CHS = 1280  # the 1x1 head conv, the same width in every variant
DROP_PATH_RATE = 0.2
BN_EPS = 1e-3


class FusedMBConv(ResidualBlock):
    """Fused-MBConv (Figure 2): k x k expansion conv -> SE (if any) -> 1x1 linear projection.

    With expansion ratio 1 the block is the k x k conv alone, straight to the output channels.
    """

    def __init__(
        self, in_chs: int, out_chs: int, expand: int, kernel: int, stride: int, drop_path: float,
        norm_layer: Callable[..., nn.Module] = nn.BatchNorm2d, act_layer: Callable[..., nn.Module] = nn.SiLU,
        se_ratio: float = 0.0,
    ) -> None:
        mid = make_divisible(in_chs * expand, 8)
        expands = mid != in_chs
        width = mid if expands else out_chs
        layers: list[nn.Module] = [ConvBnAct(in_chs, width, kernel, stride, norm_layer=norm_layer, act_layer=act_layer)]
        layers += squeeze_excite(width, in_chs, se_ratio, act_layer)
        if expands:
            layers.append(ConvBnAct(mid, out_chs, 1, norm_layer=norm_layer, act_layer=None))
        super().__init__(layers, in_chs, out_chs, stride, drop_path)


class EfficientNetV2(MBConvNet):
    """EfficientNetV2 from a stage table.

    Args:
        stages: the stage table (``VARIANTS[...].stages``).
        drop_rate: dropout before the classifier.
        drop_path_rate: stochastic depth; block i of N drops its branch with ``rate * i / N`` (torchvision).
        small_input: stride-1 stem and stride-1 first stride-2 stage (total stride 8), for 28-32 px images.
        bn_eps, bn_momentum: BatchNorm settings (TensorFlow's eps 1e-3, PyTorch's momentum, as torchvision).
    """

    def __init__(
        self, stages: Sequence[Stage] = VARIANTS["s"].stages, num_classes: int = 1000, in_chans: int = 3,
        drop_rate: float = VARIANTS["s"].dropout, drop_path_rate: float = DROP_PATH_RATE, small_input: bool = False,
        bn_eps: float = BN_EPS, bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        self.num_classes, self.in_chans, self.small_input = num_classes, in_chans, small_input
        self.drop_rate = drop_rate
        norm_layer = partial(nn.BatchNorm2d, eps=bn_eps, momentum=bn_momentum)
        self._build(stages, HEAD_CHS, drop_rate, drop_path_rate, norm_layer)


def _create_efficientnet_v2(variant: str, **kwargs) -> EfficientNetV2:
    v = VARIANTS[variant]
    defaults = dict(stages=v.stages, drop_rate=v.dropout)
    return EfficientNetV2(**dict(defaults, **kwargs))


_SMALL = SmallInput("option", {"small_input": True})


@register_model(family="EfficientNetV2", paper=EFFICIENTNET_V2, input_size=VARIANTS["s"].resolution,
                small_input=_SMALL, torchvision="efficientnet_v2_s")
def efficientnet_v2_s(**kwargs) -> EfficientNetV2:
    """EfficientNetV2-S, the searched network of Table 4: three Fused-MBConv then three MBConv-SE stages, 384 px."""
    return _create_efficientnet_v2("s", **kwargs)


@register_model(family="EfficientNetV2", paper=EFFICIENTNET_V2, input_size=VARIANTS["m"].resolution,
                small_input=_SMALL, torchvision="efficientnet_v2_m")
def efficientnet_v2_m(**kwargs) -> EfficientNetV2:
    """EfficientNetV2-M: S scaled up, with a seventh stage (304 -> 512), 480 px."""
    return _create_efficientnet_v2("m", **kwargs)


@register_model(family="EfficientNetV2", paper=EFFICIENTNET_V2, input_size=VARIANTS["l"].resolution,
                small_input=_SMALL, torchvision="efficientnet_v2_l")
def efficientnet_v2_l(**kwargs) -> EfficientNetV2:
    """EfficientNetV2-L: S scaled up further, with a seventh stage (384 -> 640), 480 px."""
    return _create_efficientnet_v2("l", **kwargs)
