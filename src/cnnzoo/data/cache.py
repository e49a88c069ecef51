"""Decode once: a memory-mapped uint8 cache of a folder split's images.

Each image file is decoded once (:func:`~cnnzoo.data.folder.decode_image`: EXIF rotation, grey or RGB, the
shorter side fitted to S and the centre cropped) to C x S x S uint8, and stored as one row of a ``.npy`` file
opened with ``numpy.lib.format.open_memmap``. S is the crop size times :data:`RESIZE_RATIO`, rounded up
(:func:`decoded_size`): ImageNet's 256 for a 224 crop, so that random crops have room and evaluation's centre
crop takes the same share of the image as the usual resize-256 / crop-224 evaluation.

Layout of a cache (one directory under :func:`cache_root` per scanned directory, decoded size and mode)::

    <root>/<name>-<S>px-<mode>-<hash>/images.npy   N x C x S x S uint8, row i = the i-th file of the scan
                                     /index.json   the scan's paths, S, mode, and per row the file's size and
                                                   mtime when it was decoded, with "" or why it is unreadable

A row is trusted only when index.json lists it with the file's current size and mtime: a changed file is
decoded again, an added or removed file (a different path list) rebuilds the whole cache. index.json is
rewritten atomically (:func:`cnnzoo.io.write_text`) at the end of a pass over the data, and it is the "complete"
marker of the rows it lists: rows written by a pass that was interrupted are not listed, so they are decoded
again. Unreadable files are remembered with their error, so later epochs and runs skip them without trying.

Decisions:

* One cache per scanned directory (``DIR/train``), not per split: the validation split carved from ``train/``,
  the rest, a ``data.per_class`` subset and another seed all read the same rows.
* Writers are the DataLoader workers (each opens the memmap itself, read-write); the main process only records
  what they report and writes index.json. Two processes filling the same rows write the same bytes; a lost
  update of index.json only means a row is decoded once more, never that a wrong row is trusted.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import UserError
from ..io import write_text

__all__ = ["RESIZE_RATIO", "CACHE_ENV", "decoded_size", "cache_root", "DecodedCache"]

# Decoded side S over the crop: ImageNet's resize to 256 before a 224 crop (1.143), as integers so 224 gives 256.
RESIZE_RATIO = (256, 224)
CACHE_ENV = "CNNZOO_CACHE"  # where decoded caches go when data.cache_dir is not set
FORMAT = 1  # of images.npy + index.json; a cache of another format is rebuilt


def decoded_size(crop: Sequence[int]) -> int:
    """S for a crop of H x W: ``ceil(max(H, W) * 256 / 224)`` (224 -> 256, 112 -> 128, 32 -> 37)."""
    c = max(int(v) for v in crop)
    return -(-c * RESIZE_RATIO[0] // RESIZE_RATIO[1])


def cache_root(cache_dir: Optional[str] = None) -> Path:
    """Where decoded caches live: ``cache_dir`` (data.cache_dir), else ``$CNNZOO_CACHE``, else
    ``~/.cache/cnnzoo/decoded`` (next to the datasets ``--download`` fetches into ``~/.cache/cnnzoo``)."""
    if cache_dir:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "cnnzoo" / "decoded"


def _stat(path: str) -> Tuple[Optional[int], Optional[int]]:
    try:
        st = os.stat(path)
    except OSError:
        return None, None
    return int(st.st_size), int(st.st_mtime_ns)


def _digest(*parts) -> str:
    return hashlib.sha1(json.dumps(parts).encode("utf-8")).hexdigest()[:12]


class DecodedCache:
    """The decoded rows of one scanned directory (see the module docstring).

    Args:
        files: every image file of the scan, in order: row i is ``files[i]``.
        mode: ``"L"`` or ``"RGB"``.
        size: S, the decoded side.
        cache_dir: data.cache_dir (None: :func:`cache_root`'s default).
        root: the scanned directory, or None for a hand-made file list (then the list itself names the cache).

    Attributes: ``dir``, ``files``, ``chans``, ``size``, ``entries`` (per row: None when it must be decoded, or
    ``[size, mtime_ns, error]`` with error "" for a good row).
    """

    IMAGES, INDEX = "images.npy", "index.json"

    def __init__(self, files: Sequence[str], mode: str, size: int, cache_dir: Optional[str] = None,
                 root: Optional[str] = None):
        self.files = list(files)
        self.mode, self.size = mode, int(size)
        self.chans = 1 if mode == "L" else 3
        where = os.path.realpath(root) if root else None
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(Path(where).parts[-2:]) if where else "files")[-60:]
        key = _digest(FORMAT, where, None if where else self.files, self.size, mode)
        self.dir = cache_root(cache_dir) / f"{slug}-{self.size}px-{mode.lower()}-{key}"
        self.stats = [_stat(p) for p in self.files]
        self._dirty: Dict[int, list] = {}
        self._view: Optional[np.ndarray] = None  # the main process's read-only map
        self._rw: Optional[Tuple[int, np.ndarray]] = None  # (pid, read-write map) of the process that writes
        self.entries = self._open()

    # ---------------------------------------------------------------- the files

    @property
    def shape(self) -> Tuple[int, int, int, int]:
        return len(self.files), self.chans, self.size, self.size

    @property
    def nbytes(self) -> int:
        """Bytes the rows take when every one is written."""
        n, c, h, w = self.shape
        return n * c * h * w

    def disk_bytes(self) -> int:
        """Bytes the cache takes on disk now (the rows written so far and the index)."""
        total = 0
        for name in (self.IMAGES, self.INDEX):
            try:
                st = os.stat(self.dir / name)
            except OSError:
                continue
            total += getattr(st, "st_blocks", 0) * 512 or st.st_size
        return total

    def _read_index(self) -> Optional[dict]:
        try:
            d = json.loads((self.dir / self.INDEX).read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError):
            return None
        same = (isinstance(d, dict) and d.get("format") == FORMAT and d.get("size") == self.size
                and d.get("mode") == self.mode and d.get("paths") == self.files
                and isinstance(d.get("rows"), list) and len(d["rows"]) == len(self.files))
        return d if same else None

    def _images_ok(self) -> bool:
        try:
            arr = np.load(self.dir / self.IMAGES, mmap_mode="r")
        except (OSError, ValueError):
            return False
        return arr.dtype == np.uint8 and tuple(arr.shape) == self.shape

    def _open(self) -> List[Optional[list]]:
        """The trusted entries of an existing cache of these files, or a new empty cache."""
        index = self._read_index()
        if index is not None and self._images_ok():
            return [e if isinstance(e, list) and len(e) == 3 and tuple(e[:2]) == st else None
                    for e, st in zip(index["rows"], self.stats)]
        self._create()
        return [None] * len(self.files)

    def _create(self) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(self.dir).free
        except OSError as e:
            raise UserError(f"cannot create the decoded-image cache in {self.dir} ({e.strerror or e}); set "
                            "data.cache_dir to a writable directory, or data.cache=false to decode every epoch") from None
        old = self.dir / self.IMAGES
        have = old.stat().st_size if old.exists() else 0
        if self.nbytes > free + have:
            raise UserError(f"the decoded cache of {len(self.files):,} images at {self.size}px needs "
                            f"{self.nbytes / 2**30:.1f} GiB, more than the {(free + have) / 2**30:.1f} GiB free in "
                            f"{self.dir.parent}; set data.cache_dir to a larger disk, lower data.image_size, or "
                            "set data.cache=false to decode every epoch")
        (self.dir / self.INDEX).unlink(missing_ok=True)  # no index: nothing of the old rows is trusted
        old.unlink(missing_ok=True)
        mm = np.lib.format.open_memmap(old, mode="w+", dtype=np.uint8, shape=self.shape)  # sparse until written
        del mm
        self._write_index([None] * len(self.files))

    def _write_index(self, rows: List[Optional[list]]) -> None:
        write_text(self.dir / self.INDEX, json.dumps({"format": FORMAT, "size": self.size, "mode": self.mode,
                                                      "chans": self.chans, "paths": self.files, "rows": rows}))

    # ---------------------------------------------------------------- rows

    UNKNOWN, GOOD, BAD = -1, 0, 1  # what :meth:`states` says of a row

    def states(self, rows: np.ndarray) -> np.ndarray:
        """Per row: UNKNOWN (to be decoded for the file as it is now), GOOD (decoded) or BAD (known unreadable)."""
        entries = self.entries
        return np.array([self.UNKNOWN if entries[r] is None else (self.BAD if entries[r][2] else self.GOOD)
                         for r in np.asarray(rows).tolist()], dtype=np.int8)

    def read(self, rows: np.ndarray) -> np.ndarray:
        """The rows (sorted indices read fastest), K x C x S x S uint8, from the main process's map."""
        if self._view is None:
            self._view = np.load(self.dir / self.IMAGES, mmap_mode="r")
        return self._view[rows]

    def write(self, row: int, image: np.ndarray) -> None:
        """Store a decoded C x S x S image (in the process that decoded it: each worker maps the file itself)."""
        pid = os.getpid()
        if self._rw is None or self._rw[0] != pid:
            self._rw = (pid, np.load(self.dir / self.IMAGES, mmap_mode="r+"))
        self._rw[1][row] = image

    def record(self, row: int, error: str) -> None:
        """A worker decoded ``row`` (``error`` "" when it could): trusted once :meth:`commit` lists it."""
        entry = [self.stats[row][0], self.stats[row][1], str(error)]
        self.entries[row] = entry
        self._dirty[row] = entry

    def commit(self) -> None:
        """List the rows recorded since the last commit in index.json (merged with what others listed), atomically."""
        if not self._dirty:
            return
        index = self._read_index()
        if index is None:  # rebuilt under us by a process with another file list: our rows are gone with it
            self._dirty.clear()
            return
        rows = index["rows"]
        for row, entry in self._dirty.items():
            rows[row] = entry
        self._write_index(rows)
        self._dirty.clear()

    def __getstate__(self):  # workers open their own maps
        state = dict(self.__dict__)
        state["_view"] = state["_rw"] = None
        return state
