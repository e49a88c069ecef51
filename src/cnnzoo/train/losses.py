"""The training loss: cross-entropy of the main head plus the weighted losses of auxiliary heads.

One definition for the trainer and the benchmark. Auxiliary outputs come as our :class:`AuxOutputs` or as
torchvision's tuples (``GoogLeNetOutputs``, ``InceptionOutputs``), so a benchmark of torchvision's twin pays the
same loss as ours. Targets are int64 class indices or, after mixup / CutMix (``data.augment.mix``), float
N x C class probabilities.
"""

from __future__ import annotations

from typing import Any, List, Tuple

import torch
import torch.nn.functional as F

from ..models import AuxOutputs

__all__ = ["split_outputs", "classification_loss", "target_classes"]


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
    the main head alone. ``target`` is int64 labels (N) or soft targets (float N x C, rows summing to 1):
    ``-(target * log_softmax).sum(1).mean()``, smoothed as torch smooths probabilities,
    ``target * (1 - label_smoothing) + label_smoothing / C`` (timm's smoothed mixup targets).
    """
    logits, aux = split_outputs(out)

    def ce(z: torch.Tensor) -> torch.Tensor:
        if target.is_floating_point() and z.dtype != target.dtype:
            # Probability targets must share the logits' dtype; in float32, so that bf16 does not round them.
            return F.cross_entropy(z.float(), target.float(), label_smoothing=label_smoothing)
        return F.cross_entropy(z, target, label_smoothing=label_smoothing)

    loss = ce(logits)
    if aux_weight:
        loss = loss + aux_weight * sum(ce(a) for a in aux)
    return loss, logits


def target_classes(target: torch.Tensor) -> torch.Tensor:
    """The class of each target, for training accuracy: the labels, or the most probable class of soft targets.

    With mixup this is the larger partner (lam >= 0.5); accuracy against it is a rough measure only.
    """
    return target.argmax(1) if target.is_floating_point() else target
