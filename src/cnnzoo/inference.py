"""Turning images into model inputs and model outputs into answers, for trained runs.

:func:`prepare` is the one way a single image becomes a model's input (``predict`` and ``viz`` use it), the way
the run's own test pass saw its images: for a folder run (its metadata's ``resize``: S, the side the folder
loader decodes to), the largest centred square fitted to S x S, then its centre crop of the run's input size
(ImageNet's resize-256 / crop-224 evaluation); otherwise the largest centred crop with the aspect ratio of the
run's input, resized to it. Then normalised with the run's mean and std. ``eval`` runs the dataset loader
itself, the same one training used.
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F

from .builder import model_info
from .data import centre_offsets, convert_channels
from .hub import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["prepare", "preprocess", "centre_crop", "top_k", "run_meta"]


def preprocess(images: torch.Tensor, image_size: Sequence[int], mean: Sequence[float], std: Sequence[float],
               in_chans: int) -> torch.Tensor:
    """uint8 ``C x H x W`` (or ``N x C x H x W``) -> the normalised float batch the model was trained on."""
    x = images if images.dim() == 4 else images.unsqueeze(0)
    x = convert_channels(x.float() / 255.0, in_chans)
    size = tuple(int(s) for s in image_size)
    if tuple(x.shape[-2:]) != size:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    m = torch.tensor(list(mean), dtype=x.dtype).view(1, -1, 1, 1)
    s = torch.tensor(list(std), dtype=x.dtype).view(1, -1, 1, 1)
    if m.shape[1] != x.shape[1]:
        m, s = m.mean().view(1, 1, 1, 1), s.mean().view(1, 1, 1, 1)
    return (x - m) / s


def centre_crop(img: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """The largest centred crop of ``img`` (``C x H x W``) with the aspect ratio of ``size`` (H, W)."""
    h, w = int(img.shape[-2]), int(img.shape[-1])
    th, tw = int(size[0]), int(size[1])
    if h * tw > w * th:  # too tall
        nh = max(1, round(w * th / tw))
        top = (h - nh) // 2
        return img[..., top: top + nh, :]
    nw = max(1, round(h * tw / th))
    left = (w - nw) // 2
    return img[..., :, left: left + nw]


def prepare(image: torch.Tensor, rm: Dict[str, Any]) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(the uint8 image as the model sees it, the normalised 1 x C x H x W input)`` for one ``C x H x W`` image.

    ``rm`` is :func:`run_meta`'s preprocessing (image_size, mean, std, in_chans).
    """
    size = tuple(int(s) for s in rm["image_size"])
    resize = rm.get("resize")
    if not resize or int(resize) < max(size):
        crop = centre_crop(image, size)
    else:  # as the folder loader: the square fitted to S, then its centre
        side = int(resize)
        square = centre_crop(image, (side, side))[None].float()
        square = F.interpolate(square, size=(side, side), mode="bilinear", align_corners=False,
                               antialias=square.shape[-1] > side)[0].round().clamp(0, 255).to(torch.uint8)
        top, left = centre_offsets(side, side, size)
        crop = square[..., top:top + size[0], left:left + size[1]]
    x = preprocess(crop, size, rm["mean"], rm["std"], rm["in_chans"])
    shown = crop[None].float()
    if tuple(shown.shape[-2:]) != size:
        shown = F.interpolate(shown, size=size, mode="bilinear", align_corners=False, antialias=True)
    return shown[0].round().clamp(0, 255).to(torch.uint8), x


def top_k(probs: torch.Tensor, classes: List[str], k: int = 5) -> List[List[Tuple[str, float]]]:
    k = min(k, probs.shape[1])
    p, i = probs.topk(k, 1)
    return [[(classes[j] if j < len(classes) else str(j), float(q)) for q, j in zip(pr.tolist(), ix.tolist())]
            for pr, ix in zip(p, i)]


def run_meta(meta: Dict[str, Any], model) -> Dict[str, Any]:
    """The preprocessing a model needs, from its weights' metadata (ImageNet defaults otherwise)."""
    info = model_info(model.model_name) if getattr(model, "model_name", "") else None
    size = meta.get("image_size") or (list(info.input_size[1:]) if info else [224, 224])
    c = int(meta.get("in_chans") or model.in_chans)
    mean = meta.get("mean") or (list(IMAGENET_MEAN) if c == 3 else [0.5] * c)
    std = meta.get("std") or (list(IMAGENET_STD) if c == 3 else [0.5] * c)
    classes = meta.get("classes") or [str(i) for i in range(model.num_classes)]
    return {"image_size": size, "in_chans": c, "mean": mean, "std": std, "classes": classes,
            "resize": meta.get("resize")}
