"""Stochastic depth (Huang et al. 2016, "Deep Networks with Stochastic Depth")."""

from __future__ import annotations

import torch
from torch import nn


class DropPath(nn.Module):
    """Drop the whole residual branch per sample with probability ``p`` in training.

    Survivors are scaled by ``1/(1-p)`` so evaluation needs no rescaling.
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop-path probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"
