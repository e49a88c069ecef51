"""Image geometry for the visualisations (images are loaded by :func:`cnnzoo.data.load_image`)."""

from __future__ import annotations

from typing import Sequence

import torch


__all__ = ["centre_crop"]

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
