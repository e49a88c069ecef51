"""Single images: from a file, ``dataset:index`` (``fashion-mnist:123``) or scikit-image's photographs.

``skimage:chelsea`` (a cat), ``skimage:astronaut``, ``skimage:coffee``, ``skimage:rocket``, ``skimage:camera``
... are the pictures bundled with scikit-image (``pip install 'cnnzoo[viz]'``): real photographs for demos without
a download. ``predict``, ``viz`` and the docs all read images through :func:`load_image`.
"""

from __future__ import annotations

import os
import re
from typing import Optional

import torch

from ..errors import UserError
from .base import convert_channels
from .sources import cached_dataset

__all__ = ["SKIMAGE_IMAGES", "load_image"]

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


_SPEC = re.compile(r"^([A-Za-z0-9_-]+):(\d+)$")


def load_image(spec: str, in_chans: Optional[int] = None, *, data_dir: Optional[str] = None) -> torch.Tensor:
    """An image as uint8 C x H x W: a file (PNG, JPEG, anything PIL reads), ``"dataset:index"`` or ``"skimage:NAME"``.

    ``"fashion-mnist:123"`` is image 123 of that dataset's test split (its train split where it has no test
    split). An existing file of that name wins over the dataset form.

    Args:
        spec: a file path or ``"<dataset>:<index>"``.
        in_chans: convert to this many channels (1: luma, 3: grey repeated); None keeps the stored ones
            (files: grey stays 1 channel, everything else becomes RGB).
        data_dir: where the dataset's files are, for the ``"dataset:index"`` form.

    Raises:
        UserError: missing or unreadable file, not an image, unknown dataset, index out of range.
    """
    spec = str(spec)
    if in_chans not in (None, 1, 3):
        raise UserError(f"in_chans must be 1 or 3, got {in_chans!r}")
    if spec.startswith("skimage:"):
        return convert_channels(_skimage(spec.split(":", 1)[1]), in_chans)
    m = _SPEC.match(spec)
    if m and not os.path.exists(spec):
        name, index = m.group(1).lower().replace("_", "-"), int(m.group(2))
        if name == "folder":
            raise UserError(f"{spec!r}: the folder dataset has no fixed order; give the image file's path instead")
        ds = cached_dataset(name, data_dir)
        split = ds.test if ds.test is not None else ds.train
        if index >= len(split):
            raise UserError(f"{spec!r}: index {index} is out of range, the {name} "
                            f"{'test' if ds.test is not None else 'train'} split has {len(split)} images")
        return convert_channels(split.images[index].clone(), in_chans)
    from .folder import decode_image

    if not os.path.isfile(spec):
        raise UserError(f"no such image file: {spec}; check the path (or use 'dataset:index', e.g. 'digits:5')")
    img = decode_image(spec, None if in_chans is None else ("L" if in_chans == 1 else "RGB"))
    if isinstance(img, str):
        raise UserError(f"cannot read {spec} as an image ({img}); give a PNG, JPEG or other image file")
    return img
