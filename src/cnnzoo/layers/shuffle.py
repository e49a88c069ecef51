"""Channel shuffle (Zhang et al., "ShuffleNet", 2017, section 3.1), the mixing step of ShuffleNet v1 and v2.

Import from this module directly: ``from ..layers.shuffle import ChannelShuffle``.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ChannelShuffle"]


class ChannelShuffle(nn.Module):
    """Interleave the channels of ``groups`` groups, so the next grouped convolution sees every group.

    The paper's recipe: reshape the C channels to ``(groups, C / groups)``, transpose, flatten. Output
    channel ``i * groups + j`` is input channel ``j * (C / groups) + i``: with 2 groups of 3,
    ``[0 1 2 | 3 4 5]`` becomes ``[0 3 1 4 2 5]``. A module rather than a function so that it shows in the
    model's tree and summary; it has no parameters, so state dicts are unchanged by it.
    """

    def __init__(self, groups: int) -> None:
        super().__init__()
        if groups < 1:
            raise ValueError(f"channel shuffle needs at least 1 group, got {groups}")
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # No Python check of C here: it would stop torch.fx tracing (BatchNorm folding); unflatten refuses a C
        # that ``groups`` does not divide.
        return x.unflatten(1, (self.groups, -1)).transpose(1, 2).flatten(1, 2)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"
