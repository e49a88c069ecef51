"""Evaluation: loss, top-1, top-5, per-class accuracy and the confusion matrix, optionally with TTA."""

from __future__ import annotations

from typing import Dict, Iterable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..choices import TTA_MODES
from ..io import Progress
from ..runtime import autocast
from .losses import split_outputs

__all__ = ["TTA_MODES", "predict_logits", "evaluate", "metrics_from_probs"]



def _tta_views(x: torch.Tensor, tta: Optional[str]):
    """The views averaged at test time: the image; + its mirror (flip); or ten crops (tencrop)."""
    if tta == "tencrop":
        # AlexNet's ten-crop: 4 corners and the centre at 87.5% of the side, resized back, and their mirrors.
        h, w = x.shape[-2:]
        ch, cw = max(1, int(h * 0.875)), max(1, int(w * 0.875))
        for top, left in [(0, 0), (0, w - cw), (h - ch, 0), (h - ch, w - cw), ((h - ch) // 2, (w - cw) // 2)]:
            crop = F.interpolate(x[..., top:top + ch, left:left + cw], size=(h, w), mode="bilinear",
                                 align_corners=False)
            yield crop
            yield torch.flip(crop, dims=[3])
        return
    yield x
    if tta == "flip":
        yield torch.flip(x, dims=[3])


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, tta: Optional[str] = None) -> torch.Tensor:
    """Averaged probabilities over the TTA views, returned as log-probabilities."""
    probs = None
    n = 0
    for view in _tta_views(x, tta):
        p = split_outputs(model(view))[0].float().softmax(1)
        probs = p if probs is None else probs + p
        n += 1
    return (probs / n).clamp_min(1e-12).log()


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, num_classes: int, device: torch.device,
             amp_dtype: Optional[torch.dtype] = None, tta: Optional[str] = None, progress: str = "none",
             desc: str = "evaluating") -> Dict[str, object]:
    """Run ``model`` over ``loader``; returns loss, top1, top5, per-class accuracy and the confusion matrix.

    ``progress`` is the bar policy (:data:`cnnzoo.choices.PROGRESS`, :func:`cnnzoo.io.progress_enabled`): ``none``
    (the default, for library callers), ``auto`` (a bar only on a terminal) or ``bar``; ``desc`` labels it.
    """
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long, device=device)
    top5 = torch.zeros((), device=device, dtype=torch.long)
    n = 0
    k = min(5, num_classes)
    for x, y in Progress(progress).iterate(loader, desc=desc):
        with autocast(device, amp_dtype):
            logp = predict_logits(model, x, tta)
        loss_sum += F.nll_loss(logp, y, reduction="sum").double()
        pred = logp.argmax(1)
        confusion += torch.bincount(y * num_classes + pred, minlength=num_classes ** 2).view(num_classes, num_classes)
        top5 += (logp.topk(k, 1).indices == y[:, None]).any(1).sum()
        n += y.numel()
    model.train(was_training)
    if n == 0:
        raise ValueError("nothing to evaluate: the split is empty")
    conf = confusion.cpu()
    per_class = (conf.diag().double() / conf.sum(1).clamp_min(1).double()).tolist()
    return {
        "loss": float(loss_sum) / n,
        "top1": float(conf.diag().sum()) / n,
        "top5": float(top5) / n,
        "n": n,
        "per_class": per_class,
        "confusion": conf,
    }


def metrics_from_probs(probs: torch.Tensor, labels: torch.Tensor, num_classes: int) -> Dict[str, object]:
    """Scores of already-averaged probabilities (ensembles)."""
    pred = probs.argmax(1)
    conf = torch.bincount(labels * num_classes + pred, minlength=num_classes ** 2).view(num_classes, num_classes)
    k = min(5, num_classes)
    n = labels.numel()
    return {
        "loss": float(F.nll_loss(probs.clamp_min(1e-12).log(), labels)),
        "top1": float(conf.diag().sum()) / n,
        "top5": float((probs.topk(k, 1).indices == labels[:, None]).any(1).sum()) / n,
        "n": n,
        "per_class": (conf.diag().double() / conf.sum(1).clamp_min(1).double()).tolist(),
        "confusion": conf,
    }
