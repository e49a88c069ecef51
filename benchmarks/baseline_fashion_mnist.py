"""Target 2's baseline: the case study's torchvision pipeline against ``cnnzoo train``, epoch for epoch.

The baseline is the usual tutorial pipeline, kept as it is written there:

* ``torchvision.datasets.FashionMNIST`` reading the IDX files (laid out as torchvision keeps them after its
  own download, ``<root>/FashionMNIST/raw/``: the Debian files are decompressed there, as its download step
  would, before anything is timed; nothing is fetched);
* per-image transforms in ``DataLoader`` workers: ``RandomCrop(28, padding=2)``, ``RandomHorizontalFlip``,
  ``ToTensor``, ``Normalize``; ``num_workers=2``, ``shuffle=True``;
* a plain fp32, NCHW loop: forward, cross-entropy, ``zero_grad``, backward, SGD step, ``loss.item()``.

The same model (same registry name and small-input option), batch size, augmentation (flip + 2-pixel
translation), optimizer (SGD, momentum 0.9, weight decay 5e-4, a constant rate) and images then go through
``cnnzoo.train.trainer.fit`` with its defaults (in-memory uint8 data, batched augmentation, channels_last,
``--precision auto``), on the same files, with no validation split and no test pass, so both train on
exactly the same images.

Reported per side: images/s of the training epoch (the baseline's includes its workers' decoding, cnnzoo's
its on-device batching), the epoch's seconds, the set-up seconds (reading/decoding the dataset), and the
mean training loss (both really train). ``--rounds R`` alternates the two sides R times (baseline first in
odd rounds, cnnzoo first in even ones) and reports medians.

    python benchmarks/baseline_fashion_mnist.py                         # bn_convnet, batch 128, 1 epoch
    python benchmarks/baseline_fashion_mnist.py --model resnet20 --rounds 3
    python benchmarks/baseline_fashion_mnist.py --limit 2000            # a quick check on 2,000 images
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from cnnzoo import create_model
from cnnzoo.models import AuxOutputs
from cnnzoo.train.config import load_config
from cnnzoo.builder import plan_input
from cnnzoo.train.trainer import fit

FILES = {  # torchvision's raw file name: the split it belongs to
    "train-images-idx3-ubyte": "train", "train-labels-idx1-ubyte": "train",
    "t10k-images-idx3-ubyte": "test", "t10k-labels-idx1-ubyte": "test",
}
IDX_HEADER = {3: 16, 1: 8}  # header bytes of an IDX file of unsigned bytes with this many dimensions
LR, MOMENTUM, WEIGHT_DECAY = 0.05, 0.9, 5e-4


def prepare_files(src: Path, root: Path, limit: int = 0) -> tuple:
    """Decompress the IDX files into ``root/FashionMNIST/raw`` (torchvision's layout), train files cut to ``limit``.

    Returns (torchvision's root, cnnzoo's data directory: the same train files only, so it runs no test pass).
    """
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    zoo = root / "cnnzoo"
    zoo.mkdir()
    for name, split in FILES.items():
        gz = src / f"{name}.gz"
        if gz.is_file():
            with gzip.open(gz, "rb") as f:
                data = f.read()
        else:
            data = (src / name).read_bytes()
        if limit and split == "train":
            ndim = data[3]
            n = min(limit, int.from_bytes(data[4:8], "big"))
            per = 1 if ndim == 1 else int.from_bytes(data[8:12], "big") * int.from_bytes(data[12:16], "big")
            data = data[:4] + n.to_bytes(4, "big") + data[8:IDX_HEADER[ndim]] + \
                data[IDX_HEADER[ndim]:IDX_HEADER[ndim] + n * per]
        (raw / name).write_bytes(data)
        if split == "train":
            (zoo / name).symlink_to(raw / name)
    return root, zoo


def _loss(out, y):
    if isinstance(out, AuxOutputs):
        return F.cross_entropy(out.logits, y) + 0.3 * sum(F.cross_entropy(a, y) for a in out.aux)
    return F.cross_entropy(out, y)


def run_baseline(a, tv_root: Path) -> dict:
    """The case study's pipeline, timed per epoch."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    plan = plan_input(a.model, 28)
    t0 = time.perf_counter()
    tfs = [transforms.RandomCrop(28, padding=2), transforms.RandomHorizontalFlip()]
    if plan.image_size != 28:
        tfs.append(transforms.Resize(plan.image_size))
    tfs += [transforms.ToTensor(), transforms.Normalize((0.2860,), (0.3530,))]
    ds = datasets.FashionMNIST(str(tv_root), train=True, download=False, transform=transforms.Compose(tfs))
    loader = DataLoader(ds, batch_size=a.batch_size, shuffle=True, num_workers=a.workers)
    torch.manual_seed(a.seed)
    model = create_model(a.model, num_classes=10, in_chans=1, **plan.kwargs)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    setup = time.perf_counter() - t0
    epochs = []
    for _ in range(a.epochs):
        model.train()
        seen, loss_sum = 0, 0.0
        t0 = time.perf_counter()
        for x, y in loader:
            loss = _loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(y)
            seen += len(y)
        secs = time.perf_counter() - t0
        epochs.append(dict(images=seen, seconds=secs, img_per_s=seen / secs, train_loss=loss_sum / seen))
    return dict(setup_seconds=setup, epochs=epochs)


def run_cnnzoo(a, zoo_dir: Path, out: Path) -> dict:
    """The same model and recipe through the trainer API, with cnnzoo's defaults."""
    cfg = load_config(None, {
        "model.name": a.model, "data.name": "fashion-mnist", "data.dir": str(zoo_dir), "data.val_split": 0.0,
        "data.batch_size": a.batch_size, "data.augment.hflip": True, "data.augment.translate": 2,
        "optim.name": "sgd", "optim.lr": LR, "optim.momentum": MOMENTUM, "optim.weight_decay": WEIGHT_DECAY,
        "optim.decay_norm_and_bias": True, "schedule.name": "constant",
        "train.epochs": a.epochs, "train.seed": a.seed, "train.device": "cpu", "train.precision": a.precision,
        "run.output": str(out), "run.tensorboard": False, "run.progress": "none",
    })
    res = fit(cfg, overwrite=True, log=lambda msg: print(f"  cnnzoo: {msg}", file=sys.stderr))
    rows = [line.split(",") for line in (out / "metrics.csv").read_text().splitlines()]
    head = rows[0]
    epochs = []
    for r in rows[1:]:
        d = dict(zip(head, r))
        epochs.append(dict(seconds=float(d["seconds"]), img_per_s=float(d["img_per_s"]),
                           train_loss=float(d["train_loss"])))
    return dict(setup_seconds=res["data_seconds"], epochs=epochs, precision=res["precision"])


def summary(runs: list) -> dict:
    """Medians over rounds of the per-round means over epochs."""
    def med(key, per_epoch=True):
        vals = [statistics.mean(e[key] for e in r["epochs"]) if per_epoch else r[key] for r in runs]
        return statistics.median(vals)

    return dict(img_per_s=med("img_per_s"), epoch_seconds=med("seconds"), setup_seconds=med("setup_seconds", False),
                train_loss=med("train_loss"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="bn_convnet", help="registry name (default bn_convnet, a plain 5-layer BN ConvNet)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--limit", type=int, default=0, metavar="N", help="train on the first N images only")
    ap.add_argument("--rounds", type=int, default=1, help="alternate the two sides this many times; medians")
    ap.add_argument("--workers", type=int, default=2, help="the baseline's DataLoader workers (default 2)")
    ap.add_argument("--precision", default="auto", help="cnnzoo's --precision (default auto)")
    ap.add_argument("--threads", type=int, help="torch.set_num_threads for the training (default: PyTorch's)")
    ap.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist", help="the four IDX files (.gz)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", metavar="FILE", help="also write every number here")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    tmp = Path(tempfile.mkdtemp(prefix="cnnzoo-baseline-"))
    try:
        tv_root, zoo_dir = prepare_files(Path(a.data_dir), tmp / "data", a.limit)
        base, zoo = [], []
        for r in range(a.rounds):
            order = ["baseline", "cnnzoo"] if r % 2 == 0 else ["cnnzoo", "baseline"]
            for side in order:
                print(f"round {r + 1}/{a.rounds}: {side} ...", file=sys.stderr, flush=True)
                if side == "baseline":
                    base.append(run_baseline(a, tv_root))
                else:
                    zoo.append(run_cnnzoo(a, zoo_dir, tmp / f"run-{r}"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    b, z = summary(base), summary(zoo)
    n = base[0]["epochs"][0]["images"]
    print(f"{a.model} on Fashion-MNIST ({n:,} training images{', --limit' if a.limit else ''}), batch {a.batch_size}, "
          f"{a.epochs} epoch(s), {torch.get_num_threads()} threads, median of {a.rounds} round(s)\n")
    print("| pipeline | images/s | epoch s | set-up s | train loss |")
    print("|---|---:|---:|---:|---:|")
    print(f"| torchvision datasets + per-image transforms + DataLoader({a.workers} workers), fp32 NCHW "
          f"| {b['img_per_s']:,.0f} | {b['epoch_seconds']:.1f} | {b['setup_seconds']:.1f} | {b['train_loss']:.3f} |")
    print(f"| cnnzoo train (in-memory, batched augmentation, channels_last, {zoo[0]['precision']}) "
          f"| {z['img_per_s']:,.0f} | {z['epoch_seconds']:.1f} | {z['setup_seconds']:.1f} | {z['train_loss']:.3f} |")
    print(f"\ncnnzoo / baseline images/s: {z['img_per_s'] / b['img_per_s']:.2f}x")
    if a.json:
        Path(a.json).write_text(json.dumps(dict(args=vars(a), baseline=base, cnnzoo=zoo, summary=dict(
            baseline=b, cnnzoo=z, ratio=z["img_per_s"] / b["img_per_s"])), indent=2) + "\n")


if __name__ == "__main__":
    main()
