"""Images for the visualisations: files, ``dataset:index`` and scikit-image's sample photographs.

``skimage:chelsea`` (a cat), ``skimage:astronaut``, ``skimage:coffee``, ``skimage:rocket``, ``skimage:camera``
... are the pictures bundled with scikit-image (``pip install 'cnnzoo[viz]'``): real photographs for demos without
a download.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from ..errors import UserError

__all__ = ["SKIMAGE_IMAGES", "load_image", "centre_crop"]

# scikit-image's bundled sample pictures (those that need no download).
SKIMAGE_IMAGES = ("astronaut", "brick", "camera", "cat", "chelsea", "coffee", "coins", "grass", "gravel", "horse",
                  "moon", "page", "rocket", "text", "colorwheel", "logo", "immunohistochemistry", "hubble_deep_field")


def _skimage(name: str) -> torch.Tensor:
    try:
        import skimage.data
    except ImportError:
        raise UserError("skimage: images need scikit-image; pip install 'cnnzoo[viz]' (or scikit-image)") from None
    if name not in SKIMAGE_IMAGES or not hasattr(skimage.data, name):
        raise UserError(f"unknown scikit-image picture {name!r}; try one of {', '.join(SKIMAGE_IMAGES)}")
    try:
        arr = getattr(skimage.data, name)()
    except Exception as e:  # noqa: BLE001 - a missing data file, or one that must be downloaded
        raise UserError(f"skimage:{name} could not be loaded ({type(e).__name__}: {e})") from None
    import numpy as np

    arr = np.asarray(arr)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype != np.uint8:
        lo, hi = float(arr.min()), float(arr.max())
        arr = ((arr - lo) / (hi - lo or 1.0) * 255).round().astype(np.uint8)
    t = torch.from_numpy(np.ascontiguousarray(arr))
    t = t.unsqueeze(0) if t.dim() == 2 else t.permute(2, 0, 1)[:3]
    return t.contiguous()


def load_image(spec: str, in_chans: Optional[int] = None) -> torch.Tensor:
    """uint8 ``C x H x W`` from ``skimage:NAME``, an image file or ``dataset:index`` (``fashion-mnist:123``).

    Args:
        spec: where the image comes from.
        in_chans: convert to 1 (luma) or 3 channels; None keeps the image's own.

    Raises:
        UserError: unknown picture, missing or unreadable file, bad dataset index.
    """
    spec = str(spec)
    if spec.startswith("skimage:"):
        img = _skimage(spec.split(":", 1)[1])
    else:
        from ..data import load_image as data_load_image

        img = data_load_image(spec)
    if in_chans is None or in_chans == img.shape[0]:
        return img
    if in_chans == 1:
        w = torch.tensor([0.299, 0.587, 0.114])[: img.shape[0]].view(-1, 1, 1)
        return (img.float() * w / w.sum()).sum(0, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    return img[:1].expand(in_chans, -1, -1).contiguous() if img.shape[0] == 1 else img[:in_chans]


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
