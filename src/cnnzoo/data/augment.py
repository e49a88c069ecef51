"""Batched augmentation on the training device: whole batches at once, no per-image Python.

Every random draw is per image (a flip mask, a shift, an angle, jitter factors, a box, an op) from one
``torch.Generator``, so a batch costs a handful of tensor operations whatever its size, and the same generator
state gives the same batch (the loader re-seeds it per batch: resumed runs replay exactly). Pixel values are
floats on the 0..255 scale until the loader normalises them; random erasing and mixing run after normalisation.

Order (the loader's calls):

1. :meth:`BatchAugment.resized_crop` instead of the plain resize when :attr:`BatchAugment.crops`
   (RandomResizedCrop or VGG's scale jitter: a box per image, resampled to the image size);
2. :meth:`BatchAugment.geometry`: flip / translate / rotate (one resampling);
3. :meth:`BatchAugment.colour`: RandAugment or TrivialAugment (:meth:`BatchAugment.auto`, per image ops) →
   colour jitter → PCA lighting;
4. [normalise] → :meth:`BatchAugment.erase` → :meth:`BatchAugment.mix` (mixup or cutmix, soft targets).

Decisions:

* RandomResizedCrop samples as torchvision's ``RandomResizedCrop.make_params`` (10 tries of area and log-ratio,
  then the central fallback), vectorised: 10 candidates per image at once, the first that fits wins. Boxes are
  resampled as torchvision's ``resized_crop`` does (bilinear, antialiased when shrinking), by per-image
  interpolation matrices applied as two batched matrix products (:func:`resample_boxes`).
* Scale jitter (Simonyan & Zisserman 2015, sec. 3.1) as a ratio ``s = S / crop``: VGG's S in [256, 512] for a
  224 crop is ``scale_jitter=(256/224, 512/224)``. An H x W image with shorter side m, output h x w and
  c = max(h, w) (VGG's square crop: c = h = w): the image is rescaled by k = s c / m (shorter side S = s c,
  s >= 1, so the crop always fits), a h x w crop is taken at a uniform whole-pixel offset of the rescaled image
  (rows 0..floor(k H) - h, columns 0..floor(k W) - w), and in input pixels that is the box
  (top / k, left / k, h / k, w / k): a square of side m / s for a square crop. A 256-px image with s = 256/224
  and a 224 output has k = 1: a plain random 224 crop, exactly.
* RandAugment / TrivialAugment: torchvision's ``RandAugment`` and ``TrivialAugmentWide`` (their op list, 31
  magnitude bins, ranges, signs, nearest resampling, zero fill), but each image draws its own ops and
  magnitudes. Images are grouped by op (one sort, one host sync per round), each group is transformed as a
  batch: at most 10 passes per round (the five affine ops share one resampling, exactly torchvision's). The
  ops keep float values where torchvision's uint8 kernels truncate (Brightness and AutoContrast stay within 1
  level of them, Color, Contrast and Sharpness within 2.5: torchvision also floors their grey or rounds their
  blur); Posterize, Solarize and Equalize act on the rounded values, as on uint8, and agree exactly. The grey of Color and Contrast is :data:`~cnnzoo.data.base.LUMA`.
* Mixup and CutMix as timm's ``Mixup`` in batch mode: one lam per batch from Beta(alpha, alpha), the batch
  mixed with itself flipped, CutMix's lam corrected to the box's clipped area; with both on, CutMix with
  probability ``mix_switch_prob``. The per-batch scalars come from :class:`random.Random` seeded by one draw of
  the generator (Python's ``betavariate``; torch's Gamma sampler takes no generator), so they are reproducible
  too. Label smoothing is left to the loss (``F.cross_entropy`` smooths probability targets as timm does).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

from ..errors import UserError
from .base import LUMA

__all__ = ["AugmentConfig", "BatchAugment", "pca_eigen", "resample_boxes", "resample_matrices", "auto_magnitudes", "IMAGENET_EIGVAL",
           "IMAGENET_EIGVEC", "AUTO_OPS"]

# AlexNet-style lighting for photographs of unknown origin: the ImageNet RGB eigen-decomposition (0..1 scale)
# that fb.resnet.torch published, used where the training set is streamed and not held in memory.
IMAGENET_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC = ((-0.5675, 0.7192, 0.4009),
                   (-0.5808, -0.0045, -0.8140),
                   (-0.5836, -0.6948, 0.4203))
# Random erasing's aspect-ratio range (Zhong et al., 2017: r1 = 0.3, r2 = 1/r1).
ERASE_RATIO = (0.3, 1 / 0.3)
# RandomResizedCrop's tries before the central fallback (torchvision's make_params).
RRC_TRIES = 10

# RandAugment's and TrivialAugmentWide's ops, in torchvision's order; AUTO_SIGNED: the magnitude's sign is random.
AUTO_OPS = ("Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast",
            "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize")
AUTO_SIGNED = (False, True, True, True, True, True, True, True, True, True, False, False, False, False)
AUTO_BINS = 31
# Ops applied together: 0 identity, 1 the affine ones (one resampling), then one group per pixel op.
_AUTO_GROUP = (0, 1, 1, 1, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9)
_AUTO_GROUPS = 10


def auto_magnitudes(wide: bool, height: int, width: int) -> torch.Tensor:
    """The 14 x 31 magnitude table of TrivialAugmentWide (``wide``) or RandAugment, as torchvision builds it.

    Rows follow :data:`AUTO_OPS` (zeros for the ops without a magnitude); Posterize's row holds bits, Solarize's
    the fraction of 255 from which pixels are inverted. The same float32 expressions as torchvision's
    ``_AUGMENTATION_SPACE``, so the values are bit-identical.
    """
    n = AUTO_BINS
    lin = lambda hi: torch.linspace(0.0, hi, n)  # noqa: E731
    if wide:
        shear, tx, ty, rot, col = lin(0.99), lin(32.0), lin(32.0), lin(135.0), lin(0.99)
        post = (8 - (torch.arange(n) / ((n - 1) / 6))).round().int()
    else:
        shear, tx, ty, rot, col = lin(0.3), lin(150.0 / 331.0 * width), lin(150.0 / 331.0 * height), lin(30.0), lin(0.9)
        post = (8 - (torch.arange(n) / ((n - 1) / 4))).round().int()
    zero = torch.zeros(n)
    rows = [zero, shear, shear, tx, ty, rot, col, col, col, col, post.float(), torch.linspace(1.0, 0.0, n), zero, zero]
    return torch.stack(rows)


@dataclass
class AugmentConfig:
    """Training-time augmentation; everything is off by default.

    Attributes:
        hflip: random horizontal flip with probability 0.5.
        alt_flip: airbench's alternating flip (Jordan 2024, arXiv 2404.00498), with ``hflip``: each training image
            draws one bit from the seed and its index in the split, is flipped in epoch 0 where the bit is set
            and in each later epoch where the bit differs from the epoch's parity, so every pair of epochs
            (2k, 2k + 1) shows it once mirrored and once not, where independent flips repeat an orientation for
            half the images. The loader decides these flips (see :mod:`cnnzoo.data.loader`).
        translate: pad by this many pixels (zeros) and crop back at a random offset, at the output resolution.
        rotate: random rotation, uniform in ±rotate degrees (zeros fill the corners).
        color: brightness, contrast and saturation factors uniform in [1 - color, 1 + color].
        pca_lighting: AlexNet's PCA colour noise, the std of the eigen-component weights (0.1 in the paper);
            no-op on 1-channel images.
        erasing: probability per image of random erasing (a box filled with noise).
        erasing_scale: range of the erased box's area as a fraction of the image.
        random_resized_crop: Inception-style crops (torchvision's RandomResizedCrop): a box of ``rrc_scale`` of
            the image's area and aspect ratio in ``rrc_ratio`` (log-uniform), resized to the image size.
        rrc_scale: range of the box's area as a fraction of the image (torchvision: 0.08 to 1).
        rrc_ratio: range of the box's width / height (torchvision: 3/4 to 4/3).
        scale_jitter: VGG's multi-scale training, ``(lo, hi)`` ratios S / crop: the shorter side rescaled to
            S = s x crop, s uniform in [lo, hi], then a random crop (VGG's S in [256, 512] for 224:
            ``(1.143, 2.286)``); not with ``random_resized_crop``.
        randaugment: RandAugment's N, the ops applied to each image (each image draws its own); 0 = off.
        randaugment_magnitude: RandAugment's M, the magnitude bin (0 to 30) of every op.
        trivialaugment: TrivialAugment (torchvision's TrivialAugmentWide): one op per image at a random
            magnitude; not with ``randaugment``.
        mixup: mixup's alpha (lam ~ Beta(alpha, alpha) per batch); 0 = off.
        cutmix: CutMix's alpha; 0 = off. With ``mixup`` too, each batch picks one (``mix_switch_prob``).
        mix_prob: probability that a batch is mixed at all.
        mix_switch_prob: probability of CutMix rather than mixup when both are on.
        mix_off_epoch: timm's ``--mixup-off-epoch``: epochs numbered from 0 that are >= this train unmixed
            (10 = the first ten epochs, 0..9, are mixed); 0 = mix to the end.
    """

    hflip: bool = False
    alt_flip: bool = False
    translate: int = 0
    rotate: float = 0.0
    color: float = 0.0
    pca_lighting: float = 0.0
    erasing: float = 0.0
    erasing_scale: Tuple[float, float] = (0.02, 0.25)
    random_resized_crop: bool = False
    rrc_scale: Tuple[float, float] = (0.08, 1.0)
    rrc_ratio: Tuple[float, float] = (3 / 4, 4 / 3)
    scale_jitter: Optional[Tuple[float, float]] = None
    randaugment: int = 0
    randaugment_magnitude: int = 9
    trivialaugment: bool = False
    mixup: float = 0.0
    cutmix: float = 0.0
    mix_prob: float = 1.0
    mix_switch_prob: float = 0.5
    mix_off_epoch: int = 0

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

        def pair(name: str, ok, want: str) -> Tuple[float, float]:
            v = getattr(self, name)
            if (not isinstance(v, (tuple, list)) or len(v) != 2
                    or not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in v)
                    or not v[0] <= v[1] or not ok(float(v[0]), float(v[1]))):
                bad(name, v, want)
            return float(v[0]), float(v[1])

        def whole(name: str, lo: int, hi: int, want: str) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                bad(name, v, want)

        for name in ("alt_flip", "random_resized_crop", "trivialaugment"):
            if not isinstance(getattr(self, name), bool):
                bad(name, getattr(self, name), "true or false")
        self.rrc_scale = pair("rrc_scale", lambda lo, hi: 0.0 < lo and hi <= 1.0,
                              "two area fractions (lo, hi) with 0 < lo <= hi <= 1, e.g. (0.08, 1.0)")
        self.rrc_ratio = pair("rrc_ratio", lambda lo, hi: 0.0 < lo and hi <= 10.0,
                              "two aspect ratios (lo, hi) with 0 < lo <= hi <= 10, e.g. (0.75, 1.333)")
        if self.scale_jitter is not None:
            self.scale_jitter = pair("scale_jitter", lambda lo, hi: 1.0 <= lo and hi <= 8.0,
                                     "null or two ratios S / crop (lo, hi) with 1 <= lo <= hi <= 8, e.g. VGG's "
                                     "(1.143, 2.286) for S in [256, 512] and a 224 crop")
        whole("randaugment", 0, 16, "a number of ops per image, 0 (off) to 16 (2 is usual)")
        whole("randaugment_magnitude", 0, AUTO_BINS - 1, f"a magnitude bin, 0 to {AUTO_BINS - 1} (9 is usual)")
        whole("mix_off_epoch", 0, 1_000_000, "a 0-based epoch from which mixing stops, or 0 to mix to the end")
        for name, hi, want in (("mixup", 10.0, "an alpha between 0 (off) and 10 (0.2-0.8 is usual)"),
                               ("cutmix", 10.0, "an alpha between 0 (off) and 10 (1.0 is usual)"),
                               ("mix_prob", 1.0, "a probability between 0 and 1"),
                               ("mix_switch_prob", 1.0, "a probability between 0 and 1 (0.5 is usual)")):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= float(v) <= hi:
                bad(name, v, want)
            setattr(self, name, float(v))
        if self.alt_flip and not self.hflip:
            raise UserError("data.augment.alt_flip decides which images data.augment.hflip mirrors, and hflip is off; "
                            "set hflip to true (or alt_flip to false)")
        if self.random_resized_crop and self.scale_jitter is not None:
            raise UserError("data.augment.random_resized_crop and data.augment.scale_jitter are both on; they are two "
                            "ways to crop, so use one (set the other to false / null)")
        if self.trivialaugment and self.randaugment:
            raise UserError(f"data.augment.trivialaugment and data.augment.randaugment={self.randaugment} are both on; "
                            "use one of them (set randaugment to 0 or trivialaugment to false)")
        return self

    @property
    def active(self) -> bool:
        return bool(self.hflip or self.translate or self.rotate or self.color or self.pca_lighting or self.erasing
                    or self.crops or self.randaugment or self.trivialaugment or self.mixes)

    @property
    def crops(self) -> bool:
        """A random box per image replaces the plain resize (RandomResizedCrop or scale jitter)."""
        return bool(self.random_resized_crop or self.scale_jitter is not None)

    @property
    def mixes(self) -> bool:
        """Mixup or CutMix is on (for some epochs, in a share ``mix_prob`` of the batches)."""
        return bool((self.mixup > 0 or self.cutmix > 0) and self.mix_prob > 0)


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


def resample_matrices(start: torch.Tensor, length: torch.Tensor, n_in: int, n_out: int) -> torch.Tensor:
    """Per-image interpolation matrices along one axis: N x n_out x n_in (float32), rows summing to one.

    Output pixel j of image n samples the box [start, start + length) at its centre start + (j + 1/2) x scale
    (scale = length / n_out; pixel k covers [k, k + 1]) with a triangle filter of half-width max(scale, 1):
    bilinear when enlarging, widened when shrinking (antialiased), as torchvision's antialiased resize weighs;
    only the pixels the box covers (floor(start) .. ceil(start + length) - 1) contribute, as when the box is
    cropped first. Built in place in float32: the float64 version cost as much as the products it feeds.
    """
    dev = start.device
    start = start.to(torch.float32)[:, None, None]
    length = length.to(torch.float32)[:, None, None]
    scale = length / n_out
    centre = (start - 0.5) + (torch.arange(n_out, device=dev, dtype=torch.float32)[None, :, None] + 0.5) * scale
    k = torch.arange(n_in, device=dev, dtype=torch.float32)[None, None, :]  # pixel k's centre is k + 1/2
    w = (k - centre).abs_().div_(scale.clamp_min(1.0)).neg_().add_(1.0).clamp_(min=0.0)
    w.mul_((k >= torch.floor(start + 1e-4)) & (k < torch.ceil(start + length - 1e-4)))
    return w.div_(w.sum(-1, keepdim=True).clamp_min_(1e-12))


def resample_boxes(x: torch.Tensor, boxes: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Each image's box (N x 4: top, left, height, width in pixels; fractions allowed) resampled to ``size``.

    Two batched matrix products with each image's own interpolation matrices (:func:`resample_matrices`),
    columns first (N x (C H) x W times N x W x w), then rows (N x h x H times N x H x (w C)): torchvision's
    ``resized_crop`` (bilinear, antialiased) for every box at once, equal to it up to float rounding on
    whole-pixel boxes. It replaced one ``torchvision.ops.roi_align`` call, whose adaptive sampling only
    approximated the antialiasing and was slower (benchmarks/RESULTS.md). A box of the output's size at whole
    pixels is an exact crop (its matrices are 0/1). The result is N x C x h x w in channels_last memory, the
    layout the loader hands the model, so no copy follows.
    """
    n, c, height, width = x.shape
    out_h, out_w = int(size[0]), int(size[1])
    b = boxes.to(device=x.device)
    ry = resample_matrices(b[:, 0], b[:, 2], height, out_h)  # N x h x H
    rxt = resample_matrices(b[:, 1], b[:, 3], width, out_w).transpose(1, 2)  # N x W x w
    cols = torch.bmm(x.float().reshape(n, c * height, width), rxt)  # N x (C H) x w
    cols = cols.view(n, c, height, out_w).permute(0, 2, 3, 1).reshape(n, height, out_w * c)  # N x H x (w C)
    out = torch.bmm(ry, cols).view(n, out_h, out_w, c).permute(0, 3, 1, 2)  # channels_last N x C x h x w
    return out.to(x.dtype)


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
        self.crops = cfg.crops  # the loader calls resized_crop instead of its plain resize
        self.mixes = cfg.mixes  # the loader calls mix after erase
        self._magnitudes: Dict[Tuple[int, int], torch.Tensor] = {}  # auto()'s table per image size
        self._signed = torch.tensor(AUTO_SIGNED, device=self.device)
        self._group = torch.tensor(_AUTO_GROUP, device=self.device)

    # ---------------------------------------------------------------- crops (instead of the plain resize)

    def resized_crop(self, x: torch.Tensor, size: Tuple[int, int], g: torch.Generator) -> torch.Tensor:
        """A random box of each image of ``x`` (N x C x H x W), resampled to ``size`` = (h, w): N x C x h x w.

        RandomResizedCrop's box or scale jitter's (see the module docstring), per image.
        """
        n, _, height, width = x.shape
        out_h, out_w = int(size[0]), int(size[1])
        if self.cfg.random_resized_crop:
            boxes = self._rrc_boxes(n, height, width, g, x.device)
        else:
            boxes = self._jitter_boxes(n, height, width, out_h, out_w, g, x.device)
        return resample_boxes(x, boxes, (out_h, out_w))

    def _rrc_boxes(self, n: int, height: int, width: int, g: torch.Generator, dev) -> torch.Tensor:
        """torchvision's RandomResizedCrop.make_params for n images at once: N x 4 (top, left, h, w), whole pixels."""
        lo, hi = self.cfg.rrc_scale
        r_lo, r_hi = self.cfg.rrc_ratio
        log_lo, log_hi = (float(v) for v in torch.log(torch.tensor((r_lo, r_hi))))
        area = _uniform(g, n * RRC_TRIES, lo, hi, dev).view(n, RRC_TRIES) * float(height * width)
        ratio = torch.exp(_uniform(g, n * RRC_TRIES, log_lo, log_hi, dev).view(n, RRC_TRIES))
        w = torch.sqrt(area * ratio).round()
        h = torch.sqrt(area / ratio).round()
        fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
        first = fits.to(torch.uint8).argmax(1, keepdim=True)  # the first try that fits (argmax: first maximum)
        found = fits.any(1)
        w, h = w.gather(1, first).squeeze(1), h.gather(1, first).squeeze(1)
        # The fallback: the central crop of the whole image, or of its largest box within the ratio range.
        in_ratio = width / height
        if in_ratio < r_lo:
            fw, fh = width, int(round(width / r_lo))
        elif in_ratio > r_hi:
            fw, fh = int(round(height * r_hi)), height
        else:
            fw, fh = width, height
        h = torch.where(found, h, float(fh))
        w = torch.where(found, w, float(fw))
        top = (torch.rand(n, generator=g, device=dev) * (height - h + 1)).floor()
        left = (torch.rand(n, generator=g, device=dev) * (width - w + 1)).floor()
        top = torch.where(found, top, float((height - fh) // 2))
        left = torch.where(found, left, float((width - fw) // 2))
        return torch.stack([top, left, h, w], 1)

    def _jitter_boxes(self, n: int, height: int, width: int, out_h: int, out_w: int, g: torch.Generator,
                      dev) -> torch.Tensor:
        """Scale jitter's boxes, N x 4 (top, left, h, w) in input pixels (float64 so that k = 1 stays exact)."""
        lo, hi = self.cfg.scale_jitter
        s = torch.rand(n, generator=g, device=dev).double() * (hi - lo) + lo
        k = s * (max(out_h, out_w) / min(height, width))  # the rescale factor: shorter side -> S = s x crop
        # The rescaled image's size in whole pixels; s >= 1 makes it at least the crop (the epsilon absorbs k's
        # rounding, so that k = 1 gives the image's own size).
        rows = torch.floor(height * k + 1e-6).clamp_min(out_h)
        cols = torch.floor(width * k + 1e-6).clamp_min(out_w)
        top = (torch.rand(n, generator=g, device=dev).double() * (rows - out_h + 1)).floor()
        left = (torch.rand(n, generator=g, device=dev).double() * (cols - out_w + 1)).floor()
        return torch.stack([top / k, left / k, out_h / k, out_w / k], 1)

    # ---------------------------------------------------------------- geometry

    def geometry(self, x: torch.Tensor, g: torch.Generator, flip: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Flip, translate and rotate ``x`` (N x C x H x W) in one resampling.

        ``flip`` (N bools) is the flip decided by the caller (``alt_flip``: the loader's per-image alternation);
        without it ``hflip`` draws one from ``g``. A given flip draws nothing from ``g``; the other draws come in
        the same order either way.
        """
        cfg = self.cfg
        n, _, h, w = x.shape
        dev = x.device
        if flip is None and cfg.hflip:
            flip = torch.rand(n, generator=g, device=dev) < 0.5
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
        """RandAugment / TrivialAugment (:meth:`auto`), then colour jitter, then PCA lighting."""
        cfg = self.cfg
        x = self.auto(x, g)
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

    # ---------------------------------------------------------------- RandAugment / TrivialAugment (per image)

    def auto(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """RandAugment's N ops or TrivialAugment's one op per image, each image with its own draws.

        Per round every image draws an op of :data:`AUTO_OPS`, a magnitude bin (RandAugment: the configured one;
        TrivialAugment: uniform over the 31) and a sign, as torchvision's transforms do for one image.
        """
        cfg = self.cfg
        rounds = cfg.randaugment or (1 if cfg.trivialaugment else 0)
        if not rounds:
            return x
        n, _, h, w = x.shape
        dev = x.device
        table = self._magnitudes.get((h, w))
        if table is None:
            table = self._magnitudes[(h, w)] = auto_magnitudes(cfg.trivialaugment, h, w).to(dev)
        signed, group = self._signed.to(dev), self._group.to(dev)
        for _ in range(rounds):
            op = torch.randint(0, len(AUTO_OPS), (n,), generator=g, device=dev)
            if cfg.trivialaugment:
                level = torch.randint(0, AUTO_BINS, (n,), generator=g, device=dev)
            else:
                level = torch.full((n,), cfg.randaugment_magnitude, device=dev, dtype=torch.long)
            negative = (torch.rand(n, generator=g, device=dev) <= 0.5) & signed[op]
            mag = table[op, level]
            mag = torch.where(negative, -mag, mag)
            x = self._apply_auto(x, op, group[op], mag)
        return x

    def _apply_auto(self, x: torch.Tensor, op: torch.Tensor, group: torch.Tensor, mag: torch.Tensor) -> torch.Tensor:
        """Sort the images by op group, transform each group as one batch, put them back in place."""
        order = torch.argsort(group, stable=True)
        counts: List[int] = torch.bincount(group, minlength=_AUTO_GROUPS).tolist()  # the round's one host sync
        xs, ops, mags = x[order], op[order], mag[order]
        parts = list(xs.split(counts))
        ops_parts, mag_parts = ops.split(counts), mags.split(counts)
        steps = (None, self._auto_affine, _brightness, self._saturation, self._contrast, _sharpness, _posterize,
                 _solarize, _autocontrast, _equalize)
        for k, step in enumerate(steps):
            if step is not None and counts[k]:
                parts[k] = step(parts[k], ops_parts[k], mag_parts[k])
        out = torch.empty_like(x)
        out[order] = torch.cat(parts)
        return out

    def _auto_affine(self, x: torch.Tensor, op: torch.Tensor, mag: torch.Tensor) -> torch.Tensor:
        """ShearX/Y, TranslateX/Y and Rotate as torchvision's ``affine`` / ``rotate`` on tensors, one resampling.

        The inverse matrices follow ``_get_inverse_affine_matrix`` in float64 (shears about the top-left corner,
        whole-pixel translations truncated like ``int(magnitude)``, rotations about the centre), the grid follows
        ``_affine_grid`` in float32, then nearest sampling with zero fill (torchvision's defaults).
        """
        n, _, h, w = x.shape
        m = mag.double()
        zero = torch.zeros_like(m)
        is_op = lambda name: op == AUTO_OPS.index(name)  # noqa: E731
        shear_deg = torch.rad2deg(torch.atan(m))
        sx = torch.deg2rad(torch.where(is_op("ShearX"), shear_deg, zero))
        sy = torch.deg2rad(torch.where(is_op("ShearY"), shear_deg, zero))
        tx = torch.where(is_op("TranslateX"), torch.trunc(m), zero)
        ty = torch.where(is_op("TranslateY"), torch.trunc(m), zero)
        # rotate() turns by -(angle % 360) in affine's convention.
        rot = torch.deg2rad(torch.where(is_op("Rotate"), -torch.remainder(m, 360.0), zero))
        about_corner = is_op("ShearX") | is_op("ShearY")  # torchvision's shears pass center=[0, 0]
        cx = torch.where(about_corner, -0.5 * w, zero)
        cy = torch.where(about_corner, -0.5 * h, zero)
        a = torch.cos(rot - sy) / torch.cos(sy)
        b = -(a * torch.tan(sx) + torch.sin(rot))
        c = torch.sin(rot - sy) / torch.cos(sy)
        d = torch.cos(rot) - c * torch.tan(sx)
        m0, m1, m3, m4 = d, -b, -c, a
        m2 = cx - m0 * (cx + tx) - m1 * (cy + ty)
        m5 = cy - m3 * (cx + tx) - m4 * (cy + ty)
        theta = torch.stack([m0, m1, m2, m3, m4, m5], 1).view(n, 2, 3).float()
        base = torch.empty(1, h, w, 3, device=x.device)
        base[..., 0].copy_(torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, steps=w, device=x.device))
        base[..., 1].copy_(torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, steps=h, device=x.device).unsqueeze_(-1))
        base[..., 2].fill_(1)
        scaled = theta.transpose(1, 2) / torch.tensor([0.5 * w, 0.5 * h], device=x.device)
        grid = torch.matmul(base.view(1, h * w, 3), scaled).view(n, h, w, 2)
        out = F.grid_sample(x.float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
        return out.to(x.dtype)

    def _saturation(self, x: torch.Tensor, op: torch.Tensor, mag: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:  # as torchvision (and PIL): no colour to change
            return x
        f = (1.0 + mag).view(-1, 1, 1, 1).to(x.dtype)
        return torch.lerp(self._grey(x), x, f).clamp_(0, 255)

    def _contrast(self, x: torch.Tensor, op: torch.Tensor, mag: torch.Tensor) -> torch.Tensor:
        f = (1.0 + mag).view(-1, 1, 1, 1).to(x.dtype)
        mean = self._grey(x).mean((1, 2, 3), keepdim=True)
        return torch.lerp(mean.expand_as(x), x, f).clamp_(0, 255)

    # ---------------------------------------------------------------- mixup / cutmix (after normalisation)

    def mix(self, x: torch.Tensor, y: torch.Tensor, num_classes: int, epoch: int,
            g: torch.Generator) -> Tuple[torch.Tensor, torch.Tensor]:
        """Mixup or CutMix of the batch with itself flipped: ``(x, soft targets N x num_classes)``.

        The labels ``y`` come back unchanged (int64) when the batch is not mixed: from epoch ``mix_off_epoch``
        (0-based) on, or when the batch's ``mix_prob`` draw says no. Soft rows are
        ``lam * one_hot(y) + (1 - lam) * one_hot(y.flip(0))`` and sum to 1.
        """
        cfg = self.cfg
        if not self.mixes or (cfg.mix_off_epoch and epoch >= cfg.mix_off_epoch):
            return x, y
        # One draw of g seeds the batch's scalars (timm's _params_per_batch, in its order).
        rng = random.Random(int(torch.randint(0, 2 ** 62, (1,), generator=g, device=x.device).item()))
        if rng.random() >= cfg.mix_prob:
            return x, y
        cutmix = cfg.cutmix > 0 and (cfg.mixup <= 0 or rng.random() < cfg.mix_switch_prob)
        alpha = cfg.cutmix if cutmix else cfg.mixup
        lam = rng.betavariate(alpha, alpha)
        partner = x.flip(0)
        if cutmix:
            (top, bottom, left, right), lam = cutmix_box(x.shape[-2], x.shape[-1], lam, rng)
            x = x.clone()
            x[:, :, top:bottom, left:right] = partner[:, :, top:bottom, left:right]
        else:
            x = torch.lerp(partner, x, lam)
        one_hot = F.one_hot(y, num_classes).to(torch.float32)
        return x, one_hot * lam + one_hot.flip(0) * (1.0 - lam)


def cutmix_box(height: int, width: int, lam: float, rng: random.Random) -> Tuple[Tuple[int, int, int, int], float]:
    """timm's ``rand_bbox`` + ``correct_lam``: ``((top, bottom, left, right), lam)``, lam = 1 - the box's share.

    The box has sides ``int(side * sqrt(1 - lam))`` around a uniform centre, clipped to the image, so its true
    area can be smaller; the returned lam is the unpasted share of the image.
    """
    ratio = math.sqrt(1.0 - lam)
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy, cx = rng.randrange(height), rng.randrange(width)
    top, bottom = min(max(cy - cut_h // 2, 0), height), min(max(cy + cut_h // 2, 0), height)
    left, right = min(max(cx - cut_w // 2, 0), width), min(max(cx + cut_w // 2, 0), width)
    return (top, bottom, left, right), 1.0 - (bottom - top) * (right - left) / float(height * width)


# ---------------------------------------------------------------- the per-image pixel ops of auto()
# Each takes a group of images (N x C x H x W, 0..255), their op ids and signed magnitudes (N), as torchvision's
# functional op on uint8 would treat one image (see the module docstring for where values stay fractional).

def _brightness(x: torch.Tensor, op: torch.Tensor, mag: torch.Tensor) -> torch.Tensor:
    return (x * (1.0 + mag).view(-1, 1, 1, 1).to(x.dtype)).clamp_(0, 255)


def _sharpness(x: torch.Tensor, op: torch.Tensor, mag: torch.Tensor) -> torch.Tensor:
    """torchvision's adjust_sharpness: blend with a 3 x 3 smoothing ([1 1 1; 1 5 1; 1 1 1] / 13) inside the border."""
    n, c, h, w = x.shape
    if h <= 2 or w <= 2:
        return x
    kernel = torch.full((3, 3), 1.0 / 13.0, dtype=x.dtype, device=x.device)
    kernel[1, 1] = 5.0 / 13.0
    blurred = F.conv2d(x, kernel.expand(c, 1, 3, 3), groups=c)
    out = x.clone()
    inner = out[..., 1:-1, 1:-1]
    f = (1.0 + mag).view(-1, 1, 1, 1).to(x.dtype)
    out[..., 1:-1, 1:-1] = torch.lerp(blurred, inner, f)
    return out.clamp_(0, 255)


def _levels(x: torch.Tensor) -> torch.Tensor:
    """The uint8 values the integer ops act on."""
    return x.round().clamp_(0, 255)


def _posterize(x: torch.Tensor, op: torch.Tensor, mag: torch.Tensor) -> torch.Tensor:
    """Keep the top ``bits`` bits: floor(v / 2^(8 - bits)) * 2^(8 - bits), as ``v & mask`` on uint8."""
    step = torch.pow(2.0, 8.0 - mag).view(-1, 1, 1, 1).to(x.dtype)
    return torch.floor(_levels(x) / step) * step


def _solarize(x: torch.Tensor, op: torch.Tensor, mag: torch.Tensor) -> torch.Tensor:
    """Invert the values >= 255 x magnitude (the threshold in float32, as torchvision's uint8 comparison has it)."""
    v = _levels(x)
    threshold = (mag.double() * 255.0).float().view(-1, 1, 1, 1)
    return torch.where(v.float() >= threshold, 255.0 - v, v)


def _autocontrast(x: torch.Tensor, op: torch.Tensor, mag: torch.Tensor) -> torch.Tensor:
    """Stretch each channel's [min, max] to [0, 255]; a flat channel stays as it is."""
    lo = x.amin((2, 3), keepdim=True)
    hi = x.amax((2, 3), keepdim=True)
    flat = hi == lo
    scale = torch.where(flat, 1.0, 255.0 / (hi - lo).clamp_min(1e-12))
    return ((x - torch.where(flat, 0.0, lo)) * scale).clamp_(0, 255)


def _equalize(x: torch.Tensor, op: torch.Tensor, mag: torch.Tensor) -> torch.Tensor:
    """Per-image, per-channel histogram equalisation with PIL's lookup table, as torchvision's equalize on uint8.

    One ``bincount`` for the whole group: each (image, channel) plane gets its own 256 bins by an offset.
    """
    n, c, h, w = x.shape
    planes = n * c
    v = _levels(x).long().view(planes, h * w)
    offsets = torch.arange(planes, device=x.device).view(planes, 1) * 256
    hist = torch.bincount((v + offsets).flatten(), minlength=planes * 256).view(planes, 256)
    cum = hist.cumsum(1)
    last = cum.argmax(1, keepdim=True)  # the first bin reaching the total: the plane's largest value
    step = torch.div(h * w - hist.gather(1, last), 255, rounding_mode="floor")  # PIL: non-max pixels // 255
    lut = torch.div(cum[:, :-1] + step // 2, step.clamp(min=1), rounding_mode="floor").clamp_(0, 255)
    lut = torch.cat([torch.zeros_like(lut[:, :1]), lut], 1)
    out = torch.where(step != 0, lut.gather(1, v), v)  # a plane of (nearly) one value is left as it is
    return out.view(n, c, h, w).to(x.dtype)
