"""A batch before and after each augmentation, one row per setting: pictures for the docs.

Each row runs the loader's steps on the same images with one :class:`~cnnzoo.data.augment.AugmentConfig`:
resize (or the row's random crop) → geometry → colour (RandAugment / TrivialAugment first) → erase → mix, the
erase and mix steps on a normalised copy as in the loader, shown back on the 0..255 scale. Mixed rows give each
image's own share (lam) in its title.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F

from ..data.augment import AugmentConfig, BatchAugment
from ..errors import UserError
from ._mpl import DPI, pyplot

__all__ = ["augment_grid", "default_rows"]

# The normalisation of the erase and mix steps (any affine map works: both act on the normalised batch).
_MEAN, _STD = 127.5, 64.0


def default_rows() -> Dict[str, AugmentConfig]:
    """The rows of the docs' picture: the original, then each new augmentation alone at its usual setting."""
    return {
        "original": AugmentConfig(),
        "RandomResizedCrop": AugmentConfig(random_resized_crop=True),
        "scale jitter 1.14-2.29": AugmentConfig(scale_jitter=(256 / 224, 512 / 224)),
        "RandAugment N=2 M=9": AugmentConfig(randaugment=2, randaugment_magnitude=9),
        "TrivialAugment": AugmentConfig(trivialaugment=True),
        "mixup 0.8": AugmentConfig(mixup=0.8),
        "CutMix 1.0": AugmentConfig(cutmix=1.0),
    }


def _row(images: torch.Tensor, cfg: AugmentConfig, size: Tuple[int, int], seed: int):
    """The row's images (N x C x h x w, 0..255) and, where mixed, each image's own share."""
    aug = BatchAugment(cfg, images.shape[1], None, "cpu")
    g = torch.Generator().manual_seed(seed)
    x = images.float()
    if aug.crops:
        x = aug.resized_crop(x, size, g)
    elif tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    x = aug.colour(aug.geometry(x, g), g)
    x = aug.erase((x - _MEAN) / _STD, g)
    n = x.shape[0]
    labels = torch.arange(n)
    x, y = aug.mix(x, labels, n, 0, g)
    share = y[labels, labels] if y.is_floating_point() else None
    return (x * _STD + _MEAN).clamp(0, 255), share


def augment_grid(images: torch.Tensor, cfg_by_row: Optional[Dict[str, AugmentConfig]] = None,
                 size: Optional[Tuple[int, int]] = None, seed: int = 0):
    """A matplotlib Figure: one row per setting (:func:`default_rows` by default), one column per image.

    Args:
        images: uint8 N x C x H x W (C = 1 or 3), the batch to augment (a few images: 4 to 8 fit a page).
        cfg_by_row: row title -> settings, drawn top to bottom.
        size: the output size (h, w) of every row (default: the images' own).
        seed: the generator seed of every row, so a row's picture is reproducible.
    """
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
        raise UserError(f"augment_grid needs uint8 images N x C x H x W with C = 1 or 3, got {images.dtype} "
                        f"{tuple(images.shape)}")
    rows = cfg_by_row if cfg_by_row is not None else default_rows()
    size = tuple(size) if size is not None else tuple(images.shape[-2:])
    n = images.shape[0]
    plt = pyplot()
    label_width = 2.2  # inches for the row titles
    width = 1.6 * n + label_width
    fig, axes = plt.subplots(len(rows), n, figsize=(width, 1.7 * len(rows)), dpi=DPI, squeeze=False)
    fig.subplots_adjust(left=label_width / width, right=0.99, bottom=0.01, top=0.97, wspace=0.05, hspace=0.3)
    for r, (title, cfg) in enumerate(rows.items()):
        x, share = _row(images, cfg, size, seed)
        for i in range(n):
            ax = axes[r][i]
            img = x[i].round().to(torch.uint8).permute(1, 2, 0).numpy()
            ax.imshow(img[..., 0] if img.shape[2] == 1 else img, cmap="gray" if img.shape[2] == 1 else None,
                      vmin=0, vmax=255, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if share is not None:
                ax.set_title(f"lam {float(share[i]):.2f}", fontsize=8)
        axes[r][0].set_ylabel(title, rotation=0, ha="right", va="center", fontsize=9)
    return fig
