"""Loaders: batches of normalised float images and int64 labels (or mixed soft targets) on the training device.

* In-memory splits (:class:`~cnnzoo.data.base.ImageData`) go to the device once, as uint8; each batch is
  indexed there, converted, resized (or randomly cropped), augmented and normalised in a few whole-batch tensor
  operations (the airbench way), so the loader never limits small-image training.
* Folder splits (:class:`~cnnzoo.data.base.FolderData`) are decoded to uint8 squares of S x S, S = the crop
  size x 256/224 (:func:`~cnnzoo.data.cache.decoded_size`). With the cache (``data.cache``, the default) each file
  is decoded once: the first pass decodes in DataLoader workers, which write each image into a memory-mapped
  file (:class:`~cnnzoo.data.cache.DecodedCache`) as they go; later passes, and later runs over the same files,
  read whole batches from that file in the main process, no workers. Without the cache the workers decode every
  epoch. Either way the batch goes to the device as S x S uint8, where training takes a random crop
  (``BatchAugment.resized_crop``, when ``data.augment.random_resized_crop`` or ``scale_jitter`` is on) or the
  centre crop, and evaluation always the centre crop; then the same augmentation and normalisation as in memory.

Randomness is a pure function of ``(seed, epoch, rank, batch index)``: the shuffle is seeded by
``(seed, epoch)`` (the same on every rank, each rank taking a disjoint, equal share), and every batch's
augmentation generator is re-seeded from its index. A folder batch holds its images in index order whether it
was decoded or read from the cache, so a resumed run sees the same batches whatever the cache held, and
``set_epoch(e, start_batch=k)`` can skip ahead without computing the skipped batches. The alternating flip
(``data.augment.alt_flip``) is a function of ``(seed, sample index, epoch)`` alone: each batch carries its samples'
indices to :meth:`Loader._process`, so the flip follows the image whatever its place in the shuffle or its rank.

Training batches: with ``drop_last`` (the default) the last partial batch of an epoch is left out
(``num_samples`` says how many images an epoch uses); without it the partial batch is trained on, except a batch
of one image, which BatchNorm cannot normalise in training (it is left out too).
"""

from __future__ import annotations

import math
import os
import weakref
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError, warn
from .augment import IMAGENET_EIGVAL, IMAGENET_EIGVEC, AugmentConfig, BatchAugment, pca_eigen
from .base import FolderData, ImageData, centre_offsets, convert_channels, convert_stats

__all__ = ["Loader", "TensorLoader", "FolderLoader", "make_loader"]


def _mix(*parts: int) -> int:
    """A 63-bit seed from several integers (seed, epoch, rank, batch), well spread so neighbours differ."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = ((h ^ (int(p) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


# The seed key of alt_flip's per-image bits: _mix(seed, _FLIP_KEY); the shuffles use _mix(seed, epoch), epoch >= 0.
_FLIP_KEY = -1


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
    ``device``, or float N x num_classes soft targets for a batch that mixup or CutMix mixed. Attributes:
    ``num_samples`` (images this rank sees per epoch), ``per_rank`` (images of this rank's share, before
    ``drop_last``), ``batch_size``, ``image_size``, ``in_chans`` (channels of ``x``), ``train``, ``epoch``,
    ``drop_last``.
    """

    def __init__(self, n: int, *, batch_size: int, train: bool, image_size: Tuple[int, int], mean, std, device,
                 augment: Optional[AugmentConfig], channels_last: bool, seed: int, drop_last: Optional[bool],
                 rank: int, world_size: int, src_chans: int, in_chans: Optional[int],
                 num_classes: Optional[int] = None):
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
        if self.augment is not None and self.augment.mixes and not num_classes:
            raise UserError("data.augment mixup / cutmix need the number of classes: pass num_classes to make_loader")
        self.num_classes = num_classes
        self.per_rank = self.n // world_size if self.train else len(range(rank, self.n, world_size))
        last = self.per_rank % batch_size
        if self.drop_last:
            self.num_samples = self.per_rank - last
        elif self.train and last == 1 and self.per_rank > 1:
            self.num_samples = self.per_rank - 1  # a batch of one image: BatchNorm has no batch statistics
        else:
            self.num_samples = self.per_rank
        self.num_batches = math.ceil(self.num_samples / batch_size)
        self.epoch, self._start = 0, 0
        self._gen = torch.Generator(device=self.device) if self.augment is not None else None
        # alt_flip: sample i is mirrored in epoch e iff _first_flips[i] XOR (e odd), one bit per sample drawn from
        # the seed alone, so every rank, every replay and every shuffle agree on it.
        self._first_flips: Optional[torch.Tensor] = None
        if self.augment is not None and self.augment.alt_flip:
            bits = torch.Generator().manual_seed(_mix(self.seed, _FLIP_KEY))
            self._first_flips = (torch.rand(self.n, generator=bits) < 0.5).to(self.device)
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

    def _process(self, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, epoch: int,
                 batch: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """uint8 batch and labels on the device -> normalised float32 input and its targets.

        ``idx`` holds the batch's sample indices (on any device), in the batch's order.
        """
        x = x.float()
        x = convert_channels(x, self.work_chans)
        g = None
        if self._aug is not None:
            g = self._gen.manual_seed(_mix(self.seed, epoch, self.rank, batch))
        if self._aug is not None and self._aug.crops:
            x = self._aug.resized_crop(x, self.image_size, g)
        elif tuple(x.shape[-2:]) != self.image_size:
            x = self._fit(x)
        if self._aug is not None:
            flip = None
            if self._first_flips is not None:
                flip = self._first_flips[idx.to(self.device)] ^ bool(epoch % 2)
            x = self._aug.colour(self._aug.geometry(x, g, flip), g)
        x = torch.addcmul(self.bias, x, self.scale)
        if self._aug is not None:
            x = self._aug.erase(x, g)
            if self._aug.mixes:
                x, y = self._aug.mix(x, y, self.num_classes, epoch, g)
        x = convert_channels(x, self.in_chans)
        return x.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format), y

    def _fit(self, x: torch.Tensor) -> torch.Tensor:
        """A batch of another size to ``image_size``: in memory, resized (folder squares: the centre crop)."""
        return self._resize(x)

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
            yield self._process(self.images.index_select(0, idx), self.labels.index_select(0, idx), idx, epoch, b)
        self._epoch_done(epoch)


