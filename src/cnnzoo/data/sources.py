"""Dataset sources: sklearn's digits, the IDX files of MNIST-like sets, the CIFAR pickles, image folders.

Every reader is our own (numpy on the raw files), so nothing is downloaded or unpacked behind the
user's back; ``download=True`` only fetches the files with torchvision's downloaders first.

Where the files are looked for (first hit wins), for a dataset ``<name>``:

* with ``data_dir``: ``data_dir``, ``data_dir/<name>``, ``data_dir/<name>/raw`` (and torchvision's
  ``<Class>/raw`` layout), and nowhere else: a copy found elsewhere never stands in for the files the user
  pointed at;
* without it: ``~/.cache/cnnzoo/<name>`` (where ``--download`` puts them), and for Fashion-MNIST also
  ``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``).

IDX sets need the train files; without the ``t10k`` files the dataset has no test split (the trainer then
carves its validation split from train and reports no test accuracy).

``digits`` (sklearn's bundled 8x8 digits) has no test split of its own: a fixed, stratified 20% of it
(seed 0, independent of the training seed) is the test split, so every run tests on the same 359 images.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import re
import tarfile
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch

from ..choices import DATASETS, canonical_dataset
from ..errors import UserError
from .base import Dataset, ImageData, _stratified_pick, channel_stats, check_split

__all__ = ["DATASETS", "load_dataset", "read_idx", "read_cifar_pickle", "cache_dir", "cached_dataset"]


DIGITS_TEST_FRACTION = 0.2  # digits has no official test split: this fixed share is held out
DIGITS_TEST_SEED = 0

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]
# Kuzushiji-MNIST: the romanised names of its ten cursive hiragana (o, ki, su, tsu, na, ha, ma, ya, re, wo).
KMNIST_CLASSES = ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]

IDX_SETS = {
    # name: (class names, torchvision class (download + its folder name), extra places)
    "mnist": ([str(i) for i in range(10)], "MNIST", ()),
    "fashion-mnist": (FASHION_CLASSES, "FashionMNIST", ("/usr/share/datasets/fashion-mnist",)),
    "kmnist": (KMNIST_CLASSES, "KMNIST", ()),
}
IDX_FILES = {  # split: (images, labels)
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CIFAR_SETS = {
    # name: (directory, archive, train files, test files, meta file, label key, names key, torchvision class)
    "cifar10": ("cifar-10-batches-py", "cifar-10-python.tar.gz", [f"data_batch_{i}" for i in range(1, 6)],
                ["test_batch"], "batches.meta", "labels", "label_names", "CIFAR10"),
    "cifar100": ("cifar-100-python", "cifar-100-python.tar.gz", ["train"], ["test"], "meta", "fine_labels",
                 "fine_label_names", "CIFAR100"),
}


def cache_dir(name: str) -> Path:
    """Where ``--download`` puts dataset ``name``: ``~/.cache/cnnzoo/<name>``."""
    return Path.home() / ".cache" / "cnnzoo" / name


def _download_root(name: str, data_dir: Optional[str]) -> Path:
    """Where ``--download`` puts dataset ``name``: ``data_dir`` when given, else the cache."""
    return Path(data_dir).expanduser() if data_dir else cache_dir(name)


def _search_dirs(name: str, data_dir: Optional[str], extra=(), download: bool = False) -> List[Path]:
    """Where dataset ``name``'s files may be: under ``data_dir`` only when it is given (another copy found
    elsewhere must never stand in for the files the user pointed at), else the cache and ``extra``."""
    if data_dir:
        root = Path(data_dir).expanduser()
        if download and not root.exists():
            root.mkdir(parents=True)
        if not root.is_dir():
            what = "is not a directory" if root.exists() else "does not exist"
            raise UserError(f"--data-dir {data_dir} {what}; point it at the directory that holds the {name} files")
        roots, extra = [root], ()
    else:
        roots = [cache_dir(name)]
    tv = IDX_SETS.get(name, (None, None))[1]
    dirs: List[Path] = []
    for root in roots:
        for d in (root, root / name, root / name / "raw", root / "raw"):
            if d not in dirs:
                dirs.append(d)
        if tv:
            for d in (root / tv / "raw", root / name / tv / "raw"):
                if d not in dirs:
                    dirs.append(d)
    dirs.extend(Path(e) for e in extra)
    return dirs


# ------------------------------------------------------------------------------------------------ IDX

def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise UserError(f"cannot read {path}: {e}; the file is truncated or corrupt, download it again") from None


def read_idx(path, ndim: int) -> np.ndarray:
    """Parse an IDX file of unsigned bytes (``.gz`` or plain) into a numpy array, checking its header.

    Args:
        path: the file.
        ndim: the number of dimensions expected (3 for images, 1 for labels).
    """
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise UserError(f"{path} is not an IDX file (bad magic number); the file is corrupt, download it again")
    if raw[2] != 0x08:
        raise UserError(f"{path}: IDX element type 0x{raw[2]:02x} is not unsigned byte (0x08); "
                        "this is not an MNIST-style file")
    if raw[3] != ndim:
        raise UserError(f"{path}: IDX file has {raw[3]} dimensions, expected {ndim}; "
                        "images and labels files may be swapped or corrupt")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"{path} is truncated (header incomplete); download it again")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    size = int(np.prod(dims, dtype=np.int64))
    if len(raw) - header != size:
        what = "truncated" if len(raw) - header < size else "longer than its header says"
        raise UserError(f"{path} is {what} ({len(raw) - header} data bytes for dimensions {dims}); "
                        "download it again")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _find_file(d: Path, stem: str) -> Optional[Path]:
    for p in (d / stem, d / (stem + ".gz")):
        if p.is_file():
            return p
    return None


def _read_idx_split(d: Path, split: str, num_classes: int) -> Optional[ImageData]:
    img_stem, lab_stem = IDX_FILES[split]
    img, lab = _find_file(d, img_stem), _find_file(d, lab_stem)
    if img is None and lab is None:
        return None
    if img is None or lab is None:
        missing = img_stem if img is None else lab_stem
        raise UserError(f"{d} has the {split} {'labels' if img is None else 'images'} but not {missing}[.gz]; "
                        "add the missing file or download the dataset again")
    images = read_idx(img, 3)
    labels = read_idx(lab, 1)
    if images.shape[0] != labels.shape[0]:
        raise UserError(f"{img} has {images.shape[0]} images but {lab} has {labels.shape[0]} labels; "
                        "the files do not belong together, download them again")
    if labels.size and int(labels.max()) >= num_classes:
        raise UserError(f"{lab} has label {int(labels.max())}, beyond the {num_classes} classes; "
                        "the file is corrupt or from another dataset")
    return check_split(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)),
                       str(img))


def _load_idx(name: str, data_dir: Optional[str], download: bool) -> Dataset:
    classes, tv_name, extra = IDX_SETS[name]
    dirs = _search_dirs(name, data_dir, extra, download)
    found = next((d for d in dirs if _find_file(d, IDX_FILES["train"][0])), None)
    if found is None and download:
        _download(name, tv_name, _download_root(name, data_dir))
        found = next((d for d in dirs if _find_file(d, IDX_FILES["train"][0])), None)
    if found is None:
        hint = "apt-get install dataset-fashion-mnist, " if name == "fashion-mnist" else ""
        raise UserError(f"{name} not found (looked for {IDX_FILES['train'][0]}[.gz] in "
                        f"{', '.join(str(d) for d in dirs)}); get it with {hint}--download, "
                        f"or point --data-dir at the files")
    train = _read_idx_split(found, "train", len(classes))
    test = _read_idx_split(found, "test", len(classes))
    return _finish(name, train, test, list(classes))


# ------------------------------------------------------------------------------------------------ CIFAR

def _reconstruct_fn():
    # numpy 1.x lives in numpy.core, 2.x in numpy._core: take the function numpy itself pickles arrays with.
    return np.zeros(0).__reduce__()[0]


class _Refused(pickle.UnpicklingError):
    """A global the CIFAR reader does not allow (told apart from a merely truncated file)."""


class _CifarUnpickler(pickle.Unpickler):
    """Refuses every global except the three a pickled numpy array needs.

    The CIFAR batches are Python 2 cPickle (protocol 2) dicts of byte strings, lists of ints and uint8
    arrays: nothing else may be constructed, so a crafted file cannot call anything (os.system, eval, ...).
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct_fn,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct_fn,
        ("numpy", "ndarray"): lambda: np.ndarray,
        ("numpy", "dtype"): lambda: np.dtype,
    }

    def find_class(self, module, name):
        make = self.ALLOWED.get((module, name))
        if make is None:
            raise _Refused(f"refusing global {module}.{name}")
        return make()

    def persistent_load(self, pid):
        raise _Refused("refusing persistent id")


