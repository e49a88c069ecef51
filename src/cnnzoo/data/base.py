"""The data types every source returns, the validation split and the per-channel statistics.

A source gives a :class:`Dataset`: its splits are either :class:`ImageData` (uint8 images held in
memory, the small datasets) or :class:`FolderData` (a list of image files, streamed). Everything
downstream (the loaders, the trainer) only sees these types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

import torch

from ..errors import UserError
# ImageNet's per-channel statistics on a 0..1 scale, the convention for photographs of unknown origin: declared with
# the pretrained weights that use them.
from ..hub import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["ImageData", "FolderData", "Dataset", "Split", "split_validation", "take_per_class", "channel_stats",
           "convert_channels", "convert_stats", "IMAGENET_MEAN", "IMAGENET_STD", "LUMA"]

# ITU-R BT.601 luma weights, what PIL's convert("L") uses.
LUMA = (0.299, 0.587, 0.114)


@dataclass
class ImageData:
    """An in-memory split.

    Attributes:
        images: uint8, N x C x H x W, on the CPU.
        labels: int64, N.
    """

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class FolderData:
    """A streamed split: ``(path, class index)`` per image file.

    Attributes:
        samples: ``(path, class index)`` per image of the split.
        root: the directory the files were scanned from (``DIR/train``), None for a hand-made list; a split carved
            out of it keeps it, so that every part shares one decoded cache (:mod:`cnnzoo.data.cache`).
        files: every image file of ``root``'s scan, in order (the cache's rows); None: the samples' own paths.
    """

    samples: List[Tuple[str, int]]
    root: Optional[str] = None
    files: Optional[List[str]] = None

    def subset(self, indices: Sequence[int]) -> "FolderData":
        """The samples at ``indices``, keeping the scan they came from."""
        return FolderData([self.samples[i] for i in indices], self.root, self.files)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> torch.Tensor:
        return torch.tensor([c for _, c in self.samples], dtype=torch.int64)


Split = Union[ImageData, FolderData]


@dataclass
class Dataset:
    """A dataset as the trainer sees it.

    Attributes:
        name: the dataset's name in :data:`cnnzoo.data.DATASETS`.
        train: the training split.
        test: the test split, or None where the dataset has none (then the run has no test pass).
        classes: class names, index = label.
        in_chans: channels of the stored images (1 or 3).
        image_size: H, W of the stored images (folder: the first image's size).
        mean: per-channel mean on a 0..1 scale, over the training images (folder: ImageNet's).
        std: per-channel standard deviation, same scale.
        val: the dataset's own validation split (a folder's ``val/``), or None: then validation is carved from
            train (``data.val_split``).
    """

    name: str
    train: Split
    test: Optional[Split]
    classes: List[str]
    in_chans: int
    image_size: Tuple[int, int]
    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    val: Optional[Split] = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def _stratified_pick(labels: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """A boolean mask selecting ``round(N * fraction)`` samples, each class in proportion, seeded."""
    n = int(labels.numel())
    total = int(round(n * fraction))
    classes, counts = torch.unique(labels, return_counts=True)
    exact = counts.double() * fraction
    quota = exact.floor().long()
    # Largest remainders get the leftover picks, so the total is exactly round(N * fraction).
    left = total - int(quota.sum())
    if left > 0:
        order = torch.argsort(-(exact - quota.double()), stable=True)[:left]
        quota[order] += 1
    g = torch.Generator().manual_seed(int(seed))
    mask = torch.zeros(n, dtype=torch.bool)
    for c, q in zip(classes.tolist(), quota.tolist()):
        idx = torch.nonzero(labels == c).flatten()
        mask[idx[torch.randperm(idx.numel(), generator=g)[:q]]] = True
    return mask


def split_validation(data: Split, fraction: float, seed: int) -> Tuple[Split, Split]:
    """Hold out ``fraction`` of ``data``, stratified by class and seeded: ``(train, val)``.

    The same seed gives the same split; the two parts are disjoint and keep the original order.

    Args:
        data: the split to divide.
        fraction: share of the images held out, 0 < fraction < 1.
        seed: the seed of the random pick.
    """
    if not isinstance(fraction, (int, float)) or not 0.0 < float(fraction) < 1.0:
        raise UserError(f"validation fraction must be between 0 and 1 (exclusive), got {fraction!r}; "
                        "use e.g. 0.1")
    labels = data.labels
    n = int(labels.numel())
    held = int(round(n * fraction))
    if held < 1 or held > n - 1:
        raise UserError(f"a validation fraction of {fraction} of {n} images leaves an empty part; "
                        "choose a fraction that keeps at least one image on each side")
    mask = _stratified_pick(labels, float(fraction), seed)
    keep = torch.nonzero(~mask).flatten()
    val = torch.nonzero(mask).flatten()
    if isinstance(data, ImageData):
        return (ImageData(data.images[keep], data.labels[keep]), ImageData(data.images[val], data.labels[val]))
    return data.subset(keep.tolist()), data.subset(val.tolist())


def channel_stats(images: torch.Tensor) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """Exact per-channel mean and std (0..1 scale) of uint8 N x C x H x W images, from 256-bin histograms.

    Histograms keep the memory at one channel's worth of bytes, where a float copy of CIFAR would be 600 MB.
    """
    values = torch.arange(256, dtype=torch.float64) / 255.0
    means, stds = [], []
    for c in range(images.shape[1]):
        hist = torch.bincount(images[:, c].reshape(-1), minlength=256).double()
        total = hist.sum().clamp_min(1.0)
        m = float((hist * values).sum() / total)
        var = float((hist * (values - m) ** 2).sum() / total)
        means.append(m)
        stds.append(max(var, 1e-12) ** 0.5)
    return tuple(means), tuple(stds)


def check_split(images: torch.Tensor, labels: torch.Tensor, where: str) -> ImageData:
    """Validate shapes and dtypes of a decoded split (used by the sources)."""
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise UserError(f"{where}: expected uint8 N x C x H x W images, got {images.dtype} {tuple(images.shape)}; "
                        "the files are corrupt, download them again")
    if labels.numel() != images.shape[0]:
        raise UserError(f"{where}: {images.shape[0]} images but {labels.numel()} labels; "
                        "the files are corrupt or mismatched, download them again")
    return ImageData(images, labels.to(torch.int64))


def convert_stats(values: Sequence[float], have: int, want: int, kind: str) -> Tuple[float, ...]:
    """Map per-channel statistics between 1 and 3 channels (grey repeats; colour to grey by luma)."""
    values = tuple(float(v) for v in values)
    if len(values) == want:
        return values
    if len(values) == 1:
        return values * want
    if len(values) == 3 and want == 1:
        # Luma of the channel statistics: exact for the mean, and for the std when channels move together.
        return (sum(w * v for w, v in zip(LUMA, values)),)
    raise UserError(f"{kind} has {len(values)} values but the images have {want} channels (stored: {have}); "
                    f"give one value per channel")


def convert_channels(x: torch.Tensor, in_chans: Optional[int]) -> torch.Tensor:
    """Images (``C x H x W`` or ``N x C x H x W``, uint8 or float) with ``in_chans`` channels.

    Grey to RGB repeats the channel; RGB to grey is the BT.601 luma (:data:`LUMA`, PIL's ``convert("L")``),
    rounded for uint8. ``None`` or the same count returns ``x`` unchanged.
    """
    dim = x.dim() - 3
    c = int(x.shape[dim])
    if in_chans is None or in_chans == c:
        return x
    if c == 1 and in_chans == 3:
        return x.expand(*x.shape[:dim], 3, *x.shape[dim + 1:]).contiguous()
    if c == 3 and in_chans == 1:
        shape = [1] * x.dim()
        shape[dim] = 3
        grey = (x.float() * torch.tensor(LUMA, device=x.device).view(shape)).sum(dim, keepdim=True)
        return grey.round().clamp(0, 255).to(torch.uint8) if x.dtype == torch.uint8 else grey.to(x.dtype)
    raise UserError(f"cannot turn {c}-channel images into {in_chans}-channel input; use 1 (grey) or 3 (RGB)")


def centre_offsets(height: int, width: int, size: Sequence[int]) -> Tuple[int, int]:
    """``(top, left)`` of the centred ``size`` (H, W) window in a ``height x width`` image, rounded as
    torchvision's ``CenterCrop`` rounds them: the one rule the folder loader and ``cnnzoo predict`` crop by."""
    return int(round((height - int(size[0])) / 2.0)), int(round((width - int(size[1])) / 2.0))


def take_per_class(data: Split, n: int, seed: int) -> Split:
    """The first ``n`` images of each class in a seeded shuffle: a small labelled set for few-shot runs."""
    labels = data.labels
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed + 7919))
    keep, count = [], {}
    for i in perm.tolist():
        c = int(labels[i])
        if count.get(c, 0) < n:
            count[c] = count.get(c, 0) + 1
            keep.append(i)
    idx = torch.tensor(sorted(keep))
    if isinstance(data, ImageData):
        return ImageData(data.images[idx], data.labels[idx])
    return data.subset(idx.tolist())
