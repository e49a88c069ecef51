"""Image-folder datasets: ``DIR/train/<class>/*`` (required), ``DIR/val/<class>/*`` and ``DIR/test/<class>/*``.

* ``train/`` is the training split; its sub-directory names, sorted, are the classes.
* ``val/`` is the validation split; without it the trainer carves validation out of ``train/``
  (``data.val_split``, stratified and seeded) and says so.
* ``test/`` is the test split, used once after training; without it the run has no test pass.

Images may sit in nested folders under their class. Files are recognised by extension (:data:`IMAGE_EXTENSIONS`);
hidden files are ignored; symbolic links are followed, each directory once. ``val/`` and ``test/`` may lack a
class of ``train/`` but not add one.

A file is decoded with PIL (:func:`decode_image`): EXIF rotation applied, converted to grey or RGB, the shorter
side fitted to S and the centre cropped to S x S, S = the crop size x 256/224 (:func:`cnnzoo.data.cache.decoded_size`);
the loader then takes its crop out of that square (random crops in training, the centre for evaluation). By
default each file is decoded once into a memory-mapped cache (:mod:`cnnzoo.data.cache`); ``data.cache=false``
decodes every epoch in DataLoader workers. A file PIL cannot read comes back as an error message, and the loader
skips it with a warning.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np
import torch

from ..errors import UserError
from .base import IMAGENET_MEAN, IMAGENET_STD, Dataset, FolderData, convert_stats

__all__ = ["IMAGE_EXTENSIONS", "SPLIT_DIRS", "load_folder", "describe_splits", "decode_image", "FolderImages",
           "collate_decoded"]

SPLIT_DIRS = ("train", "val", "test")  # the sub-directories of a folder dataset, in this order

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm",
                    ".pnm"}
GREY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
PROBE = 10  # images opened to guess the nominal size and whether the set is grey
# Pixels decoded per image at most (PIL's own decompression-bomb limit): a 1 KB PNG can claim 10000 x 10000.
# JPEGs are decoded at a reduced scale first (draft), so only what is really decoded counts.
MAX_PIXELS = 89_478_485


def _image_files(d: Path) -> List[str]:
    """The image files under ``d``, through symbolic links, each directory once (a link loop ends the descent)."""
    out = []
    seen = set()
    for root, dirs, files in os.walk(d, followlinks=True):
        st = os.stat(root)
        if (st.st_dev, st.st_ino) in seen:  # reached again through a link: a loop, or a second way to one place
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs[:] = sorted(x for x in dirs if not x.startswith("."))
        for f in sorted(files):
            if not f.startswith(".") and os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS:
                out.append(os.path.join(root, f))
    return out


def _scan(split_dir: Path, classes: Optional[List[str]] = None) -> Tuple[List[Tuple[str, int]], List[str]]:
    found = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not found:
        raise UserError(f"{split_dir} has no class directories; put the images in {split_dir}/<class name>/")
    if classes is None:
        classes = found
    else:
        extra = [c for c in found if c not in classes]
        if extra:
            more = f" and {len(extra) - 5} more" if len(extra) > 5 else ""
            raise UserError(f"{split_dir} has classes that {split_dir.parent / 'train'} lacks: "
                            f"{', '.join(extra[:5])}{more}; use the class directory names of train/ (a class "
                            f"the model never trains on cannot be predicted), or add its images to train/")
    index = {c: i for i, c in enumerate(classes)}
    samples: List[Tuple[str, int]] = []
    for c in found:
        files = _image_files(split_dir / c)
        if not files:
            raise UserError(f"class directory {split_dir / c} has no image files "
                            f"({', '.join(sorted(IMAGE_EXTENSIONS))}); add images or remove the directory")
        samples.extend((f, index[c]) for f in files)
    return samples, classes


def _open(path: str):
    """``PIL.Image.open`` (the header only) without PIL's decompression-bomb warning: :data:`MAX_PIXELS` says it."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(path)