def read_cifar_pickle(data: bytes, where: str) -> Dict[str, object]:
    """Unpickle one CIFAR batch safely (see :class:`_CifarUnpickler`); keys come back as ``str``."""
    try:
        # latin1 is numpy's documented way to read Python 2 array pickles.
        obj = _CifarUnpickler(io.BytesIO(data), encoding="latin1").load()
    except _Refused as e:
        raise UserError(f"{where}: not a plain CIFAR batch ({e}); refusing to load it, "
                        "use the original files from the CIFAR site") from None
    except Exception as e:  # a truncated or corrupt pickle raises almost anything (EOFError, ValueError, ...)
        raise UserError(f"{where} is truncated or corrupt ({type(e).__name__}: {e}); download it again") from None
    if not isinstance(obj, dict):
        raise UserError(f"{where} is not a CIFAR batch (a {type(obj).__name__}, expected a dict); download it again")
    return {(k.decode("latin1") if isinstance(k, bytes) else str(k)): v for k, v in obj.items()}


class _CifarFiles:
    """The CIFAR files, from the unpacked directory or straight from the tar.gz (nothing is extracted)."""

    def __init__(self, path: Path, inner: str):
        self.path, self.inner = path, inner
        self.tar = None
        if path.is_file():
            try:
                self.tar = tarfile.open(path, "r:gz")
                self.members = {Path(m.name).name: m for m in self.tar.getmembers()
                                if m.isfile() and Path(m.name).parent.name == inner}
            except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
                raise UserError(f"cannot read {path}: {e}; the archive is truncated or corrupt, "
                                "download it again") from None

    def read(self, name: str) -> bytes:
        where = f"{self.path}:{name}" if self.tar else str(self.path / name)
        try:
            if self.tar is not None:
                if name not in self.members:
                    raise UserError(f"{self.path} has no {self.inner}/{name}; download the archive again")
                return self.tar.extractfile(self.members[name]).read()
            return (self.path / name).read_bytes()
        except FileNotFoundError:
            raise UserError(f"{where} is missing; the dataset is incomplete, download it again") from None
        except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
            raise UserError(f"cannot read {where}: {e}; the file is truncated or corrupt, download it again") from None

    def where(self, name: str) -> str:
        return f"{self.path}:{name}" if self.tar else str(self.path / name)


