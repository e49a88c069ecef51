"""The random resized crop's resampling: one ``torchvision.ops.roi_align`` call against cnnzoo's per-image
interpolation matrices (``cnnzoo.data.augment.resample_boxes``: two batched matrix products), on the same
batch and the same boxes (RandomResizedCrop's, torchvision's defaults), alternated, median and spread of
``--repeats`` runs of ``--steps`` calls. Time it on a quiet machine.

    python benchmarks/augment_resample.py --batch 128 --side 73 --out 64
"""

from __future__ import annotations

import argparse
import statistics

import torch

from _alternate import alternate
from cnnzoo.data.augment import AugmentConfig, BatchAugment, resample_boxes


def roi_align_resample(x: torch.Tensor, boxes: torch.Tensor, size) -> torch.Tensor:
    """What resample_boxes did before: roi_align, aligned, adaptive sampling (an approximate antialias)."""
    from torchvision.ops import roi_align

    n = x.shape[0]
    b = boxes.float()
    rois = torch.stack([torch.arange(n, dtype=torch.float32), b[:, 1], b[:, 0], b[:, 1] + b[:, 3], b[:, 0] + b[:, 2]],
                       1)
    return roi_align(x, rois, output_size=size, spatial_scale=1.0, sampling_ratio=-1, aligned=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--side", type=int, default=73, help="the decoded square's side (64 x 256/224 = 73)")
    ap.add_argument("--out", type=int, default=64)
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--steps", type=int, default=20)
    a = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (a.batch, a.channels, a.side, a.side), generator=g).float()
    aug = BatchAugment(AugmentConfig(random_resized_crop=True), a.channels, None, "cpu")
    boxes = aug._rrc_boxes(a.batch, a.side, a.side, g, "cpu")
    size = (a.out, a.out)
    variants = {"roi_align": lambda: roi_align_resample(x, boxes, size),
                "cnnzoo matrices": lambda: resample_boxes(x, boxes, size)}
    for f in variants.values():
        f()
    runs = {k: (lambda f=f: [f() for _ in range(a.steps)]) for k, f in variants.items()}
    ms = {k: [t / a.steps * 1000 for t in ts] for k, ts in alternate(runs, a.repeats).items()}
    print(f"batch {a.batch} x {a.channels} x {a.side} x {a.side} -> {a.out} x {a.out}, {torch.get_num_threads()} threads")
    for k, v in ms.items():
        print(f"{k:16s} {statistics.median(v):7.2f} ms/batch  (min {min(v):.2f}, max {max(v):.2f})")
    print(f"roi_align / matrices: {statistics.median(ms['roi_align']) / statistics.median(ms['cnnzoo matrices']):.2f}x")


if __name__ == "__main__":
    main()