def decode_image(path: str, mode: Optional[str] = None,
                 size: Optional[Tuple[int, int]] = None) -> Union[torch.Tensor, str]:
    """Decode an image file to uint8 C x H x W, or return why it could not be read.

    Args:
        path: the file.
        mode: ``"L"`` or ``"RGB"``; None keeps grey images grey and makes everything else RGB.
        size: H, W to resize to (shorter side fitted, then centre-cropped); None keeps the size.
    """
    from PIL import Image, ImageOps

    try:
        with _open(path) as im:
            target = mode or ("L" if im.mode in GREY_MODES else "RGB")
            if size is not None:
                side = max(size)
                im.draft(target, (side, side))  # JPEG: decode at a reduced scale, still >= the target size
            if im.width * im.height > MAX_PIXELS:
                return (f"{im.width}x{im.height} is {im.width * im.height / 1e6:.0f} megapixels, beyond the "
                        f"{MAX_PIXELS / 1e6:.0f} MP decode limit (a guard against decompression bombs); "
                        "shrink the image")
            try:
                im = ImageOps.exif_transpose(im)
            except Exception:  # a damaged EXIF block should not cost the picture itself
                pass
            if im.mode.startswith("I"):
                # 16-bit grey (PNG, TIFF): PIL's convert("L") clips at 255, which turns most of the picture white;
                # scale 0..65535 to 0..255 instead (a 32-bit "I" image within 0..255 is kept as it is).
                wide = np.asarray(im, dtype=np.float64)
                if im.mode != "I" or wide.max(initial=0) > 255:
                    wide = wide / 257.0
                im = Image.fromarray(np.clip(np.rint(wide), 0, 255).astype(np.uint8), "L")
            if im.mode != target:
                if im.mode in ("P", "PA", "LA", "La") and target == "RGB":
                    im = im.convert("RGBA")
                im = im.convert(target)
            if size is not None and (im.height, im.width) != tuple(size):
                im = ImageOps.fit(im, (size[1], size[0]), method=Image.BILINEAR)
            arr = np.array(im, dtype=np.uint8)
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError, ...
        return f"{type(e).__name__}: {e}".strip().rstrip(":")
    t = torch.from_numpy(arr)
    return t.unsqueeze(0) if t.dim() == 2 else t.permute(2, 0, 1).contiguous()


class FolderImages(torch.utils.data.Dataset):
    """The DataLoader's dataset of a folder split: items are ``(image or None, label, path, error, index, decoded)``.

    An index ``i >= 0`` decodes sample ``i`` (C x ``size`` uint8) and, with a ``cache``, stores it in row
    ``rows[i]``; ``-(i + 1)`` reads sample ``i`` from the cache instead (a row decoded before). The loader's batch
    sampler says which, so workers need no knowledge of what others decoded.
    """

    def __init__(self, samples: List[Tuple[str, int]], mode: str, size: Tuple[int, int], cache=None,
                 rows: Optional[np.ndarray] = None):
        self.samples, self.mode, self.size = samples, mode, (int(size[0]), int(size[1]))
        self.cache, self.rows = cache, rows

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        if i < 0:
            i = -i - 1
            path, label = self.samples[i]
            return torch.from_numpy(self.cache.read(np.array([self.rows[i]]))[0].copy()), label, path, "", i, False
        path, label = self.samples[i]
        img = decode_image(path, self.mode, self.size)
        if isinstance(img, str):
            return None, label, path, img, i, True
        if self.cache is not None:
            self.cache.write(int(self.rows[i]), img.numpy())
        return img, label, path, "", i, True


