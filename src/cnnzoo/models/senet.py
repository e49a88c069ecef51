"""SENet: Hu, Shen, Albanie, Sun, Wu, "Squeeze-and-Excitation Networks", CVPR 2018 / TPAMI 2019.

SE-ResNets are ResNets whose every residual branch ends in a Squeeze-and-Excitation block
(reduction ratio r = 16, section 6.1) before the addition; the block itself is
``cnnzoo.layers.SqueezeExcite`` and any ResNet takes it as ``se_reduction=16``.
"""

from __future__ import annotations

from ._spec import Paper, SmallInput, register_model
from .resnet import ResNet, _create_resnet

SENET = Paper("Squeeze-and-Excitation Networks", "Hu, Shen, Albanie, Sun, Wu", 2018,
              "https://arxiv.org/abs/1709.01507")
REDUCTION = 16  # the paper's r, chosen in Table 10 as the accuracy/complexity trade-off

_SMALL = SmallInput("option", {"small_input": True})


@register_model(family="SENet", paper=SENET, small_input=_SMALL)
def seresnet18(**kwargs) -> ResNet:
    """SE-ResNet-18: ResNet-18 with an SE block (r=16) in every basic block."""
    return _create_resnet(18, **dict(dict(se_reduction=REDUCTION), **kwargs))


@register_model(family="SENet", paper=SENET, small_input=_SMALL)
def seresnet50(**kwargs) -> ResNet:
    """SE-ResNet-50: ResNet-50 with an SE block (r=16) in every bottleneck (28.09M parameters)."""
    return _create_resnet(50, **dict(dict(se_reduction=REDUCTION), **kwargs))
