"""Building blocks shared by the family files."""

from .conv import ConvBnAct, DepthwiseSeparableConv, make_divisible
from .drop import DropPath
from .se import SqueezeExcite
from .shuffle import ChannelShuffle

__all__ = ["ChannelShuffle", "ConvBnAct", "DepthwiseSeparableConv", "DropPath", "SqueezeExcite", "make_divisible"]
