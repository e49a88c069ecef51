"""airbench: the small VGG-like networks built for time to accuracy.

Keller Jordan, "94% on CIFAR-10 in 3.29 Seconds on a Single GPU", 2024 (https://arxiv.org/abs/2404.00498),
which carries on David Page's "How to Train Your ResNet" (2018) DAWNBench work. The network is a 2x2
"whitening" convolution and three conv groups, each ``conv 3x3 -> max-pool 2 -> BN -> GELU -> conv 3x3
-> BN -> GELU``, then a global max-pool and a bias-free linear layer whose output is scaled by 1/9.

Decisions:

* The paper initialises the 2x2 stem from the eigenvectors of the training patches' covariance and
  freezes it. A cnnzoo model is built before it sees data, so the stem here is an ordinary learnable
  2x2 convolution (bias, GELU, no BN); its width is the paper's ``2 x in_chans x 2 x 2`` (24 for RGB,
  8 for grey), which a whitening layer of +/- eigenvector pairs has.
* The paper's BatchNorm has frozen scale and momentum 0.6; here it is PyTorch's default BatchNorm, so
  the model trains with any cnnzoo recipe.
* The paper's lookahead optimiser, progressive freezing of the stem and its dirac initialisation of
  the second convolution of each group belong to its training script, not the architecture: they are
  left out. The recipe in ``configs/fast_fashion-mnist.yaml`` is cnnzoo's own.
* 28 x 28 and 32 x 32 images both run natively: 2x2 "valid" stem to 27 (31), then 13, 6, 3 (15, 7, 3).

Variants: ``airbench94`` is the paper's widths (64, 256, 256); ``airbench_cpu`` (16, 32, 64) is
cnnzoo's narrow one for training on a laptop-class CPU: on a 1x28x28 image 3.4M multiply-adds against
airbench94's 82.6M (and 7.7M for bn_convnet), chosen by measured time to accuracy (benchmarks/RESULTS.md).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ._spec import Paper, register_model
from ._base import ZooModel, linear_or_identity

__all__ = ["AirNet"]

AIRBENCH = Paper(
    "94% on CIFAR-10 in 3.29 Seconds on a Single GPU", "Jordan", 2024, "https://arxiv.org/abs/2404.00498",
)

# widths of the three conv groups: the paper's for airbench94, cnnzoo's narrow CPU variant
WIDTHS = {
    "airbench94": (64, 256, 256),
    "airbench_cpu": (16, 32, 64),
}
LOGIT_SCALE = 1 / 9  # the paper's scaling of the logits


class ConvGroup(nn.Sequential):
    """conv 3x3 -> max-pool 2 -> BN -> GELU -> conv 3x3 -> BN -> GELU (pooling halves H and W)."""

    def __init__(self, in_chs: int, out_chs: int) -> None:
        super().__init__(
            nn.Conv2d(in_chs, out_chs, 3, padding=1, bias=False),
            nn.MaxPool2d(2),
            nn.BatchNorm2d(out_chs),
            nn.GELU(),
            nn.Conv2d(out_chs, out_chs, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_chs),
            nn.GELU(),
        )


class AirNet(ZooModel):
    """2x2 stem, three ConvGroups, global max-pool, linear (scaled by ``logit_scale``).

    Args:
        widths: output channels of the three conv groups.
        num_classes: outputs; 0 gives the pooled ``widths[-1]`` features.
        in_chans: input channels; the stem has ``8 * in_chans`` filters.
        logit_scale: multiplies the logits (1/9 in the paper).
    """

    def __init__(
        self, widths: Sequence[int] = WIDTHS["airbench94"], num_classes: int = 10, in_chans: int = 3,
        logit_scale: float = LOGIT_SCALE,
    ) -> None:
        super().__init__()
        if len(widths) != 3:
            raise ValueError(f"airbench takes three group widths, got {tuple(widths)}")
        self.num_classes, self.in_chans, self.logit_scale = num_classes, in_chans, logit_scale
        stem = 2 * in_chans * 2 * 2
        self.stem = nn.Sequential(nn.Conv2d(in_chans, stem, 2, padding=0, bias=True), nn.GELU())
        chs = [stem, *widths]
        self.layers = nn.Sequential(*(ConvGroup(chs[i], chs[i + 1]) for i in range(3)))
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.num_features = widths[-1]
        self.fc = linear_or_identity(self.num_features, num_classes, bias=False)
        self.min_input_size = 9  # 2x2 valid stem, then three 2x pools down to 1
        self.stage_map = {"stem": ("stem",), **{f"group{i + 1}": (f"layers.{i}",) for i in range(3)},
                          "head": ("fc",)}

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.pool(x), 1)
        if pre_logits or self.num_classes == 0:
            return x
        return self.fc(x) * self.logit_scale

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.fc = linear_or_identity(self.num_features, num_classes, bias=False)


@register_model(family="airbench", paper=AIRBENCH, input_size=32)
def airbench94(**kwargs) -> AirNet:
    """airbench94: 2x2 stem, conv groups 64-256-256, max-pool, linear; built for CIFAR-10 time to accuracy."""
    return AirNet(**dict(dict(widths=WIDTHS["airbench94"]), **kwargs))


@register_model(family="airbench", paper=AIRBENCH, input_size=32)
def airbench_cpu(**kwargs) -> AirNet:
    """airbench, narrow (16-32-64) for CPU training: cnnzoo's variant of airbench94 at a quarter of its widths."""
    return AirNet(**dict(dict(widths=WIDTHS["airbench_cpu"]), **kwargs))