def collate_decoded(batch):
    """Stack the images; report the failures instead of raising (the loader counts them).

    Returns ``(x or None, y, idx, failed, decoded)``: ``idx`` holds the stacked images' sample indices (``alt_flip``
    follows the image, not its place in the batch), ``failed`` is ``[(path, error)]``, ``decoded`` is
    ``[(index, error)]`` for the items decoded now (error "" for a good one), for the cache's record.
    """
    ok = [b for b in batch if b[0] is not None]
    failed = [(b[2], b[3]) for b in batch if b[0] is None]
    decoded = [(b[4], b[3]) for b in batch if b[5]]
    x = torch.stack([b[0] for b in ok]) if ok else None
    y = torch.tensor([b[1] for b in ok], dtype=torch.int64)
    idx = torch.tensor([b[4] for b in ok], dtype=torch.int64)
    return x, y, idx, failed, decoded


def _probe(samples: List[Tuple[str, int]]) -> Tuple[Tuple[int, int], int]:
    """Nominal size (the first readable image's) and channels (1 only if every probed image is grey)."""
    # One image per class first, so a set with a few grey classes is not mistaken for a grey set.
    firsts, seen = [], set()
    for path, c in samples:
        if c not in seen:
            seen.add(c)
            firsts.append(path)
    size, grey, opened = None, True, 0
    for path in (firsts + [p for p, _ in samples])[:PROBE]:
        try:
            with _open(path) as im:
                if size is None:
                    size = (im.height, im.width)
                grey = grey and im.mode in GREY_MODES
                opened += 1
        except Exception:
            continue
    if size is None:
        size = (224, 224)
    return size, (1 if grey and opened else 3)


def load_folder(data_dir: Optional[str]) -> Dataset:
    """The ``folder`` dataset: ``data_dir/train/<class>/*``, optionally ``data_dir/val/`` and ``data_dir/test/``."""
    if not data_dir:
        raise UserError("the folder dataset needs a directory: pass --data-dir DIR with DIR/train/<class>/*.png")
    root = Path(data_dir).expanduser()
    train_dir = root / "train"
    if not train_dir.is_dir():
        raise UserError(f"{train_dir} is not a directory; the folder dataset expects {root}/train/<class>/<images> "
                        f"(and optionally {root}/val/<class>/... for validation, {root}/test/<class>/... for the test)")
    train, classes = _scan(train_dir)
    if len(classes) < 2:
        raise UserError(f"{train_dir} has one class ({classes[0]}): a classifier needs at least two; put each "
                        f"class's images in a directory of its own under {train_dir}/")
    parts = {}
    for name in SPLIT_DIRS[1:]:
        d = root / name
        if d.is_dir():
            samples = _scan(d, classes)[0]
            parts[name] = FolderData(samples, str(d), [p for p, _ in samples])
    size, in_chans = _probe(train)
    return Dataset(name="folder", train=FolderData(train, str(train_dir), [p for p, _ in train]),
                   test=parts.get("test"), val=parts.get("val"), classes=classes, in_chans=in_chans,
                   image_size=size, mean=convert_stats(IMAGENET_MEAN, 3, in_chans, "mean"),
                   std=convert_stats(IMAGENET_STD, 3, in_chans, "std"))


def describe_splits(data_dir: Optional[str], ds: Dataset, val: Optional[FolderData], val_split: float) -> List[str]:
    """What a run takes from the folder, said out loud: where validation comes from, and that a missing
    ``test/`` means no test pass. ``val`` is the validation split the run uses (its own ``val/`` or carved)."""
    root = Path(data_dir).expanduser() if data_dir else Path(".")
    if ds.val is not None:
        val_text = f"val/ {len(ds.val):,} images"
    elif val is not None:
        val_text = f"val/ none ({len(val):,} carved from train/, data.val_split {val_split:g})"
    else:
        val_text = "val/ none (no validation: data.val_split 0)"
    test_text = f"test/ {len(ds.test):,} images" if ds.test is not None else "test/ none"
    lines = [f"folder {root}: train/ {len(ds.train):,} images, {val_text}, {test_text}"]
    if ds.test is None:
        lines.append(f"no test/ folder: no test pass (put test images in {root / 'test'}/<class>/)")
    return lines
