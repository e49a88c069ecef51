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

# flip_translate's shift in pixels (airbench's).
TTA_SHIFT = 1


def _tta_views(x: torch.Tensor, tta: Optional[str]):
    """The views averaged at test time, as ``(view, weight)``: the image; + its mirror (flip); ten crops (tencrop);
    or airbench's six views (flip_translate).

    Weights are relative whole numbers (:func:`predict_logits` divides by their sum): a weight of 1 multiplies
    exactly, so the equally weighted modes average exactly as a plain mean does.
    """
    if tta == "tencrop":
        # AlexNet's ten-crop: 4 corners and the centre at 87.5% of the side, resized back, and their mirrors.
        h, w = x.shape[-2:]
        ch, cw = max(1, int(h * 0.875)), max(1, int(w * 0.875))
        for top, left in [(0, 0), (0, w - cw), (h - ch, 0), (h - ch, w - cw), ((h - ch) // 2, (w - cw) // 2)]:
            crop = F.interpolate(x[..., top:top + ch, left:left + cw], size=(h, w), mode="bilinear",
                                 align_corners=False)
            yield crop, 1
            yield torch.flip(crop, dims=[3]), 1
        return
    if tta == "flip_translate":
        # Jordan 2024 (airbench, arXiv 2404.00498): the image and its mirror carry half the weight; the image moved
        # TTA_SHIFT pixels up-left and down-right and their mirrors share the other half. Reflect padding fills the
        # uncovered row and column with the image's own content instead of a black edge.
        yield x, 2
        yield torch.flip(x, dims=[3]), 2
        s = TTA_SHIFT
        h, w = x.shape[-2:]
        padded = F.pad(x, (s, s, s, s), mode="reflect")
        for top in (0, 2 * s):
            shifted = padded[..., top:top + h, top:top + w]
            yield shifted, 1
            yield torch.flip(shifted, dims=[3]), 1
        return
    yield x, 1
    if tta == "flip":
        yield torch.flip(x, dims=[3]), 1


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, tta: Optional[str] = None) -> torch.Tensor:
    """The weighted average of the TTA views' probabilities, returned as log-probabilities.

    Every mode averages probabilities, flip_translate included (airbench averages logits): the views of one image
    then combine as the members of an ensemble do (``cnnzoo eval`` averages their probabilities), and the result
    is a distribution whatever the mode.
    """
    probs = None
    total = 0
    for view, weight in _tta_views(x, tta):
        p = split_outputs(model(view))[0].float().softmax(1) * weight
        probs = p if probs is None else probs + p
        total += weight
    return (probs / total).clamp_min(1e-12).log()


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
