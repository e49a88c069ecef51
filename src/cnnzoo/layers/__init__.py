"""Building blocks shared by the family files."""

from .conv import ConvBnAct, DepthwiseSeparableConv, make_divisible
from .drop import DropPath
from .se import SqueezeExcite

__all__ = ["ConvBnAct", "DepthwiseSeparableConv", "DropPath", "SqueezeExcite", "make_divisible"]
