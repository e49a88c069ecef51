"""Understanding a network: layer summary, multiply-adds, receptive fields, convolution arithmetic, cost."""

from .conv_arith import ConvArith, conv_arith
from .cost import conv_costs, head_costs
from .flops import COUNTED, count_macs
from .load import load_model
from .summary import Summary, summarize

__all__ = ["COUNTED", "ConvArith", "Summary", "conv_arith", "conv_costs", "count_macs", "head_costs", "load_model",
           "summarize"]
