"""Loaders: batches of normalised float images and int64 labels on the training device.

* In-memory splits (:class:`~cnnzoo.data.base.ImageData`) go to the device once, as uint8; each batch is
  indexed there, converted, resized, augmented and normalised in a few whole-batch tensor operations
  (the airbench way), so the loader never limits small-image training.
* Folder splits stream through a ``torch.utils.data.DataLoader``: workers decode and resize with PIL,
  the batch then goes through the same device-side augmentation and normalisation.

Randomness is a pure function of ``(seed, epoch, rank, batch index)``: the shuffle is seeded by
``(seed, epoch)`` (the same on every rank, each rank taking a disjoint, equal share), and every batch's
augmentation generator is re-seeded from its index. A resumed run therefore sees the same batches,
and ``set_epoch(e, start_batch=k)`` can skip ahead without computing the skipped batches.
"""

from __future__ import annotations

import math
import os
import weakref
from typing import Dict, Iterator, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from ..errors import UserError, warn
from .augment import IMAGENET_EIGVAL, IMAGENET_EIGVEC, AugmentConfig, BatchAugment, pca_eigen
from .base import FolderData, ImageData, convert_channels, convert_stats

__all__ = ["Loader", "TensorLoader", "FolderLoader", "make_loader"]


def _mix(*parts: int) -> int:
    """A 63-bit seed from several integers (seed, epoch, rank, batch), well spread so neighbours differ."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = ((h ^ (int(p) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


def _available_bytes(device: torch.device) -> Optional[int]:
    """Memory free for batches on ``device`` (host RAM for the CPU), or None where it cannot be told."""
    try:
        if device.type == "cuda":
            return int(torch.cuda.mem_get_info(device)[0])
        with open("/proc/meminfo") as f:  # MemAvailable counts the page cache the kernel can give back
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError, RuntimeError):
        return None


def _check_batch_fits(batch_size: int, chans: int, size: Tuple[int, int], device: torch.device) -> None:
    """Refuse, before anything is allocated, a batch whose float32 input alone exceeds half the free memory
    (the network's activations need many times more): one line naming the sizes, instead of an
    out-of-memory traceback or the kernel's OOM killer."""
    need = batch_size * chans * size[0] * size[1] * 4
    free = _available_bytes(device)
    if free is not None and need > free // 2:
        raise UserError(f"a batch of {batch_size} x {chans} x {size[0]} x {size[1]} images needs {need / 2**30:.1f} "
                        f"GiB as float32, more than half the {free / 2**30:.1f} GiB free on {device.type}; "
                        "lower data.batch_size or data.image_size")


class Loader:
    """Iterable over ``(x, y)`` batches for one epoch; ``len()`` is the number of batches per epoch.

    ``x`` is float32 N x C x H x W, normalised, on ``device`` (channels_last if asked); ``y`` is int64 on
    ``device``. Attributes: ``num_samples`` (images this rank sees per epoch), ``batch_size``,
    ``image_size``, ``in_chans`` (channels of ``x``), ``train``, ``epoch``.
    """

    def __init__(self, n: int, *, batch_size: int, train: bool, image_size: Tuple[int, int], mean, std, device,
                 augment: Optional[AugmentConfig], channels_last: bool, seed: int, drop_last: Optional[bool],
                 rank: int, world_size: int, src_chans: int, in_chans: Optional[int]):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise UserError(f"batch size must be a positive whole number, got {batch_size!r}")
        if not (isinstance(world_size, int) and world_size >= 1 and isinstance(rank, int) and 0 <= rank < world_size):
            raise UserError(f"rank {rank!r} / world size {world_size!r} is not valid; need 0 <= rank < world_size")
        if in_chans not in (None, 1, 3) or src_chans not in (1, 3):
            raise UserError(f"cannot turn {src_chans}-channel images into {in_chans}-channel input; "
                            "models take 1 (grey) or 3 (RGB) channels here")
        if augment is not None and not isinstance(augment, AugmentConfig):
            raise UserError(f"augment must be an AugmentConfig, got {type(augment).__name__}")
        self.n = int(n)
        self.batch_size, self.train = batch_size, bool(train)
        self.image_size = _size2(image_size)
        self.device = torch.device(device)
        _check_batch_fits(batch_size, in_chans or src_chans, self.image_size, self.device)
        self.channels_last, self.seed = bool(channels_last), int(seed)
        self.rank, self.world_size = rank, world_size
        self.drop_last = self.train if drop_last is None else bool(drop_last)
        self.src_chans = src_chans
        self.in_chans = in_chans or src_chans
        # Work in as few channels as possible: grey to RGB is repeated only at the very end.
        self.work_chans = 1 if 1 in (self.src_chans, self.in_chans) else 3
        mean = convert_stats(_seq(mean, "mean"), src_chans, self.work_chans, "mean")
        std = convert_stats(_seq(std, "std"), src_chans, self.work_chans, "std")
        if min(std) <= 0:
            raise UserError(f"std must be positive, got {std}")
        # Normalisation fused with the 0..255 -> 0..1 scaling: x * scale + bias.
        self.scale = torch.tensor([1.0 / (255.0 * s) for s in std], device=self.device).view(1, -1, 1, 1)
        self.bias = torch.tensor([-m / s for m, s in zip(mean, std)], device=self.device).view(1, -1, 1, 1)
        self.augment = augment if (self.train and augment is not None and augment.active) else None
        self.per_rank = self.n // world_size if self.train else len(range(rank, self.n, world_size))
        self.num_batches = (self.per_rank // batch_size if self.drop_last
                            else math.ceil(self.per_rank / batch_size))
        self.num_samples = self.num_batches * batch_size if self.drop_last else self.per_rank
        self.epoch, self._start = 0, 0
        self._gen = torch.Generator(device=self.device) if self.augment is not None else None
        self._aug: Optional[BatchAugment] = None
        self._resize_mats = None

    def __len__(self) -> int:
        return self.num_batches

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Seed the next pass: epoch ``epoch``, starting at batch ``start_batch`` (a resumed epoch).

        Without a call, every completed pass moves on to the next epoch by itself.
        """
        self.epoch, self._start = int(epoch), max(0, int(start_batch))

    def _order(self, epoch: int) -> torch.Tensor:
        """This rank's sample indices for ``epoch``, cut to whole batches if drop_last."""
        if self.train:
            g = torch.Generator().manual_seed(_mix(self.seed, epoch))
            perm = torch.randperm(self.n, generator=g)
            idx = perm[self.rank::self.world_size][:self.per_rank]
        else:
            idx = torch.arange(self.rank, self.n, self.world_size)
        return idx[:self.num_samples]

    def _process(self, x: torch.Tensor, epoch: int, batch: int) -> torch.Tensor:
        """uint8 batch on the device -> normalised float32 input."""
        x = x.float()
        x = convert_channels(x, self.work_chans)
        if tuple(x.shape[-2:]) != self.image_size:
            x = self._resize(x)
        g = None
        if self._aug is not None:
            g = self._gen.manual_seed(_mix(self.seed, epoch, self.rank, batch))
            x = self._aug.colour(self._aug.geometry(x, g), g)
        x = torch.addcmul(self.bias, x, self.scale)
        if self._aug is not None:
            x = self._aug.erase(x, g)
        x = convert_channels(x, self.in_chans)
        return x.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        """Bilinear resize (antialiased when shrinking), as F.interpolate computes it.

        On the CPU it runs as two small matrix products with the interpolation matrices, about twice as fast as
        F.interpolate's kernel; the matrices are F.interpolate applied to an identity, so the numbers agree.
        """
        h, w = x.shape[-2:]
        down = h > self.image_size[0] or w > self.image_size[1]
        if x.device.type != "cpu":
            return F.interpolate(x, size=self.image_size, mode="bilinear", align_corners=False, antialias=down)
        key = (h, w, x.dtype)
        if self._resize_mats is None or self._resize_mats[0] != key:
            def mat(n_in: int, n_out: int) -> torch.Tensor:
                eye = torch.eye(n_in, dtype=torch.float32).view(1, 1, n_in, n_in)
                return F.interpolate(eye, size=(n_out, n_in), mode="bilinear", align_corners=False,
                                     antialias=down)[0, 0].to(x.dtype)

            self._resize_mats = (key, mat(h, self.image_size[0]), mat(w, self.image_size[1]).T.contiguous())
        _, ry, rxt = self._resize_mats
        return torch.matmul(torch.matmul(ry, x), rxt)

    def _epoch_start(self) -> Tuple[int, int]:
        epoch, start = self.epoch, self._start
        self._start = 0
        return epoch, start

    def _epoch_done(self, epoch: int) -> None:
        if self.epoch == epoch:
            self.epoch = epoch + 1

    def __iter__(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        raise NotImplementedError


class TensorLoader(Loader):
    """The in-memory loader: the uint8 split lives on the device; batches are built there."""

    def __init__(self, data: ImageData, *, in_chans: Optional[int] = None, **kw):
        images, labels = data.images, data.labels
        if images.dtype != torch.uint8 or images.dim() != 4 or labels.dim() != 1 or labels.numel() != len(images):
            raise UserError(f"in-memory data must be uint8 N x C x H x W images with N labels, got "
                            f"{images.dtype} {tuple(images.shape)} and {tuple(labels.shape)} labels")
        super().__init__(len(images), src_chans=int(images.shape[1]), in_chans=in_chans, **kw)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device, torch.int64)
        if self.augment is not None:
            eigen = pca_eigen(images) if self.augment.pca_lighting > 0 and self.work_chans == 3 else None
            self._aug = BatchAugment(self.augment, self.work_chans, eigen, self.device)

    def __iter__(self):
        epoch, start = self._epoch_start()
        order = self._order(epoch).to(self.device)
        bs = self.batch_size
        for b in range(start, self.num_batches):
            idx = order[b * bs:(b + 1) * bs]
            yield self._process(self.images.index_select(0, idx), epoch, b), self.labels.index_select(0, idx)
        self._epoch_done(epoch)


class _EpochBatches:
    """The batch sampler of a FolderLoader: the current epoch's batches of this rank (read at each pass).

    It holds its loader weakly: a reference cycle through the DataLoader would leave persistent workers to be
    reaped by the garbage collector, which waits out a 5 s timeout per worker.
    """

    def __init__(self, loader: "FolderLoader"):
        self.loader = weakref.proxy(loader)
        self.plan = (0, 0)

    def __len__(self) -> int:
        return self.loader.num_batches

    def __iter__(self):
        epoch, start = self.plan
        order = self.loader._order(epoch).tolist()
        bs = self.loader.batch_size
        for b in range(start, self.loader.num_batches):
            yield order[b * bs:(b + 1) * bs]


class FolderLoader(Loader):
    """The streamed loader: DataLoader workers decode and resize; augmentation runs per batch on the device."""

    def __init__(self, data: FolderData, *, in_chans: Optional[int] = None, num_workers: int = 2,
                 max_failures: int = 10, mean=None, **kw):
        from .folder import FolderImages, collate_decoded

        if not data.samples:
            raise UserError("the folder split has no images; add image files under <data-dir>/train/<class>/")
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise UserError(f"num_workers must be 0 or more, got {num_workers!r}")
        # Files are decoded straight to what the model takes; the dataset's channel count is len(mean).
        src = in_chans or len(_seq(mean, "mean"))
        super().__init__(len(data.samples), src_chans=src, in_chans=in_chans, mean=mean, **kw)
        self.max_failures = int(max_failures)
        self.failures: Dict[str, str] = {}
        if self.augment is not None:
            eigen = (torch.tensor(IMAGENET_EIGVAL), torch.tensor(IMAGENET_EIGVEC))
            self._aug = BatchAugment(self.augment, self.work_chans, eigen, self.device)
        self._batches = _EpochBatches(self)
        self._dl = torch.utils.data.DataLoader(
            FolderImages(data.samples, "L" if src == 1 else "RGB", self.image_size),
            batch_sampler=self._batches, num_workers=num_workers, collate_fn=collate_decoded,
            pin_memory=self.device.type == "cuda", persistent_workers=num_workers > 0)

    def _failed(self, failed) -> None:
        for path, err in failed:
            if path in self.failures:
                continue
            self.failures[path] = err
            warn(f"skipping unreadable image {path} ({err})")
            if len(self.failures) > self.max_failures:
                raise UserError(f"{len(self.failures)} images could not be read (more than {self.max_failures}), "
                                f"e.g. {path} ({err}); fix or remove the broken files")

    def __iter__(self):
        epoch, start = self._epoch_start()
        self._batches.plan = (epoch, start)
        for b, (x, y, failed) in enumerate(self._dl, start=start):
            if failed:
                self._failed(failed)
            if x is None:
                continue
            x = x.to(self.device, non_blocking=True)
            yield self._process(x, epoch, b), y.to(self.device, non_blocking=True)
        self._epoch_done(epoch)


def _size2(size) -> Tuple[int, int]:
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise UserError(f"image size must be an int or (height, width), got {size!r}") from None
    if h < 1 or w < 1:
        raise UserError(f"image size must be positive, got {size!r}")
    return h, w


def _seq(values, what: str) -> Sequence[float]:
    if values is None:
        raise UserError(f"{what} is required (per-channel, 0..1 scale; Dataset.{what} has it)")
    if isinstance(values, (int, float)):
        return (float(values),)
    return tuple(float(v) for v in values)


def make_loader(data: Union[ImageData, FolderData], *, batch_size: int, train: bool, image_size, mean, std,
                device="cpu", augment: Optional[AugmentConfig] = None, channels_last: bool = False, seed: int = 0,
                drop_last: Optional[bool] = None, rank: int = 0, world_size: int = 1, num_workers: int = 2,
                in_chans: Optional[int] = None, max_failures: int = 10) -> Loader:
    """A loader over ``data``: in memory on the device for :class:`ImageData`, streamed for :class:`FolderData`.

    Args:
        data: the split.
        batch_size: images per batch (per rank).
        train: shuffle, augment and (by default) drop the last partial batch; evaluation keeps every image in order.
        image_size: H, W (or one int) of the batches; images are resized (bilinear) when they differ.
        mean, std: per-channel statistics, 0..1 scale (the dataset's; 1-value and grey/RGB forms are converted).
        device: where batches are produced.
        augment: training augmentation (ignored when ``train`` is False).
        channels_last: return batches in channels_last memory format.
        seed: the run's seed; shuffle and augmentation derive from it, the epoch, the rank and the batch index.
        drop_last: default: True for training, False for evaluation.
        rank, world_size: data parallelism: training ranks get disjoint, equal shares of each epoch; evaluation
            ranks get disjoint shares covering every image once (sizes may differ by one).
        num_workers: decoding processes (folder data only).
        in_chans: channels the model takes (grey is repeated to 3; RGB becomes grey by luma); default: the data's.
        max_failures: unreadable files tolerated (each skipped with a warning) before stopping (folder data only).
    """
    kw = dict(batch_size=batch_size, train=train, image_size=image_size, std=std, device=device, augment=augment,
              channels_last=channels_last, seed=seed, drop_last=drop_last, rank=rank, world_size=world_size,
              in_chans=in_chans)
    if isinstance(data, ImageData):
        return TensorLoader(data, mean=mean, **kw)
    if isinstance(data, FolderData):
        return FolderLoader(data, mean=mean, num_workers=num_workers, max_failures=max_failures, **kw)
    raise UserError(f"cannot load {type(data).__name__}: expected ImageData or FolderData (from load_dataset)")