def _cifar_batches(files: _CifarFiles, names: List[str], label_key: str, num_classes: int) -> ImageData:
    images, labels = [], []
    for n in names:
        where = files.where(n)
        batch = read_cifar_pickle(files.read(n), where)
        data, lab = batch.get("data"), batch.get(label_key)
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            desc = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
            raise UserError(f"{where}: 'data' should be uint8 N x 3072, got {desc}; the file is corrupt, "
                            "download it again")
        lab = np.asarray(lab if lab is not None else [], dtype=np.int64)
        if lab.ndim != 1 or lab.shape[0] != data.shape[0]:
            raise UserError(f"{where}: {data.shape[0]} images but {lab.size} '{label_key}'; the file is corrupt, "
                            "download it again")
        if lab.size and (lab.min() < 0 or lab.max() >= num_classes):
            raise UserError(f"{where}: labels outside 0..{num_classes - 1}; the file is corrupt, download it again")
        images.append(data.reshape(-1, 3, 32, 32))  # rows are 1024 red, 1024 green, 1024 blue, row-major
        labels.append(lab)
    return check_split(torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels)),
                       files.where(names[0]))


def _load_cifar(name: str, data_dir: Optional[str], download: bool) -> Dataset:
    inner, archive, train_names, test_names, meta, label_key, names_key, tv_name = CIFAR_SETS[name]
    dirs = _search_dirs(name, data_dir, download=download)

    def locate() -> Optional[Path]:
        for d in dirs:
            for p in (d / inner, d):
                if (p / meta).is_file():
                    return p
            if (d / archive).is_file():
                return d / archive
        return None

    found = locate()
    if found is None and download:
        _download(name, tv_name, _download_root(name, data_dir))
        found = locate()
    if found is None:
        raise UserError(f"{name} not found (looked for {inner}/ or {archive} in "
                        f"{', '.join(str(d) for d in dirs)}); get it with --download, or point --data-dir at it")
    files = _CifarFiles(found, inner)
    meta_d = read_cifar_pickle(files.read(meta), files.where(meta))
    classes = meta_d.get(names_key)
    if not isinstance(classes, list) or not classes:
        raise UserError(f"{files.where(meta)} has no '{names_key}' list; the file is corrupt, download it again")
    classes = [c.decode("latin1") if isinstance(c, bytes) else str(c) for c in classes]
    train = _cifar_batches(files, train_names, label_key, len(classes))
    test = _cifar_batches(files, test_names, label_key, len(classes))
    return _finish(name, train, test, classes)