class _EpochBatches:
    """The batch sampler of a FolderLoader: the current pass's requests (read at each pass).

    Each batch is this rank's slice of the epoch's order, sorted (so that a batch read from the cache, which
    reads rows in order, holds the same images in the same order as a decoded one). With a cache being built,
    an index asks a worker to decode (``i``) or to read a row decoded before (``-(i + 1)``), rows known to be
    unreadable are left out, and after the epoch's batches come decode-only batches of this rank's share of the
    rows the epoch did not reach (a resumed epoch's skipped batches, the images ``drop_last`` left out, the other
    ranks' shares), so that the next pass finds the cache whole.

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
        loader = self.loader
        order = loader._order(epoch).numpy()
        bs = loader.batch_size
        for b in range(start, loader.num_batches):
            yield loader._requests(np.sort(order[b * bs:(b + 1) * bs]))
        left = loader._leftovers(order[start * bs:])
        for k in range(0, len(left), bs):
            yield loader._requests(left[k:k + bs])


class FolderLoader(Loader):
    """The folder loader: images decoded once into a memory-mapped cache (or, without it, every epoch) by
    DataLoader workers; cropping, augmentation and normalisation per batch on the device.

    Attributes (besides :class:`Loader`'s): ``cache`` (the :class:`~cnnzoo.data.cache.DecodedCache`, or None),
    ``decoded_size`` (S), ``failures`` (path -> why it could not be read, this run).
    """

    def __init__(self, data: FolderData, *, in_chans: Optional[int] = None, num_workers: int = 2,
                 max_failures: int = 10, max_bad_share: float = 0.01, cache: bool = True,
                 cache_dir: Optional[str] = None, mean=None, **kw):
        from .cache import DecodedCache, decoded_size
        from .folder import FolderImages, collate_decoded

        if not data.samples:
            raise UserError("the folder split has no images; add image files under <data-dir>/train/<class>/")
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise UserError(f"num_workers must be 0 or more, got {num_workers!r}")
        if not 0 <= float(max_bad_share) < 1:
            raise UserError(f"data.max_bad_share is the share of unreadable images tolerated, in [0, 1), "
                            f"got {max_bad_share!r}")
        # Files are decoded straight to what the model takes; the dataset's channel count is len(mean).
        src = in_chans or len(_seq(mean, "mean"))
        super().__init__(len(data.samples), src_chans=src, in_chans=in_chans, mean=mean, **kw)
        self.max_failures, self.max_bad_share = int(max_failures), float(max_bad_share)
        self.failures: Dict[str, str] = {}
        self.labels = torch.tensor([c for _, c in data.samples], dtype=torch.int64)
        self.decoded_size = decoded_size(self.image_size)
        mode = "L" if src == 1 else "RGB"
        self.cache: Optional[DecodedCache] = None
        self.rows: Optional[np.ndarray] = None  # sample i is row rows[i] of the cache
        if cache:
            files = data.files or [p for p, _ in data.samples]
            where = {p: i for i, p in enumerate(files)}
            if any(p not in where for p, _ in data.samples):  # samples from elsewhere: a cache of their own
                files, where = [p for p, _ in data.samples], {p: i for i, (p, _) in enumerate(data.samples)}
                data = FolderData(data.samples)
            self.cache = DecodedCache(files, mode, self.decoded_size, cache_dir, data.root)
            self.rows = np.array([where[p] for p, _ in data.samples], dtype=np.int64)
            self._check_share([p for (p, _), st in zip(data.samples, self._states()) if st == DecodedCache.BAD])
        self._remembered = self.cache is not None  # say once which remembered files are skipped
        if self.augment is not None:
            eigen = (torch.tensor(IMAGENET_EIGVAL), torch.tensor(IMAGENET_EIGVEC))
            self._aug = BatchAugment(self.augment, self.work_chans, eigen, self.device)
        self._batches = _EpochBatches(self)
        self._dl = torch.utils.data.DataLoader(
            FolderImages(data.samples, mode, (self.decoded_size, self.decoded_size), self.cache, self.rows),
            batch_sampler=self._batches, num_workers=num_workers, collate_fn=collate_decoded,
            pin_memory=self.device.type == "cuda", persistent_workers=num_workers > 0,
            # Its own generator for the workers' seeds: a pass through the workers (a cold cache) then draws
            # nothing from the global RNG, so dropout draws the same whether the cache was warm or cold.
            generator=torch.Generator().manual_seed(self.seed))

    # ---------------------------------------------------------------- what the cache knows

    def _states(self) -> np.ndarray:
        """Per sample: its row's :meth:`~cnnzoo.data.cache.DecodedCache.states` (unknown, good, unreadable)."""
        return self.cache.states(self.rows)

    def _known(self) -> np.ndarray:
        """Per sample: its row is decoded (or known unreadable) in the cache."""
        return self._states() != self.cache.UNKNOWN

    def _requests(self, idx: np.ndarray) -> List[int]:
        """A batch's indices as the workers take them: decode, or read the cache's row; known-bad rows left out."""
        if self.cache is None:
            return idx.tolist()
        states = self.cache.states(self.rows[idx])
        return [i if st == self.cache.UNKNOWN else -i - 1
                for i, st in zip(idx.tolist(), states.tolist()) if st != self.cache.BAD]

    def _leftovers(self, reached: np.ndarray) -> np.ndarray:
        """This rank's share of the samples whose rows are still unknown and that this pass does not reach."""
        if self.cache is None:
            return np.zeros(0, dtype=np.int64)
        todo = ~self._known()
        todo[reached] = False
        return np.nonzero(todo)[0][self.rank::self.world_size]

    # ---------------------------------------------------------------- unreadable files

    def _tolerated(self) -> int:
        """Unreadable files tolerated: ``max_failures``, or the share ``max_bad_share`` of the split if larger."""
        return max(self.max_failures, int(self.max_bad_share * self.n))

    def _check_share(self, bad: List[str], err: str = "") -> None:
        if len(bad) > self._tolerated():
            example = f"{bad[-1]} ({err})" if err else bad[-1]
            raise UserError(f"{len(bad)} images could not be read (more than {self._tolerated()}: the larger of "
                            f"{self.max_failures} and data.max_bad_share {self.max_bad_share:g} of {self.n:,}), "
                            f"e.g. {example}; fix or remove the broken files")

    def _failed(self, failed) -> None:
        for path, err in failed:
            if path in self.failures:
                continue
            self.failures[path] = err
            warn(f"skipping unreadable image {path} ({err})")
            self._check_share(list(self.failures), err)

    # ---------------------------------------------------------------- passes

    def __iter__(self):
        epoch, start = self._epoch_start()
        if self._remembered:
            self._remembered = False
            bad = int((self._states() == self.cache.BAD).sum())
            if bad:
                warn(f"{bad} of {self.n:,} images unreadable (as the decoded cache {self.cache.dir} remembers), "
                     "skipped")
        states = self._states() if self.cache is not None else None
        if states is not None and (states != self.cache.UNKNOWN).all():
            yield from self._from_cache(epoch, start, states == self.cache.GOOD)
        else:
            yield from self._from_workers(epoch, start)
        self._epoch_done(epoch)

    def _from_cache(self, epoch: int, start: int, usable: np.ndarray):
        """Every row decoded (``usable``: per sample, good): whole batches from the memory map, in the main process."""
        order = self._order(epoch).numpy()
        bs = self.batch_size
        for b in range(start, self.num_batches):
            idx = np.sort(order[b * bs:(b + 1) * bs])
            idx = idx[usable[idx]]
            if not len(idx):
                continue
            x = torch.from_numpy(self.cache.read(self.rows[idx]))
            idx = torch.from_numpy(idx)
            yield self._process(x.to(self.device, non_blocking=True),
                                self.labels[idx].to(self.device, non_blocking=True), idx, epoch, b)

    def _from_workers(self, epoch: int, start: int):
        """DataLoader workers decode (and fill the cache); the batches after the epoch's are decode-only."""
        self._batches.plan = (epoch, start)
        before = len(self.failures)
        real = self.num_batches - start
        for k, (x, y, idx, failed, decoded) in enumerate(self._dl):
            if self.cache is not None:
                for i, err in decoded:
                    self.cache.record(int(self.rows[i]), err)
            if failed:
                self._failed(failed)
            if k >= real or x is None:
                continue
            yield self._process(x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True), idx,
                                epoch, start + k)
        if self.cache is not None:
            self.cache.commit()  # the pass is complete: its rows are trusted from now on
        if len(self.failures) > before:
            warn(f"{len(self.failures)} of {self.n:,} images unreadable, skipped")

    def _fit(self, x: torch.Tensor) -> torch.Tensor:
        """The centre ``image_size`` of the decoded S x S squares (resized where the square is smaller)."""
        h, w = self.image_size
        height, width = x.shape[-2:]
        if height < h or width < w:
            return self._resize(x)
        top, left = centre_offsets(height, width, self.image_size)
        return x[..., top:top + h, left:left + w]


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
                in_chans: Optional[int] = None, max_failures: int = 10, max_bad_share: float = 0.01,
                cache: bool = True, cache_dir: Optional[str] = None, num_classes: Optional[int] = None) -> Loader:
    """A loader over ``data``: in memory on the device for :class:`ImageData`, from files for :class:`FolderData`.

    Args:
        data: the split.
        batch_size: images per batch (per rank).
        train: shuffle, augment and (by default) drop the last partial batch; evaluation keeps every image in order.
        image_size: H, W (or one int) of the batches. In-memory images of another size are resized (bilinear);
            folder images are decoded to S x S (S = the size x 256/224) and centre-cropped to it; in training
            ``augment``'s random_resized_crop / scale_jitter take a random crop instead.
        mean, std: per-channel statistics, 0..1 scale (the dataset's; 1-value and grey/RGB forms are converted).
        device: where batches are produced.
        augment: training augmentation (ignored when ``train`` is False).
        channels_last: return batches in channels_last memory format.
        seed: the run's seed; shuffle and augmentation derive from it, the epoch, the rank and the batch index.
        drop_last: leave out the last partial batch of a training epoch; default: True for training, False for
            evaluation. Without it a last training batch of one image is still left out (BatchNorm).
        rank, world_size: data parallelism: training ranks get disjoint, equal shares of each epoch; evaluation
            ranks get disjoint shares covering every image once (sizes may differ by one).
        num_workers: decoding processes (folder data only: the whole of every epoch without the cache, the first
            pass with it).
        in_chans: channels the model takes (grey is repeated to 3; RGB becomes grey by luma); default: the data's.
        max_failures: unreadable files tolerated (each skipped with a warning) before stopping (folder data only).
        max_bad_share: or this share of the split's files, if that is more (folder data only).
        cache: folder data: decode each file once into a memory-mapped cache (:mod:`cnnzoo.data.cache`).
        cache_dir: where the cache goes (default ``$CNNZOO_CACHE``, else ``~/.cache/cnnzoo/decoded``).
        num_classes: the number of classes, which mixup and CutMix need for their soft targets.
    """
    kw = dict(batch_size=batch_size, train=train, image_size=image_size, std=std, device=device, augment=augment,
              channels_last=channels_last, seed=seed, drop_last=drop_last, rank=rank, world_size=world_size,
              in_chans=in_chans, num_classes=num_classes)
    if isinstance(data, ImageData):
        return TensorLoader(data, mean=mean, **kw)
    if isinstance(data, FolderData):
        return FolderLoader(data, mean=mean, num_workers=num_workers, max_failures=max_failures,
                            max_bad_share=max_bad_share, cache=cache, cache_dir=cache_dir, **kw)
    raise UserError(f"cannot load {type(data).__name__}: expected ImageData or FolderData (from load_dataset)")
