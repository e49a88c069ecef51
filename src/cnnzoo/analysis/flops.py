"""Multiply-adds (MACs) and FLOPs, counted by PyTorch's own ``torch.utils.flop_counter.FlopCounterMode``.

The counter sees every ATen convolution and matrix multiply (linear layers, ``bmm``, attention) and counts
2 FLOPs per multiply-add. We report MACs = FLOPs / 2, the unit of torchvision's published figures ("GFLOPS" in
its tables are multiply-adds: 4.09 G for ResNet-50). Normalisation, activations, pooling and element-wise
additions are not counted; they are a few per cent of a CNN's arithmetic and memory-bound anyway.
"""

from __future__ import annotations

from typing import List, Sequence, Union

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["COUNTED", "MacCounter", "count_macs", "human"]

COUNTED = ("multiply-adds of convolutions and linear layers, by torch.utils.flop_counter.FlopCounterMode; "
           "FLOPs = 2 x MACs; normalisation, activations, pooling and additions are not counted")


class MacCounter(FlopCounterMode):
    """``FlopCounterMode`` that also measures stretches of the forward pass (one module call, say).

    ``start()`` and ``stop()`` nest like a stack: ``stop()`` returns the MACs since the matching ``start()``.
    """

    def __init__(self) -> None:
        super().__init__(display=False)
        self._marks: List[int] = []

    @property
    def macs(self) -> int:
        return int(self.get_total_flops()) // 2

    def start(self) -> None:
        self._marks.append(self.get_total_flops())

    def stop(self) -> int:
        return int(self.get_total_flops() - self._marks.pop()) // 2


def count_macs(model: nn.Module, x: Union[torch.Tensor, Sequence[int]]) -> int:
    """Multiply-adds of one forward pass of ``model`` (eval mode, no gradients).

    Args:
        model: any module; build it on the meta device (``with torch.device("meta")``) to count without
            computing or allocating anything.
        x: an input batch, or its shape ``(N, C, H, W)`` / ``(C, H, W)`` (zeros on the model's device).
    """
    if not isinstance(x, torch.Tensor):
        shape = tuple(int(s) for s in x)
        if len(shape) == 3:
            shape = (1, *shape)
        p = next(model.parameters(), None)
        x = torch.zeros(shape, device=p.device if p is not None else "cpu")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), MacCounter() as counter:
            model(x)
    finally:
        model.train(was_training)
    return counter.macs


def human(n: float, unit: str = "") -> str:
    """``4_089_184_256`` -> ``"4.09 G"``: three significant digits with a k/M/G/T prefix."""
    n = float(n)
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= factor:
            v = n / factor
            return f"{v:.3g} {prefix}{unit}" if v < 100 else f"{v:.0f} {prefix}{unit}"
    return f"{n:.0f} {unit}".rstrip() if unit else f"{n:.0f}"
