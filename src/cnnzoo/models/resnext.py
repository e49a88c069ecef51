"""ResNeXt: Xie, Girshick, Dollár, Tu, He, "Aggregated Residual Transformations for Deep Neural Networks", CVPR 2017.

https://arxiv.org/abs/1611.05431

A ResNeXt block aggregates ``C`` (the *cardinality*) parallel bottleneck paths of width ``d``. The
paper shows its three forms equivalent (Fig. 3) and implements the third: a ResNet bottleneck whose
3x3 convolution is grouped, ``C`` groups of ``d`` channels, between 1x1 convolutions of ``C x d``
channels. The width per group doubles with every stage, as the ResNet's widths do; a variant is named
``C x d`` by its first stage (``32x4d``: a 128-wide grouped 3x3 in conv2, 256 in conv3...).

* ImageNet (Table 1 of the paper, ``resnext50_32x4d``; ``resnext101_64x4d`` from Table 5;
  ``resnext101_32x8d`` is torchvision's): the ResNet-50/101 layout of ``resnet.py`` with
  ``groups = C`` and ``width_per_group = d``, exactly as torchvision builds them from its ResNet, so the
  module names, the stride on the 3x3 convolution and the weights are torchvision's. Small images:
  ``small_input=True`` (the 3x3 stride-1 stem without max-pool of ``resnet.py``).
* CIFAR (section 5.3, Table 7, ``resnext29_8x64d``, ``resnext29_16x64d``): a 3x3 convolution of 64
  filters, three stages of three bottleneck blocks (stage outputs 256-512-1024 on 32-16-8 px maps,
  grouped widths ``C x 64`` doubling per stage), global average pooling and the classifier; 29 layers.
  This is the same :class:`~cnnzoo.models.resnet.ResNet` with three stages and its CIFAR stem
  (``small_input=True`` is the paper's stem here, not an option), as in the authors' Torch code.

Decisions:
  * The projection shortcuts are 1x1 convolutions with BN (the paper's option B) wherever the shape
    changes, as torchvision and the authors' code.
  * Weight initialisation is ``resnet.py``'s (He-normal, fan-out), the authors' ``MSRinit``.
"""

from __future__ import annotations

from typing import Dict, NamedTuple, Tuple

from ._spec import Paper, register_model
from .resnet import _SMALL, Bottleneck, ResNet, _create_resnet

__all__ = ["Cardinality", "IMAGENET_VARIANTS", "CIFAR_VARIANTS", "CIFAR_BLOCKS", "CIFAR_STAGE_WIDTHS"]

RESNEXT = Paper(
    "Aggregated Residual Transformations for Deep Neural Networks",
    "Xie, Girshick, Dollár, Tu, He", 2017, "https://arxiv.org/abs/1611.05431",
)


class Cardinality(NamedTuple):
    """A ResNeXt's ``C x d`` template."""

    groups: int  # C: parallel paths, the groups of every 3x3 convolution
    width_per_group: int  # d: channels per path in the first stage (doubled per stage)


# ImageNet, Tables 1 and 5: (ResNet depth, whose blocks per stage are resnet.IMAGENET_DEPTHS; C x d template).
IMAGENET_VARIANTS: Dict[str, Tuple[int, Cardinality]] = {
    "resnext50_32x4d": (50, Cardinality(32, 4)),
    "resnext101_32x8d": (101, Cardinality(32, 8)),
    "resnext101_64x4d": (101, Cardinality(64, 4)),
}

# CIFAR, section 5.3: three stages of three blocks on 32-16-8 px maps. CIFAR_STAGE_WIDTHS are the bottlenecks'
# planes (x4: outputs 256-512-1024); the grouped width is C x d in the first stage and doubles with the planes.
CIFAR_BLOCKS = (3, 3, 3)
CIFAR_STAGE_WIDTHS = (64, 128, 256)
CIFAR_VARIANTS: Dict[str, Cardinality] = {
    "resnext29_8x64d": Cardinality(8, 64),
    "resnext29_16x64d": Cardinality(16, 64),
}


def _create_resnext(variant: str, **kwargs) -> ResNet:
    depth, card = IMAGENET_VARIANTS[variant]
    return _create_resnet(depth, **dict(card._asdict(), **kwargs))


def _create_cifar_resnext(variant: str, **kwargs) -> ResNet:
    defaults = dict(CIFAR_VARIANTS[variant]._asdict(), stage_widths=CIFAR_STAGE_WIDTHS, small_input=True)
    return ResNet(Bottleneck, CIFAR_BLOCKS, **dict(defaults, **kwargs))


@register_model(family="ResNeXt", paper=RESNEXT, small_input=_SMALL, torchvision="resnext50_32x4d")
def resnext50_32x4d(**kwargs) -> ResNet:
    """ResNeXt-50 (32x4d): ResNet-50 with 32-group 3x3 convolutions, 25.0M parameters."""
    return _create_resnext("resnext50_32x4d", **kwargs)


@register_model(family="ResNeXt", paper=RESNEXT, small_input=_SMALL, torchvision="resnext101_32x8d")
def resnext101_32x8d(**kwargs) -> ResNet:
    """ResNeXt-101 (32x8d): ResNet-101 with 32 groups of 8 channels in the first stage, 88.8M parameters."""
    return _create_resnext("resnext101_32x8d", **kwargs)


@register_model(family="ResNeXt", paper=RESNEXT, small_input=_SMALL, torchvision="resnext101_64x4d")
def resnext101_64x4d(**kwargs) -> ResNet:
    """ResNeXt-101 (64x4d): ResNet-101 with 64 groups of 4 channels in the first stage, 83.5M parameters."""
    return _create_resnext("resnext101_64x4d", **kwargs)


@register_model(family="ResNeXt (CIFAR)", paper=RESNEXT, input_size=32)
def resnext29_8x64d(**kwargs) -> ResNet:
    """CIFAR ResNeXt-29 (8x64d): three stages of three bottlenecks, 256-512-1024 wide, 34.4M parameters."""
    return _create_cifar_resnext("resnext29_8x64d", **kwargs)


@register_model(family="ResNeXt (CIFAR)", paper=RESNEXT, input_size=32)
def resnext29_16x64d(**kwargs) -> ResNet:
    """CIFAR ResNeXt-29 (16x64d): three stages of three bottlenecks, 256-512-1024 wide, 68.1M parameters."""
    return _create_cifar_resnext("resnext29_16x64d", **kwargs)
