"""SqueezeNet: Iandola, Han, Moskewicz, Ashraf, Dally, Keutzer, "SqueezeNet: AlexNet-level accuracy with 50x
fewer parameters and <0.5MB model size", 2016.

https://arxiv.org/abs/1602.07360

The building block is the *Fire module*: a 1x1 "squeeze" convolution to few channels, then an
"expand" layer of 1x1 and 3x3 convolutions whose outputs are concatenated (section 3.1,
strategies 1 and 2: fewer 3x3 filters, fewer channels entering them). There are no FC layers:
a 1x1 convolution to ``num_classes`` maps, ReLU and global average pooling classify (after
dropout 0.5, section 3.3.1); max-pools are placed late (strategy 3).

* ``squeezenet1_0``: Table 1 of the paper (7x7/2 stem with 96 filters, pools after conv1, fire4, fire8).
* ``squeezenet1_1``: the authors' v1.1 from the SqueezeNet repository: a 3x3/2 stem with 64 filters
  and the pools moved earlier (after conv1, fire3, fire5), 2.4x less computation, same accuracy.

Module names are torchvision's (``features.N.squeeze``/``expand1x1``/``expand3x3``, ``classifier.1``),
so its weights load unchanged and the outputs match. The max-pools use ``ceil_mode=True`` (Caffe's
rounding), which ``min_input_size`` accounts for.

Small images (``small_input=True``): the stem becomes a 3x3 stride-1 convolution (same width) and the
first max-pool an identity (kept as a placeholder, so every later ``features.N`` keeps its index and
``squeezenet1_1``'s torchvision weights still load). The total stride is then 4 instead of 16: a
32x32 image gives 32-16-8 px maps to the three groups of Fire modules (28-14-7 for 28x28), and the
classifier sees an 8x8 (7x7) map instead of 1x1.
"""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Tuple, Union

import torch
from torch import nn

from ._spec import Paper, SmallInput, register_model
from ._base import ZooModel, min_size_for

__all__ = ["SqueezeNet", "Fire", "CONFIGS"]

SQUEEZENET = Paper(
    "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and <0.5MB model size",
    "Iandola, Han, Moskewicz, Ashraf, Dally, Keutzer", 2016, "https://arxiv.org/abs/1602.07360",
)


class SqueezeConfig(NamedTuple):
    """One SqueezeNet version: the stem convolution and the layers after it."""

    stem: Tuple[int, int, int]  # (filters, kernel, stride) of conv1, unpadded
    layers: List[Union[str, Tuple[int, int, int]]]  # "M": 3x3/2 max-pool; else a Fire (squeeze, expand1x1, expand3x3)


M = "M"
# Table 1 (v1.0) and the v1.1 release; comments give the output size for a 224x224 input.
CONFIGS: Dict[str, SqueezeConfig] = {
    "1_0": SqueezeConfig(
        (96, 7, 2),  # conv1: 109x109
        [
            M,  # maxpool1: 54x54
            (16, 64, 64), (16, 64, 64), (32, 128, 128),  # fire2-4
            M,  # maxpool4: 27x27
            (32, 128, 128), (48, 192, 192), (48, 192, 192), (64, 256, 256),  # fire5-8
            M,  # maxpool8: 13x13
            (64, 256, 256),  # fire9
        ],
    ),
    "1_1": SqueezeConfig(
        (64, 3, 2),  # conv1: 111x111
        [
            M,  # maxpool1: 55x55
            (16, 64, 64), (16, 64, 64),  # fire2-3
            M,  # maxpool3: 27x27
            (32, 128, 128), (32, 128, 128),  # fire4-5
            M,  # maxpool5: 13x13
            (48, 192, 192), (48, 192, 192), (64, 256, 256), (64, 256, 256),  # fire6-9
        ],
    ),
}
DROPOUT = 0.5  # after fire9 (section 3.3.1)


class Fire(nn.Module):
    """Fire module: squeeze 1x1 -> ReLU -> [expand 1x1 -> ReLU, expand 3x3 -> ReLU] concatenated."""

    def __init__(self, in_chs: int, squeeze: int, expand1x1: int, expand3x3: int) -> None:
        super().__init__()
        self.squeeze = nn.Conv2d(in_chs, squeeze, 1)
        self.squeeze_activation = nn.ReLU(inplace=True)
        self.expand1x1 = nn.Conv2d(squeeze, expand1x1, 1)
        self.expand1x1_activation = nn.ReLU(inplace=True)
        # Padding 1 so both expand outputs have the same size and can be concatenated (section 3.3).
        self.expand3x3 = nn.Conv2d(squeeze, expand3x3, 3, padding=1)
        self.expand3x3_activation = nn.ReLU(inplace=True)
        self.out_channels = expand1x1 + expand3x3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat([self.expand1x1_activation(self.expand1x1(x)),
                          self.expand3x3_activation(self.expand3x3(x))], 1)


