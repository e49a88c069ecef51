"""Xception: Chollet, "Xception: Deep Learning with Depthwise Separable Convolutions", CVPR 2017.
https://arxiv.org/abs/1610.02357

Inception taken to its extreme: every Inception module becomes a depthwise separable convolution
(a 3x3 depthwise convolution, then a 1x1 pointwise one, with no non-linearity between them, which
section 4.7 finds best). Figure 5: 36 convolutions in 14 modules, all but the first and last with
residual connections:

* entry flow: 3x3/2 conv 32, 3x3 conv 64 (both unpadded), then three blocks of two separable
  convolutions (128, 256, 728) ending in a 3x3/2 max pool, with 1x1/2 projection shortcuts;
* middle flow: eight blocks of three ReLU -> separable 728 -> BN, identity shortcuts;
* exit flow: a block 728 -> 1024 (3x3/2 max pool, projection shortcut), then separable 1536 and
  2048 with ReLU, global average pooling and the classifier.

Every convolution is followed by BatchNorm. 22,855,952 parameters, the figure of the paper's
Table 3. Module names are those of the Keras-ported model in timm (``legacy_xception``), so its
weights load unchanged.

Small images: ``small_input=True`` makes the first convolution stride 1, so a 32x32 image reaches
the middle flow at 4x4 (instead of 2x2) and the exit flow's last convolutions at 2x2; the network
is otherwise unchanged. Without it the stem's two unpadded 3x3 convolutions need 7 px.
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import nn

from ._spec import Paper, SmallInput, register_model
from ._base import PooledFcModel, init_weights_default, linear_or_identity, min_size_for

__all__ = ["Xception", "SeparableConv2d", "XceptionBlock", "ENTRY_FLOW", "MIDDLE_FLOW", "EXIT_FLOW"]

XCEPTION = Paper(
    "Xception: Deep Learning with Depthwise Separable Convolutions", "Chollet", 2017,
    "https://arxiv.org/abs/1610.02357",
)

# Figure 5, one row per residual block.
BlockSpec = Tuple[int, int, int, bool, bool]
ENTRY_FLOW: Tuple[BlockSpec, ...] = (
    # out  separable convs  stride  ReLU first  widen at the first conv (else at the last)
    (128, 2, 2, False, True),  # the stem's ReLU already precedes it
    (256, 2, 2, True, True),
    (728, 2, 2, True, True),
)
MIDDLE_FLOW: Tuple[BlockSpec, ...] = ((728, 3, 1, True, True),) * 8
EXIT_FLOW: Tuple[BlockSpec, ...] = ((1024, 2, 2, True, False),)  # separable 728, then 1024
STEM = ((32, 2), (64, 1))  # unpadded 3x3 convolutions: (out channels, stride)
EXIT_CONVS = (1536, 2048)  # separable convolutions after the last block, each with BN and ReLU
DROP_RATE = 0.5  # section 4.3: dropout 0.5 before the logistic regression layer on ImageNet


class SeparableConv2d(nn.Module):
    """Depthwise k x k then pointwise 1x1, no bias, no norm or activation in between (section 4.7).

    The depthwise convolution is called ``conv1`` as in timm's ported Keras model.
    """

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 3, stride: int = 1, padding: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_chs, in_chs, kernel_size, stride, padding, groups=in_chs, bias=False)
        self.pointwise = nn.Conv2d(in_chs, out_chs, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.conv1(x))


class XceptionBlock(nn.Module):
    """``reps`` x (ReLU -> separable 3x3 -> BN), an optional 3x3/2 max pool, plus a shortcut.

    The shortcut is a 1x1 convolution (strided like the block) with BN when the width or the grid
    changes, the identity otherwise.
    """

    def __init__(self, in_chs: int, out_chs: int, reps: int, stride: int = 1, start_with_relu: bool = True,
                 grow_first: bool = True) -> None:
        super().__init__()
        if out_chs != in_chs or stride != 1:
            self.skip = nn.Conv2d(in_chs, out_chs, 1, stride, bias=False)
            self.skipbn = nn.BatchNorm2d(out_chs)
        else:
            self.skip, self.skipbn = None, None
        layers = []
        for i in range(reps):
            if grow_first:  # the first convolution widens, the others keep the width
                cin, cout = (in_chs if i == 0 else out_chs), out_chs
            else:  # the last convolution widens (the exit flow's 728 -> 1024)
                cin, cout = in_chs, (out_chs if i == reps - 1 else in_chs)
            # Not in place at the block input, which the shortcut still needs.
            layers += [nn.ReLU(inplace=i > 0), SeparableConv2d(cin, cout), nn.BatchNorm2d(cout)]
        if not start_with_relu:
            layers = layers[1:]
        if stride != 1:
            layers.append(nn.MaxPool2d(3, stride, 1))
        self.rep = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.skip is None else self.skipbn(self.skip(x))
        return self.rep(x) + shortcut


class Xception(PooledFcModel):
    """Xception (Figure 5), flows built from ``ENTRY_FLOW``, ``MIDDLE_FLOW``, ``EXIT_FLOW``.

    Args:
        num_classes: classifier outputs; 0 gives pooled features.
        in_chans: input channels.
        small_input: stride-1 first convolution, for 28-32 px images.
        drop_rate: dropout before the classifier (0.5, the paper's ImageNet setting).
    """

    def __init__(self, num_classes: int = 1000, in_chans: int = 3, small_input: bool = False,
                 drop_rate: float = DROP_RATE) -> None:
        super().__init__()
        self.num_classes, self.in_chans, self.small_input = num_classes, in_chans, small_input
        (c1, s1), (c2, s2) = STEM
        s1 = 1 if small_input else s1
        self.conv1 = nn.Conv2d(in_chans, c1, 3, s1, 0, bias=False)
        self.bn1 = nn.BatchNorm2d(c1)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c1, c2, 3, s2, 0, bias=False)
        self.bn2 = nn.BatchNorm2d(c2)
        self.act2 = nn.ReLU(inplace=True)
        # The unpadded stem convolutions are the only layers that need a minimum size.
        self.min_input_size = min_size_for([(3, s1, 0), (3, s2, 0)])

        chs, names = c2, {"entry": [], "middle": [], "exit": []}
        flows = (("entry", ENTRY_FLOW), ("middle", MIDDLE_FLOW), ("exit", EXIT_FLOW))
        i = 0
        for flow, specs in flows:
            for out, reps, stride, relu_first, grow_first in specs:
                i += 1
                setattr(self, f"block{i}", XceptionBlock(chs, out, reps, stride, relu_first, grow_first))
                names[flow].append(f"block{i}")
                chs = out
        self._blocks = [n for flow in names.values() for n in flow]
        c3, c4 = EXIT_CONVS
        self.conv3 = SeparableConv2d(chs, c3)
        self.bn3 = nn.BatchNorm2d(c3)
        self.act3 = nn.ReLU(inplace=True)
        self.conv4 = SeparableConv2d(c3, c4)
        self.bn4 = nn.BatchNorm2d(c4)
        self.act4 = nn.ReLU(inplace=True)

        self.num_features = c4
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.drop_rate = drop_rate
        self.fc = linear_or_identity(c4, num_classes)
        self.stage_map = {
            "stem": ("conv1", "bn1", "conv2", "bn2"),
            "entry_flow": tuple(names["entry"]),
            "middle_flow": tuple(names["middle"]),
            "exit_flow": tuple(names["exit"]) + ("conv3", "bn3", "conv4", "bn4"),
            "head": ("fc",),
        }
        init_weights_default(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.act2(self.bn2(self.conv2(x)))
        for name in self._blocks:
            x = getattr(self, name)(x)
        x = self.act3(self.bn3(self.conv3(x)))
        return self.act4(self.bn4(self.conv4(x)))



def _create_xception(**kwargs) -> Xception:
    return Xception(**kwargs)


@register_model(family="Xception", paper=XCEPTION, input_size=299,
                small_input=SmallInput("option", {"small_input": True}))
def xception(**kwargs) -> Xception:
    """Xception: entry, middle (8 blocks) and exit flows of depthwise separable convolutions, 22.9M parameters."""
    return _create_xception(**kwargs)
