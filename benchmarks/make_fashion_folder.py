"""Fashion-MNIST as a folder of JPEG photos: ``DIR/{train,val,test}/<class name>/NNNNN.jpg``.

A stand-in for "your own photos" that anyone with Debian's ``dataset-fashion-mnist`` can rebuild offline:
each 28 x 28 image is upscaled (bicubic) to a random size of ``--min-size`` .. ``--max-size`` px, square or
slightly off square (the other side within +-12 %), saved as RGB JPEG (quality 90), so that the folder
pipeline meets what photos bring: files to decode, several sizes, aspect ratios that need a crop.

* ``train/`` and ``val/`` come from Fashion-MNIST's training split: ``--val`` images carved out of it,
  stratified by class (the same share of every class), the first ``--train`` of the rest for ``train/``;
* ``test/`` comes from its test split (the first ``--test``, stratified the same way).

Seeded (``--seed``): the same arguments write the same files. Prints what it wrote.

    python benchmarks/make_fashion_folder.py /tmp/fashion-photos --train 9000 --val 1000 --test 1000
    python benchmarks/make_fashion_folder.py /tmp/fp --train 200 --val 40 --test 40   # a small one for checks
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Dict, List

import numpy as np

from cnnzoo.data.sources import FASHION_CLASSES, IDX_FILES, IDX_SETS, _find_file, read_idx

SOURCE = Path(IDX_SETS["fashion-mnist"][2][0])  # /usr/share/datasets/fashion-mnist
ASPECT = 0.12  # the longer side is up to 12 % more than the shorter one


def class_dir_name(name: str) -> str:
    """A class name as a directory name ("T-shirt/top" -> "T-shirt_top")."""
    return name.replace("/", "_").replace(" ", "_")


def read_split(source: Path, split: str):
    img_stem, lab_stem = IDX_FILES[split]
    images, labels = _find_file(source, img_stem), _find_file(source, lab_stem)
    if images is None or labels is None:
        sys.exit(f"make_fashion_folder: no {img_stem}[.gz] / {lab_stem}[.gz] in {source} "
                 "(apt-get install dataset-fashion-mnist, or pass --source)")
    return read_idx(images, 3), read_idx(labels, 1).astype(np.int64)


def stratified(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` indices with every class in proportion (largest remainders get the leftovers), seeded, sorted."""
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * (n / len(labels))
    quota = np.floor(exact).astype(int)
    for k in np.argsort(-(exact - quota), kind="stable")[: n - quota.sum()]:
        quota[k] += 1
    picked = [rng.permutation(np.nonzero(labels == c)[0])[:q] for c, q in zip(classes, quota)]
    return np.sort(np.concatenate(picked))


def write_images(root: Path, split: str, images: np.ndarray, labels: np.ndarray, rng: np.random.Generator,
                 lo: int, hi: int) -> Dict[str, int]:
    from PIL import Image

    counts: Dict[str, int] = {}
    for i, (img, label) in enumerate(zip(images, labels)):
        name = class_dir_name(FASHION_CLASSES[int(label)])
        side = int(rng.integers(lo, hi + 1))
        other = int(round(side * (1 + rng.uniform(-ASPECT, ASPECT)))) if rng.random() < 0.5 else side
        w, h = (side, other) if rng.random() < 0.5 else (other, side)
        d = root / split / name
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).convert("RGB").resize((w, h), Image.BICUBIC).save(d / f"{i:05d}.jpg", quality=90)
        counts[name] = counts.get(name, 0) + 1
    return counts


def main(argv: List[str] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="the folder to write (DIR/train, DIR/val, DIR/test)")
    ap.add_argument("--train", type=int, default=9000, help="images in train/ (default 9000)")
    ap.add_argument("--val", type=int, default=1000, help="images in val/, carved from Fashion-MNIST's train")
    ap.add_argument("--test", type=int, default=1000, help="images in test/, from Fashion-MNIST's test split")
    ap.add_argument("--min-size", type=int, default=96)
    ap.add_argument("--max-size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--source", default=str(SOURCE), help=f"the IDX files (default {SOURCE})")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    a = ap.parse_args(argv)
    if not 1 <= a.min_size <= a.max_size:
        ap.error("need 1 <= --min-size <= --max-size")
    out = Path(a.out)
    if out.exists() and any(out.iterdir()):
        if not a.overwrite:
            ap.error(f"{out} exists and is not empty; pass --overwrite to replace it")
        shutil.rmtree(out)
    rng = np.random.default_rng(a.seed)
    images, labels = read_split(Path(a.source), "train")
    if a.train + a.val > len(labels):
        ap.error(f"--train + --val is more than the {len(labels):,} training images")
    val_idx = stratified(labels, a.val, rng) if a.val else np.zeros(0, dtype=np.int64)
    rest = np.setdiff1d(np.arange(len(labels)), val_idx)
    train_idx = rest[stratified(labels[rest], a.train, rng)] if a.train else rest[:0]
    test_images, test_labels = read_split(Path(a.source), "test")
    test_idx = stratified(test_labels, min(a.test, len(test_labels)), rng) if a.test else np.zeros(0, dtype=np.int64)
    parts = {"train": (images[train_idx], labels[train_idx]), "val": (images[val_idx], labels[val_idx]),
             "test": (test_images[test_idx], test_labels[test_idx])}
    for split, (imgs, labs) in parts.items():
        if not len(labs):
            continue
        counts = write_images(out, split, imgs, labs, rng, a.min_size, a.max_size)
        print(f"{out / split}: {len(labs):,} JPEGs in {len(counts)} classes "
              f"({min(counts.values())}-{max(counts.values())} per class), {a.min_size}-{a.max_size} px")
    return 0


if __name__ == "__main__":
    sys.exit(main())