class SqueezeNet(ZooModel):
    """SqueezeNet v1.0 / v1.1.

    Args:
        version: ``"1_0"`` or ``"1_1"`` (a key of ``CONFIGS``).
        drop_rate: dropout before the classifier convolution.
        small_input: 3x3 stride-1 stem and no first max-pool (total stride 4), for 28-32 px images.
    """

    def __init__(self, version: str = "1_0", num_classes: int = 1000, in_chans: int = 3, drop_rate: float = DROPOUT,
                 small_input: bool = False) -> None:
        super().__init__()
        if version not in CONFIGS:
            raise ValueError(f"unknown SqueezeNet version {version!r}; choose from {', '.join(CONFIGS)}")
        cfg = CONFIGS[version]
        self.num_classes, self.in_chans, self.small_input = num_classes, in_chans, small_input
        self.version, self.drop_rate = version, drop_rate

        width, kernel, stride = cfg.stem
        stem = (3, 1, 1) if small_input else (kernel, stride, 0)
        layers: list[nn.Module] = [nn.Conv2d(in_chans, width, stem[0], stem[1], stem[2]), nn.ReLU(inplace=True)]
        sizes = [stem]  # (kernel, stride, padding, dilation, ceil) of every size-changing layer, for min_input_size
        self.stage_map: Dict[str, Tuple[str, ...]] = {"stem": ("features.0",)}
        chs, stage, first_pool = width, [], True
        for item in cfg.layers:
            idx = len(layers)
            if item == M:
                if stage:
                    self.stage_map[f"stage{len(self.stage_map)}"] = tuple(stage)
                    stage = []
                if small_input and first_pool:
                    layers.append(nn.Identity())
                else:
                    layers.append(nn.MaxPool2d(3, 2, ceil_mode=True))
                    sizes.append((3, 2, 0, 1, True))
                first_pool = False
            else:
                fire = Fire(chs, *item)
                layers.append(fire)
                chs = fire.out_channels
                stage.append(f"features.{idx}")
        self.stage_map[f"stage{len(self.stage_map)}"] = tuple(stage)
        self.features = nn.Sequential(*layers)
        self.min_input_size = min_size_for(sizes)

        self.num_features = chs
        self.classifier = nn.Sequential(
            nn.Dropout(drop_rate), self._final_conv(num_classes), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1),
        )
        self.stage_map["head"] = ("classifier",)
        self._init_weights()

    def _final_conv(self, num_classes: int) -> nn.Module:
        # conv10 replaces the FC layers; with num_classes=0 the pooled 512 features come out instead.
        if num_classes <= 0:
            return nn.Identity()
        conv = nn.Conv2d(self.num_features, num_classes, 1)
        # torchvision: a small normal init for the classifier, so the initial logits (after ReLU) are near zero.
        nn.init.normal_(conv.weight, 0.0, 0.01)
        nn.init.zeros_(conv.bias)
        return conv

    def _init_weights(self) -> None:
        # torchvision's init: He-uniform for every convolution but the classifier (see _final_conv), zero biases.
        for m in self.features.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if pre_logits:
            return torch.flatten(self.classifier[3](self.classifier[0](x)), 1)
        return torch.flatten(self.classifier(x), 1)

    def get_classifier(self) -> nn.Module:
        return self.classifier[1]

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.classifier[1] = self._final_conv(num_classes)


def _create_squeezenet(version: str, **kwargs) -> SqueezeNet:
    return SqueezeNet(version, **kwargs)


_SMALL = SmallInput("option", {"small_input": True})


@register_model(family="SqueezeNet", paper=SQUEEZENET, small_input=_SMALL, torchvision="squeezenet1_0")
def squeezenet1_0(**kwargs) -> SqueezeNet:
    """SqueezeNet v1.0 (Table 1): 8 Fire modules, 1.25M parameters."""
    return _create_squeezenet("1_0", **kwargs)


@register_model(family="SqueezeNet", paper=SQUEEZENET, small_input=_SMALL, torchvision="squeezenet1_1")
def squeezenet1_1(**kwargs) -> SqueezeNet:
    """SqueezeNet v1.1: 3x3 stem and earlier pooling, 2.4x cheaper than v1.0 at the same accuracy."""
    return _create_squeezenet("1_1", **kwargs)
