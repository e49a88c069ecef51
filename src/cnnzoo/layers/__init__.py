"""Building blocks shared by the family files."""

from .conv import ConvBnAct, DepthwiseSeparableConv, make_divisible
from .drop import DropPath
from .norm import NORM_LAYERS
from .se import SqueezeExcite
from .shuffle import ChannelShuffle

__all__ = ["NORM_LAYERS", "ChannelShuffle", "ConvBnAct", "DepthwiseSeparableConv", "DropPath", "SqueezeExcite",
           "make_divisible"]
