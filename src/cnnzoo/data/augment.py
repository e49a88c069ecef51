"""Batched augmentation on the training device: whole batches at once, no per-image Python.

Every random draw is per image (a flip mask, a shift, an angle, jitter factors, a box) from one
``torch.Generator``, so a batch costs a handful of tensor operations whatever its size. Pixel values
are floats on the 0..255 scale until the loader normalises them; random erasing runs after
normalisation (it fills with noise of the normalised scale).

Order: flip / translate / rotate (one resampling) → colour jitter → PCA lighting → [normalise] → erasing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from ..errors import UserError
from .base import LUMA

__all__ = ["AugmentConfig", "BatchAugment", "pca_eigen", "IMAGENET_EIGVAL", "IMAGENET_EIGVEC"]

# AlexNet-style lighting for photographs of unknown origin: the ImageNet RGB eigen-decomposition (0..1 scale)
# that fb.resnet.torch published, used where the training set is streamed and not held in memory.
IMAGENET_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC = ((-0.5675, 0.7192, 0.4009),
                   (-0.5808, -0.0045, -0.8140),
                   (-0.5836, -0.6948, 0.4203))
# Random erasing's aspect-ratio range (Zhong et al., 2017: r1 = 0.3, r2 = 1/r1).
ERASE_RATIO = (0.3, 1 / 0.3)


@dataclass
class AugmentConfig:
    """Training-time augmentation; everything is off by default.

    Attributes:
        hflip: random horizontal flip with probability 0.5.
        translate: pad by this many pixels (zeros) and crop back at a random offset, at the output resolution.
        rotate: random rotation, uniform in ±rotate degrees (zeros fill the corners).
        color: brightness, contrast and saturation factors uniform in [1 - color, 1 + color].
        pca_lighting: AlexNet's PCA colour noise, the std of the eigen-component weights (0.1 in the paper);
            no-op on 1-channel images.
        erasing: probability per image of random erasing (a box filled with noise).
        erasing_scale: range of the erased box's area as a fraction of the image.
    """

    hflip: bool = False
    translate: int = 0
    rotate: float = 0.0
    color: float = 0.0
    pca_lighting: float = 0.0
    erasing: float = 0.0
    erasing_scale: Tuple[float, float] = (0.02, 0.25)

    def __post_init__(self):
        self.validate()

    def validate(self) -> "AugmentConfig":
        """Check every setting (types and ranges), as a config file or ``--set data.augment.KEY`` gives it."""
        def bad(what: str, value, want: str):
            raise UserError(f"data.augment.{what}={value!r} is out of range; use {want}")

        if not isinstance(self.hflip, bool):
            bad("hflip", self.hflip, "true or false")
        if isinstance(self.translate, bool) or not isinstance(self.translate, int) or not 0 <= self.translate <= 256:
            bad("translate", self.translate, "a whole number of pixels, 0 to 256 (4 is usual for 32x32)")
        for name, hi, want in (("rotate", 180.0, "degrees between 0 and 180 (10-15 is usual)"),
                               ("color", 1.0, "a strength between 0 and 1 (0.4 is usual)"),
                               ("pca_lighting", 1.0, "an alpha std between 0 and 1 (0.1 in AlexNet)"),
                               ("erasing", 1.0, "a probability between 0 and 1 (0.25-0.5 is usual)")):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= float(v) <= hi:
                bad(name, v, want)
            setattr(self, name, float(v))
        sc = self.erasing_scale
        if (not isinstance(sc, (tuple, list)) or len(sc) != 2 or not all(isinstance(s, (int, float)) for s in sc)
                or not 0.0 < sc[0] <= sc[1] <= 1.0):
            bad("erasing_scale", sc, "two area fractions (lo, hi) with 0 < lo <= hi <= 1, e.g. (0.02, 0.25)")
        self.erasing_scale = (float(sc[0]), float(sc[1]))
        return self

    @property
    def active(self) -> bool:
        return bool(self.hflip or self.translate or self.rotate or self.color or self.pca_lighting or self.erasing)


def pca_eigen(images: torch.Tensor, max_images: int = 8192, chunk: int = 2048) -> Tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (descending) and eigenvectors (columns) of the RGB covariance of uint8 N x 3 x H x W images.

    Computed on the 0..1 scale over every pixel of at most ``max_images`` evenly spaced images (millions of
    pixels: the 3 x 3 covariance is settled long before), in float64 chunks so memory stays small.
    """
    step = max(1, -(-images.shape[0] // max_images))
    images = images[::step]
    n = 0
    s = torch.zeros(3, dtype=torch.float64)
    ss = torch.zeros(3, 3, dtype=torch.float64)
    for i in range(0, images.shape[0], chunk):
        x = images[i:i + chunk].cpu().permute(1, 0, 2, 3).reshape(3, -1).double().div_(255.0)
        n += x.shape[1]
        s += x.sum(1)
        ss += x @ x.T
    mean = s / max(n, 1)
    cov = ss / max(n, 1) - torch.outer(mean, mean)
    val, vec = torch.linalg.eigh(cov)
    return val.flip(0).clamp_min(0).float(), vec.flip(1).float()


def _uniform(g: torch.Generator, n: int, lo: float, hi: float, device) -> torch.Tensor:
    return torch.rand(n, generator=g, device=device) * (hi - lo) + lo


class BatchAugment:
    """Applies an :class:`AugmentConfig` to float batches on one device.

    Args:
        cfg: what to apply.
        channels: channels of the batches (1 or 3).
        eigen: ``(eigval, eigvec)`` for PCA lighting (see :func:`pca_eigen`); needed when it is on and channels=3.
        device: where the batches live.
    """

    def __init__(self, cfg: AugmentConfig, channels: int, eigen: Optional[Tuple[torch.Tensor, torch.Tensor]],
                 device: torch.device):
        self.cfg, self.channels, self.device = cfg, channels, torch.device(device)
        self.pca = None
        if cfg.pca_lighting > 0 and channels == 3:
            if eigen is None:
                raise ValueError("PCA lighting needs the eigen-decomposition of the training set")
            val, vec = eigen
            # Row c of this matrix times alpha gives channel c's shift: sum_i p_i[c] * alpha_i * lambda_i.
            self.pca = (vec * val[None, :]).to(self.device, torch.float32) * 255.0
        self.luma = torch.tensor(LUMA, device=self.device).view(1, 3, 1, 1)

    # ---------------------------------------------------------------- geometry

    def geometry(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        cfg = self.cfg
        n, _, h, w = x.shape
        dev = x.device
        flip = (torch.rand(n, generator=g, device=dev) < 0.5) if cfg.hflip else None
        t = cfg.translate
        if t:
            dy = torch.randint(0, 2 * t + 1, (n,), generator=g, device=dev)
            dx = torch.randint(0, 2 * t + 1, (n,), generator=g, device=dev)
        if cfg.rotate:
            # Flip, shift and rotation as one affine resampling. Integer shifts and flips land on pixel
            # centres (align_corners=False), so without rotation this equals the exact pad-and-crop.
            ang = _uniform(g, n, -cfg.rotate, cfg.rotate, dev) * (math.pi / 180.0)
            cos, sin = torch.cos(ang), torch.sin(ang)
            sx = torch.where(flip, -1.0, 1.0) if flip is not None else torch.ones(n, device=dev)
            theta = torch.zeros(n, 2, 3, device=dev)
            # Normalised coordinates scale x by 2/W and y by 2/H: the aspect terms keep non-square rotations rigid.
            theta[:, 0, 0] = cos * sx
            theta[:, 0, 1] = -sin * (h / w)
            theta[:, 1, 0] = sin * (w / h) * sx
            theta[:, 1, 1] = cos
            if t:
                theta[:, 0, 2] = (dx - t).float() * (2.0 / w)
                theta[:, 1, 2] = (dy - t).float() * (2.0 / h)
            grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
            return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if t:
            # Pad-and-crop as one gather from the zero-padded batch; the flip is folded into the column index.
            padded = F.pad(x, (t, t, t, t))
            wp = w + 2 * t
            rows = dy[:, None] + torch.arange(h, device=dev)[None, :]
            cols = torch.arange(w, device=dev).expand(n, w)
            if flip is not None:
                cols = torch.where(flip[:, None], (w - 1) - cols, cols)
            cols = dx[:, None] + cols
            idx = (rows[:, :, None] * wp + cols[:, None, :]).view(n, 1, h * w).expand(-1, x.shape[1], -1)
            return padded.flatten(2).gather(2, idx).view(n, x.shape[1], h, w)
        if flip is not None:
            # lerp with a 0/1 weight selects the mirror; on CPU it is several times faster than torch.where.
            return torch.lerp(x, x.flip(3), flip.view(n, 1, 1, 1).to(x.dtype))
        return x

    # ---------------------------------------------------------------- colour

    @staticmethod
    def _grey(x: torch.Tensor) -> torch.Tensor:
        """Per-pixel luma, N x 1 x H x W (slices instead of a weighted sum: fewer passes over the batch)."""
        if x.shape[1] == 1:
            return x
        return x[:, 0:1] * LUMA[0] + x[:, 1:2] * LUMA[1] + x[:, 2:3] * LUMA[2]

    def colour(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        cfg = self.cfg
        n = x.shape[0]
        dev = x.device
        if cfg.color:
            lo, hi = 1.0 - cfg.color, 1.0 + cfg.color
            b = _uniform(g, n, lo, hi, dev).view(n, 1, 1, 1)
            c = _uniform(g, n, lo, hi, dev).view(n, 1, 1, 1)
            # torchvision's ColorJitter steps (brightness: scale; contrast: blend with the image's mean grey;
            # saturation: blend with each pixel's grey), clamped once at the end instead of after every step,
            # which lets brightness and contrast share one pass: (x*b - m)*c + m, m = b * mean grey of x.
            means = x.mean((2, 3))
            m = (means @ self.luma.view(3, 1).to(x.dtype) if x.shape[1] == 3 else means).view(n, 1, 1, 1) * b
            x = torch.addcmul(m * (1 - c), x, b * c)
            if x.shape[1] == 3:
                s = _uniform(g, n, lo, hi, dev).view(n, 1, 1, 1)
                x = torch.addcmul(self._grey(x) * (1 - s), x, s)
            x = x.clamp_(0, 255)
        if self.pca is not None:
            alpha = torch.randn(n, 3, generator=g, device=dev) * cfg.pca_lighting
            x = x + (alpha @ self.pca.T).view(n, 3, 1, 1)
        return x

    # ---------------------------------------------------------------- erasing (after normalisation)

    def erase(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        cfg = self.cfg
        if not cfg.erasing:
            return x
        n, c, h, w = x.shape
        dev = x.device
        apply = torch.rand(n, generator=g, device=dev) < cfg.erasing
        area = _uniform(g, n, *cfg.erasing_scale, dev) * (h * w)
        ratio = torch.exp(_uniform(g, n, math.log(ERASE_RATIO[0]), math.log(ERASE_RATIO[1]), dev))
        eh = torch.sqrt(area * ratio).round().clamp(1, h)
        ew = torch.sqrt(area / ratio).round().clamp(1, w)
        top = (torch.rand(n, generator=g, device=dev) * (h - eh + 1)).floor()
        left = (torch.rand(n, generator=g, device=dev) * (w - ew + 1)).floor()
        ys = torch.arange(h, device=dev, dtype=eh.dtype)
        xs = torch.arange(w, device=dev, dtype=ew.dtype)
        in_y = ((ys[None, :] >= top[:, None]) & (ys[None, :] < (top + eh)[:, None])).to(x.dtype)
        in_x = ((xs[None, :] >= left[:, None]) & (xs[None, :] < (left + ew)[:, None])).to(x.dtype)
        box = (in_y[:, :, None] * in_x[:, None, :] * apply.to(x.dtype)[:, None, None]).unsqueeze(1)
        # Zhong et al. fill the box with random values: standard-normal noise on the normalised scale. One noise
        # tile per batch (boxes sit at different places, so images still get different noise) keeps the cost
        # of the draw independent of the batch size.
        noise = torch.randn((1, c, h, w), generator=g, device=dev, dtype=x.dtype)
        return torch.lerp(x, noise, box)
