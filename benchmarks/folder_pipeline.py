"""Training on a folder of JPEGs: torchvision's ImageFolder pipeline against cnnzoo's decode-once FolderLoader.

Both sides feed the same training step (the same cnnzoo model, SGD, precision, batch size and memory format):

* ``torchvision``: ``ImageFolder`` + ``RandomResizedCrop(size)`` + ``RandomHorizontalFlip`` + ``ToTensor`` +
  ``Normalize`` (ImageNet's statistics), ``DataLoader(num_workers=W, batch_size=B, shuffle=True,
  drop_last=True)``: every epoch decodes every JPEG again in the workers;
* ``cnnzoo``: ``make_loader`` over the folder's train split with ``random_resized_crop`` and ``hflip`` on and the
  decoded cache (:mod:`cnnzoo.data.cache`) in a fresh directory: the first epoch decodes in ``W`` workers and
  fills the cache, later epochs read batches from the memory map and crop, flip and normalise on the device.

The epochs of the two sides alternate (torchvision's epoch e, then cnnzoo's epoch e), so a change of machine load
touches both. Reported per side: the first epoch's seconds (cnnzoo: with building the cache), images/s from
epoch 2 on (median, min and max over the epochs), the ratio of the medians, and the cache's size on disk. Prints
a Markdown table and writes JSON (default ``benchmarks/logs/<date>_folder_pipeline.json``). Time it on a quiet
machine (see README.md).

    python benchmarks/make_fashion_folder.py /tmp/fashion-photos --train 9000 --val 1000 --test 1000
    python benchmarks/folder_pipeline.py /tmp/fashion-photos --model resnet18 --size 96 --epochs 5
    python benchmarks/folder_pipeline.py --quick      # a few hundred images it writes itself, 2 epochs: runs?
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, Iterable, List

import torch
import torch.nn.functional as F

from cnnzoo import create_model
from cnnzoo.data import AugmentConfig, load_dataset, make_loader
from cnnzoo.hub import IMAGENET_MEAN, IMAGENET_STD
from cnnzoo.runtime import autocast, precision_name, resolve_device, resolve_precision

sys.path.insert(0, str(Path(__file__).parent))
import make_fashion_folder  # noqa: E402  (the folder --quick writes)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_step(model: torch.nn.Module, device: torch.device, amp_dtype, channels_last: bool) -> Callable:
    """One SGD step on a batch (the same function for both sides)."""
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    fmt = torch.channels_last if channels_last else torch.contiguous_format

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        x = x.to(device, non_blocking=True).contiguous(memory_format=fmt)
        y = y.to(device, non_blocking=True)
        with autocast(device, amp_dtype):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def torchvision_batches(root: Path, size: int, batch: int, workers: int, pin: bool, seed: int) -> Iterable:
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip(),
                             transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    ds = datasets.ImageFolder(str(root / "train"), tf)
    return torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, drop_last=True, num_workers=workers,
                                       pin_memory=pin, persistent_workers=workers > 0,
                                       generator=torch.Generator().manual_seed(seed))


def timed_epoch(batches: Iterable, step: Callable, device: torch.device) -> Dict[str, float]:
    _sync(device)
    t, n = time.perf_counter(), 0
    for x, y in batches:
        step(x, y)
        n += int(y.numel())
    _sync(device)
    secs = time.perf_counter() - t
    return {"seconds": secs, "images": n, "img_per_s": n / max(secs, 1e-9)}


def summary(epochs: List[Dict[str, float]]) -> Dict[str, float]:
    later = [e["img_per_s"] for e in epochs[1:]] or [float("nan")]
    return {"first_epoch_seconds": epochs[0]["seconds"], "img_per_s_median": statistics.median(later),
            "img_per_s_min": min(later), "img_per_s_max": max(later), "epochs": epochs}


def main(argv: List[str] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", help="a folder with train/<class>/*.jpg (make_fashion_folder.py writes one)")
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--size", type=int, default=96, help="training crop, px")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--no-channels-last", action="store_true")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache-dir", help="where cnnzoo's cache is built (default: a fresh temporary directory)")
    ap.add_argument("--quick", action="store_true",
                    help="a 300-image folder written for the purpose, 2 epochs, batch 32, 64 px: checks that it runs")
    ap.add_argument("--json", default=None, help="where to write the results (default benchmarks/logs/...)")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    tmp = tempfile.TemporaryDirectory(prefix="cnnzoo-folder-bench-")
    if a.quick:
        a.epochs, a.batch, a.size = 2, 32, 64
        if not a.data:
            a.data = str(Path(tmp.name) / "photos")
            make_fashion_folder.main([a.data, "--train", "300", "--val", "0", "--test", "0", "--min-size", "72",
                                      "--max-size", "96"])
    if not a.data:
        ap.error("name the folder (or --quick)")
    root = Path(a.data)
    device = resolve_device(a.device)
    torch.manual_seed(a.seed)
    model = create_model(a.model, num_classes=len(load_dataset("folder", str(root)).classes), in_chans=3).to(device)
    amp_dtype = resolve_precision(a.precision, device, model)
    channels_last = not a.no_channels_last
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    step = make_step(model, device, amp_dtype, channels_last)

    ds = load_dataset("folder", str(root))
    cache_dir = a.cache_dir or str(Path(tmp.name) / "cache")
    ours = make_loader(ds.train, batch_size=a.batch, train=True, image_size=(a.size, a.size), mean=IMAGENET_MEAN,
                       std=IMAGENET_STD, device=device, augment=AugmentConfig(random_resized_crop=True, hflip=True),
                       channels_last=channels_last, seed=a.seed, num_workers=a.workers, in_chans=3, cache=True,
                       cache_dir=cache_dir)
    theirs = torchvision_batches(root, a.size, a.batch, a.workers, device.type == "cuda", a.seed)
    runs: Dict[str, List[Dict[str, float]]] = {"torchvision": [], "cnnzoo": []}
    for e in range(a.epochs):
        runs["torchvision"].append(timed_epoch(theirs, step, device))
        ours.set_epoch(e)
        runs["cnnzoo"].append(timed_epoch(ours, step, device))
        print(f"epoch {e + 1}/{a.epochs}: torchvision {runs['torchvision'][-1]['img_per_s']:,.0f} img/s, "
              f"cnnzoo {runs['cnnzoo'][-1]['img_per_s']:,.0f} img/s", flush=True)
    res = {k: summary(v) for k, v in runs.items()}
    ratio = res["cnnzoo"]["img_per_s_median"] / res["torchvision"]["img_per_s_median"]
    cache_bytes = ours.cache.disk_bytes()

    print(f"\n{a.model} at {a.size} px, batch {a.batch}, {a.workers} workers, {device}, "
          f"{precision_name(amp_dtype)}, {len(ds.train):,} training images in {root}\n")
    print("| pipeline | first epoch, s | img/s from epoch 2 (median) | min - max |")
    print("|---|---:|---:|---:|")
    for k, r in res.items():
        print(f"| {k} | {r['first_epoch_seconds']:.1f} | {r['img_per_s_median']:,.0f} | "
              f"{r['img_per_s_min']:,.0f} - {r['img_per_s_max']:,.0f} |")
    print(f"\ncnnzoo / torchvision (median img/s from epoch 2): {ratio:.2f}x; the decoded cache takes "
          f"{cache_bytes / 2**20:,.1f} MiB on disk ({ours.cache.dir})")

    out = {"date": dt.date.today().isoformat(), "model": a.model, "size": a.size, "batch": a.batch,
           "epochs": a.epochs, "workers": a.workers, "device": str(device), "precision": precision_name(amp_dtype),
           "threads": torch.get_num_threads(), "images": len(ds.train), "data": str(root), "quick": a.quick,
           "channels_last": channels_last, "results": res, "ratio_median_img_per_s": ratio,
           "cache_bytes_on_disk": cache_bytes}
    if a.json:
        path = Path(a.json)
    elif a.quick:
        path = Path(tempfile.gettempdir()) / f"{dt.date.today().isoformat()}_folder_pipeline_quick.json"
    else:
        path = Path(__file__).parent / "logs" / f"{dt.date.today().isoformat()}_folder_pipeline.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"results written to {path}")
    del ours, theirs
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
