#!/usr/bin/env python
"""The augmentation pictures of docs/training.md: a batch before and after each augmentation, one row each.

    python docs/augment_pictures.py                 # writes docs/img/augment_photos.png (and _fashion.png)
    python docs/augment_pictures.py --out DIR --size 64

The rows are :func:`cnnzoo.viz.augment.default_rows` (original, RandomResizedCrop, VGG scale jitter,
RandAugment, TrivialAugment, mixup, CutMix), run by the same ``BatchAugment`` the loaders use, seed 0, so a
rerun draws the same picture. The photos are scikit-image's bundled ones; the Fashion-MNIST row set needs the
dataset's files (skipped where they are missing).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "hubble_deep_field")
FASHION = [f"fashion-mnist:{i}" for i in (0, 1, 2, 3, 4, 5)]  # test images 0-5: boot, pullover, trouser, ...


def _batch(specs, size: int):
    """uint8 N x C x size x size: each image's centre square, resized (the cache's decode, for the picture)."""
    import torch
    import torch.nn.functional as F

    from cnnzoo.data import load_image

    out = []
    for s in specs:
        img = load_image(s, 3 if s.startswith("skimage:") else 1)
        h, w = img.shape[-2:]
        m = min(h, w)
        top, left = (h - m) // 2, (w - m) // 2
        sq = img[:, top:top + m, left:left + m].float()[None]
        out.append(F.interpolate(sq, size=(size, size), mode="bilinear", align_corners=False,
                                 antialias=m > size)[0].round().clamp(0, 255).to(torch.uint8))
    return torch.stack(out)


def write(out_dir: Path, size: int) -> list:
    from cnnzoo.viz.augment import augment_grid

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    sets = [("augment_photos.png", [f"skimage:{p}" for p in PHOTOS])]
    if Path("/usr/share/datasets/fashion-mnist").is_dir():
        sets.append(("augment_fashion.png", FASHION))
    for name, specs in sets:
        fig = augment_grid(_batch(specs, size), size=(size, size), seed=0)
        path = out_dir / name
        fig.savefig(path)
        fig.clf()
        written.append(path)
        print(path)
    return written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(ROOT / "docs" / "img"), help="where to write the PNG files")
    p.add_argument("--size", type=int, default=96, help="the pictures' side in pixels (default 96)")
    args = p.parse_args(argv)
    write(Path(args.out), args.size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