# ------------------------------------------------------------------------------------------------ digits

def _load_digits() -> Dataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    # 0..16 intensities scaled to the 0..255 range of every other source.
    images = torch.from_numpy(np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)).unsqueeze(1)
    labels = torch.from_numpy(d.target.astype(np.int64))
    test_mask = _stratified_pick(labels, DIGITS_TEST_FRACTION, DIGITS_TEST_SEED)
    train = ImageData(images[~test_mask], labels[~test_mask])
    test = ImageData(images[test_mask], labels[test_mask])
    return _finish("digits", train, test, [str(i) for i in range(10)])


# ------------------------------------------------------------------------------------------------ common

def _download(name: str, tv_name: str, root: Path) -> None:
    import torchvision.datasets as tvd

    root.mkdir(parents=True, exist_ok=True)
    cls = getattr(tvd, tv_name)
    try:
        for train in (True, False):
            cls(root=str(root), train=train, download=True)
    except Exception as e:  # network errors come in many types
        raise UserError(f"downloading {name} into {root} failed ({type(e).__name__}: {e}); "
                        "check the network, or fetch the files by hand and use --data-dir") from None


def _finish(name: str, train: ImageData, test: Optional[ImageData], classes: List[str]) -> Dataset:
    if test is not None and test.images.shape[1:] != train.images.shape[1:]:
        raise UserError(f"{name}: test images are {tuple(test.images.shape[1:])} but train images are "
                        f"{tuple(train.images.shape[1:])}; the files are mismatched")
    mean, std = channel_stats(train.images)
    return Dataset(name=name, train=train, test=test, classes=classes, in_chans=int(train.images.shape[1]),
                   image_size=(int(train.images.shape[2]), int(train.images.shape[3])), mean=mean, std=std)


def load_dataset(name: str, data_dir: Optional[str] = None, download: bool = False) -> Dataset:
    """Load dataset ``name`` (one of :data:`DATASETS`).

    Args:
        name: ``digits``, ``mnist``, ``fashion-mnist``, ``kmnist``, ``cifar10``, ``cifar100`` or ``folder``.
        data_dir: where the files are (``folder``: the directory holding ``train/`` and optionally ``val/``, the
            validation split, and ``test/``, the test split).
        download: fetch missing files with torchvision's downloaders into ``~/.cache/cnnzoo/<name>``.

    Raises:
        UserError: unknown name, files missing, truncated or corrupt.
    """
    key = canonical_dataset(name)
    if key == "digits":
        return _load_digits()
    if key in IDX_SETS:
        return _load_idx(key, data_dir, download)
    if key in CIFAR_SETS:
        return _load_cifar(key, data_dir, download)
    if key == "folder":
        from .folder import load_folder

        return load_folder(data_dir)
    raise UserError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


@lru_cache(maxsize=2)
def cached_dataset(name: str, data_dir: Optional[str]) -> Dataset:
    return load_dataset(name, data_dir)
