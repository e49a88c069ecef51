"""The training loss: cross-entropy of the main head plus the weighted losses of auxiliary heads.

One definition for the trainer and the benchmark. Auxiliary outputs come as our :class:`AuxOutputs` or as
torchvision's tuples (``GoogLeNetOutputs``, ``InceptionOutputs``), so a benchmark of torchvision's twin pays the
same loss as ours.
"""

from __future__ import annotations

from typing import Any, List, Tuple

import torch
import torch.nn.functional as F

from ..models import AuxOutputs

__all__ = ["split_outputs", "classification_loss"]


def split_outputs(out: Any) -> Tuple[torch.Tensor, List[torch.Tensor]]:
    """``(main logits, [auxiliary logits])`` of a model's output: a tensor, ``AuxOutputs`` or a tuple."""
    if isinstance(out, AuxOutputs):
        return out.logits, list(out.aux)
    if isinstance(out, tuple):
        return out[0], [a for a in out[1:] if a is not None]
    return out, []


def classification_loss(out: Any, target: torch.Tensor, label_smoothing: float = 0.0,
                        aux_weight: float = 0.0) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(loss, main logits)``: cross-entropy of the main head + ``aux_weight`` x each auxiliary head's.

    GoogLeNet's paper weights each auxiliary loss by 0.3 (the model's ``aux_weight``); ``aux_weight=0`` trains
    the main head alone.
    """
    logits, aux = split_outputs(out)
    loss = F.cross_entropy(logits, target, label_smoothing=label_smoothing)
    if aux_weight:
        loss = loss + aux_weight * sum(F.cross_entropy(a, target, label_smoothing=label_smoothing) for a in aux)
    return loss, logits
