"""VGG: Simonyan, Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition", ICLR 2015
(https://arxiv.org/abs/1409.1556).

Configurations A, B, D and E of Table 1 (VGG-11/13/16/19): stacks of 3x3 stride-1 padding-1
convolutions with ReLU, five 2x2 stride-2 max-pools, then FC 4096 - 4096 - classes with dropout 0.5
on the two hidden layers. The ``_bn`` variants put BatchNorm after every convolution (Ioffe &
Szegedy 2015, not in the paper). Module names, the 7x7 adaptive average pool and the initialisation
are torchvision's, so its weights load unchanged. The paper's A-LRN and C (1x1 convolutions) are
not built.

Warm start (section 3.1): the deeper configurations were trained starting from the trained net A -- its first
four convolutional layers and its three FC layers, the layers between initialised randomly. ``layer_table`` names
every weight layer as the paper's Caffe model does (``conv1_1`` ... ``conv5_3``, ``fc6``-``fc8``: stage and
position in Table 1's column) and ``warm_start_layers`` says which of a source net's layers start this one, by
those names; ``cnnzoo.transfer.warm_start`` copies them.

Small images: ``small_input=True`` gives the usual CIFAR VGG -- the fifth max-pool is dropped (a
32-px image is 2x2 there rather than 1x1, and a 28-px one still fits), the head is global average
pooling + FC 512 - 512 - classes. Without it VGG runs from 32 px (the 1x1 map is replicated to
7x7 by the adaptive pool) but 28 px is too small for five pools.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ._spec import Paper, SmallInput, register_model
from ._base import SequentialHeadModel, init_weights_default, linear_or_identity, min_size_for

__all__ = ["VGG", "cfgs"]

VGGNET = Paper(
    "Very Deep Convolutional Networks for Large-Scale Image Recognition",
    "Simonyan, Zisserman", 2015, "https://arxiv.org/abs/1409.1556",
)

# Table 1: conv widths (every conv 3x3, stride 1, padding 1) and "M" for 2x2 stride-2 max-pooling.
cfgs: Dict[str, List[Union[int, str]]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],  # VGG-11
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],  # VGG-13
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],  # VGG-16
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],  # 19
}
FC_WIDTH = 4096  # FC6, FC7
WARM_START_CONVS = 4  # section 3.1: "the first four convolutional layers and the last three fully-connected layers"
POOL_SIZE = 7  # the 7x7 maps FC6 sees at 224 px
SMALL_FC_WIDTH = 512  # the CIFAR head's hidden FC layers


class VGG(SequentialHeadModel):
    """A VGG configuration.

    Args:
        cfg: a list of ``cfgs`` (conv widths and ``"M"`` pools).
        num_classes: outputs; 0 gives the features of FC7.
        in_chans: input channels.
        norm_layer: ``nn.BatchNorm2d`` after every convolution for the ``_bn`` variants.
        small_input: CIFAR-style: no fifth max-pool, global average pooling, FC 512 - 512.
        drop_rate: dropout after FC6 and FC7 (0.5 in the paper).
    """

    def __init__(
        self, cfg: Sequence[Union[int, str]], num_classes: int = 1000, in_chans: int = 3,
        norm_layer: Optional[Callable[..., nn.Module]] = None, small_input: bool = False, drop_rate: float = 0.5,
    ) -> None:
        super().__init__()
        self.num_classes, self.in_chans, self.small_input = num_classes, in_chans, small_input
        layers: List[nn.Module] = []
        sizes, stages, start, chs = [], {}, 0, in_chans
        self.has_norm = norm_layer is not None
        # The paper's layer names -> the module paths of the layer (its convolution, and its norm for _bn).
        self.layer_table: Dict[str, Tuple[str, ...]] = {}
        last_pool = max(i for i, v in enumerate(cfg) if v == "M")
        in_stage = 0  # convolutions so far in the current stage
        for i, v in enumerate(cfg):
            if v == "M":
                if small_input and i == last_pool:
                    layers.append(nn.Identity())  # keeps torchvision's indices for the convolutions
                else:
                    layers.append(nn.MaxPool2d(2, 2))
                    sizes.append((2, 2, 0))
                stages[f"stage{len(stages) + 1}"] = tuple(f"features.{j}" for j in range(start, len(layers)))
                start, in_stage = len(layers), 0
            else:
                in_stage += 1
                norm_path = (f"features.{len(layers) + 1}",) if norm_layer is not None else ()
                self.layer_table[f"conv{len(stages) + 1}_{in_stage}"] = (f"features.{len(layers)}", *norm_path)
                layers.append(nn.Conv2d(chs, int(v), 3, padding=1))
                if norm_layer is not None:
                    layers.append(norm_layer(int(v)))
                layers.append(nn.ReLU(inplace=True))
                sizes.append((3, 1, 1))
                chs = int(v)
        self.features = nn.Sequential(*layers)
        pool, width = (1, SMALL_FC_WIDTH) if small_input else (POOL_SIZE, FC_WIDTH)
        self.avgpool = nn.AdaptiveAvgPool2d((pool, pool))
        self.num_features = width
        self.classifier = nn.Sequential(
            nn.Linear(chs * pool * pool, width), nn.ReLU(True), nn.Dropout(drop_rate),
            nn.Linear(width, width), nn.ReLU(True), nn.Dropout(drop_rate),
            linear_or_identity(width, num_classes),
        )
        self.min_input_size = min_size_for(sizes)
        self.stage_map = {**stages, "fc": ("classifier.0", "classifier.3"), "head": ("classifier.6",)}
        self.layer_table.update(fc6=("classifier.0",), fc7=("classifier.3",), fc8=("classifier.6",))
        init_weights_default(self)  # torchvision's: Kaiming-normal (fan-out) convs, N(0, 0.01) linears

    def warm_start_layers(self, source: nn.Module) -> List[str]:
        """The layers of ``source`` (a trained VGG) that start this one, by name (section 3.1): its first four
        convolutional layers and its three FC layers, each into the layer of the same name here.

        Raises:
            ValueError: ``source`` is no VGG, has BatchNorm where this one has none (or the reverse), has no
                classifier, or has a layer this one lacks (a deeper source).
        """
        mine = self.model_name or type(self).__name__
        if not isinstance(source, VGG):
            raise ValueError(f"is a {getattr(source, 'model_name', '') or type(source).__name__}, not a VGG: warm "
                             f"start copies a VGG's layers into a deeper VGG (section 3.1); pass a run of vgg11")
        theirs = source.model_name or "the source"
        if source.has_norm != self.has_norm:
            if source.has_norm:
                which = f"{theirs} has BatchNorm and {mine} has none: start {mine} from a plain VGG's run"
            else:
                which = f"{theirs} has no BatchNorm and {mine} has: start {mine} from a {theirs}_bn run"
            raise ValueError(f"cannot start {mine}: {which}")
        convs = [n for n in source.layer_table if n.startswith("conv")][:WARM_START_CONVS]
        names = convs + ["fc6", "fc7", "fc8"]
        if not source.num_classes:
            raise ValueError(f"is {theirs} without a classifier (num_classes=0): it has no fc8 to copy")
        if not self.num_classes:
            raise ValueError(f"cannot start {mine} without a classifier (num_classes=0): fc8 has nowhere to go")
        missing = [n for n in names if n not in self.layer_table]
        if missing:
            raise ValueError(f"cannot start {mine} from {theirs}: {mine} has no {', '.join(missing)} (the source "
                             f"must be as shallow as {mine} or shallower: vgg11 for vgg13/16/19)")
        return names

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def init_classifier(self, layer: nn.Linear) -> None:
        init_weights_default(layer)


def _create_vgg(cfg: str, batch_norm: bool, **kwargs) -> VGG:
    return VGG(cfgs[cfg], **dict(dict(norm_layer=nn.BatchNorm2d if batch_norm else None), **kwargs))


_SMALL = SmallInput("option", {"small_input": True})


@register_model(family="VGG", paper=VGGNET, small_input=_SMALL, torchvision="vgg11")
def vgg11(**kwargs) -> VGG:
    """VGG-11 (configuration A): 8 conv + 3 FC layers, 132.9M parameters."""
    return _create_vgg("A", False, **kwargs)


@register_model(family="VGG", paper=VGGNET, small_input=_SMALL, torchvision="vgg13")
def vgg13(**kwargs) -> VGG:
    """VGG-13 (configuration B): 10 conv + 3 FC layers, 133.0M parameters."""
    return _create_vgg("B", False, **kwargs)


@register_model(family="VGG", paper=VGGNET, small_input=_SMALL, torchvision="vgg16")
def vgg16(**kwargs) -> VGG:
    """VGG-16 (configuration D): 13 conv + 3 FC layers, 138.4M parameters."""
    return _create_vgg("D", False, **kwargs)


@register_model(family="VGG", paper=VGGNET, small_input=_SMALL, torchvision="vgg19")
def vgg19(**kwargs) -> VGG:
    """VGG-19 (configuration E): 16 conv + 3 FC layers, 143.7M parameters."""
    return _create_vgg("E", False, **kwargs)


@register_model(family="VGG", paper=VGGNET, small_input=_SMALL, torchvision="vgg11_bn")
def vgg11_bn(**kwargs) -> VGG:
    """VGG-11 with BatchNorm after every convolution."""
    return _create_vgg("A", True, **kwargs)


@register_model(family="VGG", paper=VGGNET, small_input=_SMALL, torchvision="vgg13_bn")
def vgg13_bn(**kwargs) -> VGG:
    """VGG-13 with BatchNorm after every convolution."""
    return _create_vgg("B", True, **kwargs)


@register_model(family="VGG", paper=VGGNET, small_input=_SMALL, torchvision="vgg16_bn")
def vgg16_bn(**kwargs) -> VGG:
    """VGG-16 with BatchNorm after every convolution."""
    return _create_vgg("D", True, **kwargs)


@register_model(family="VGG", paper=VGGNET, small_input=_SMALL, torchvision="vgg19_bn")
def vgg19_bn(**kwargs) -> VGG:
    """VGG-19 with BatchNorm after every convolution."""
    return _create_vgg("E", True, **kwargs)
