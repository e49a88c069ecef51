"""ZFNet: Zeiler, Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014
(https://arxiv.org/abs/1311.2901).

The network of Figure 3: AlexNet with the first layers changed after the deconvnet visualisations
of section 4.1 showed AlexNet's 11x11 stride-4 filters to be aliased and partly dead -- a 7x7
stride-2 first layer of 96 filters and a 5x5 stride-2 second layer of 256, then 3x3 convolutions
384-384-256, FC 4096 - 4096 - classes with dropout 0.5 (layers 6 and 7). Each of the first two
layers is ReLU -> 3x3 stride-2 max-pooling -> contrast normalisation across feature maps, in that
order (AlexNet normalises before pooling); the normalisation is AlexNet's local response
normalisation. Trained on one GPU, so no two-tower split.

The map sizes of Figure 3 (224 -> 110 -> 55 -> 26 -> 13 -> 13 -> 13 -> 6) need conv1 padded by 1 and
ceil-mode ("Caffe") pooling. Weights start from N(0, 0.01^2), biases at 0 (section 3). The paper's
renormalisation of filters whose RMS exceeds 0.1 is a training-time constraint, not part of the model.

The model is ``alexnet.AlexNet`` with this layer table. Small images are resized to 224.
"""

from __future__ import annotations

from ._spec import Paper, SmallInput, register_model
from .alexnet import AlexNet

__all__ = ["ZFNET_CFG"]

ZFNET = Paper(
    "Visualizing and Understanding Convolutional Networks", "Zeiler, Fergus", 2014, "https://arxiv.org/abs/1311.2901",
)

# One row per convolution (Figure 3):
#   out channels, kernel, stride, padding, split across towers, initial bias, what follows its ReLU
ZFNET_CFG = (
    (96, 7, 2, 1, False, 0.0, ("pool", "lrn")),  # 224 -> 110 -> 55
    (256, 5, 2, 0, False, 0.0, ("pool", "lrn")),  # 55 -> 26 -> 13
    (384, 3, 1, 1, False, 0.0, ()),
    (384, 3, 1, 1, False, 0.0, ()),
    (256, 3, 1, 1, False, 0.0, ("pool",)),  # 13 -> 6
)


@register_model(family="ZFNet", paper=ZFNET, input_size=224, small_input=SmallInput("resize", size=224))
def zfnet(**kwargs) -> AlexNet:
    """ZFNet: 7x7 stride-2 conv1 (96), 5x5 stride-2 conv2 (256), 384-384-256, FC 4096-4096."""
    defaults = dict(cfg=ZFNET_CFG, ceil_pool=True, fc_bias=0.0)
    return AlexNet(**dict(defaults, **kwargs))
