"""SENet: Hu, Shen, Albanie, Sun, Wu, "Squeeze-and-Excitation Networks", CVPR 2018 / TPAMI 2019.

https://arxiv.org/abs/1709.01507

SE-ResNets and SE-ResNeXts are ResNets and ResNeXts whose every residual branch ends in a
Squeeze-and-Excitation block (reduction ratio r = 16, section 6.1) after its last BatchNorm, before
the addition (Fig. 3); the block itself is ``cnnzoo.layers.SqueezeExcite`` and any ResNet takes it as
``se_reduction=16``. SE-ResNeXt-50 (32x4d, Table 2) is ``resnext.py``'s ResNeXt-50 with it: 27,559,896
parameters for 1000 classes, timm's and Cadene's ``se_resnext50_32x4d`` count. Unlike those ports (a
``layer0`` stem, ``last_linear``), the module names are torchvision's ResNeXt's, plus ``se`` per block.
"""

from __future__ import annotations

from ._spec import Paper, register_model
from .resnet import _SMALL, ResNet, _create_resnet
from .resnext import _create_resnext

SENET = Paper("Squeeze-and-Excitation Networks", "Hu, Shen, Albanie, Sun, Wu", 2018,
              "https://arxiv.org/abs/1709.01507")
REDUCTION = 16  # the paper's r, chosen in Table 10 as the accuracy/complexity trade-off


@register_model(family="SENet", paper=SENET, small_input=_SMALL)
def seresnet18(**kwargs) -> ResNet:
    """SE-ResNet-18: ResNet-18 with an SE block (r=16) in every basic block."""
    return _create_resnet(18, **dict(dict(se_reduction=REDUCTION), **kwargs))


@register_model(family="SENet", paper=SENET, small_input=_SMALL)
def seresnet50(**kwargs) -> ResNet:
    """SE-ResNet-50: ResNet-50 with an SE block (r=16) in every bottleneck (28.09M parameters)."""
    return _create_resnet(50, **dict(dict(se_reduction=REDUCTION), **kwargs))


@register_model(family="SENet", paper=SENET, small_input=_SMALL)
def se_resnext50_32x4d(**kwargs) -> ResNet:
    """SE-ResNeXt-50 (32x4d): ResNeXt-50 with an SE block (r=16) in every bottleneck (27.56M parameters)."""
    return _create_resnext("resnext50_32x4d", **dict(dict(se_reduction=REDUCTION), **kwargs))
