"""RandAugment and TrivialAugment per image: cnnzoo's batched ops against kornia and a torchvision loop.

For a batch of 256 x 3 x 112 x 112 and one of 256 x 1 x 28 x 28 (uint8 content), the time per image of

* ``cnnzoo``: ``BatchAugment.auto`` (each image draws its own ops; grouped by op, a few batched passes);
* ``kornia``: ``kornia.augmentation.auto.RandAugment(n, m)`` / ``TrivialAugment()`` on the float batch (0..1),
  if kornia is installed (``pip install 'kornia==0.9.*'``; not a cnnzoo dependency);
* ``torchvision loop``: ``torchvision.transforms.v2.RandAugment`` / ``TrivialAugmentWide`` called on each uint8
  image in a Python loop: the per-image-random baseline;
* ``torchvision batch``: the same transform called once on the whole uint8 batch, for reference only.

Besides the time, each row says where the ops are drawn, as the libraries' code reads (kornia 0.9: the op
once per call, in ``RandAugment.get_forward_sequence`` via ``rand_selector`` (``torch.randperm``) and
``TrivialAugment.get_forward_sequence`` (``Categorical.sample((1,))``), while signs and TrivialAugment's
magnitudes vary per image; torchvision: ``_AutoAugmentBase._get_random_item`` once per call, which treats a
batch as one image), and how many distinct results 32 copies of one image give.

Times are medians of ``--repeats`` runs after one warm-up; run on a quiet machine (see README.md). Prints a
Markdown table and writes JSON (default ``benchmarks/logs/<date>_augment_ops.json``).

    python benchmarks/augment_ops.py --threads 4
    python benchmarks/augment_ops.py --quick          # a tiny batch, one repeat: checks that it runs
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import torch

from cnnzoo.data.augment import AugmentConfig, BatchAugment

SHAPES = [(3, 112, 112), (1, 28, 28)]
OPS_DRAWN = {"cnnzoo": "per image", "kornia": "per batch", "torchvision loop": "per image",
             "torchvision batch": "per batch"}
N_OPS, MAGNITUDE = 2, 9  # RandAugment's usual N and M


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_seconds(fn: Callable[[], torch.Tensor], repeats: int, device: torch.device) -> float:
    fn()  # warm-up
    _sync(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _distinct(out: torch.Tensor) -> int:
    return len({tuple(o.flatten().tolist()) for o in out.float().cpu()})


def candidates(method: str, channels: int, device: torch.device) -> Dict[str, Optional[Callable]]:
    """name -> fn(uint8 batch) for one method ("randaugment" or "trivialaugment"); None where unavailable."""
    from torchvision.transforms import v2

    cfg = AugmentConfig(randaugment=N_OPS, randaugment_magnitude=MAGNITUDE) if method == "randaugment" \
        else AugmentConfig(trivialaugment=True)
    ours = BatchAugment(cfg, channels, None, device)
    gen = torch.Generator(device=device).manual_seed(0)
    tv = v2.RandAugment(num_ops=N_OPS, magnitude=MAGNITUDE) if method == "randaugment" else v2.TrivialAugmentWide()
    out: Dict[str, Optional[Callable]] = {
        "cnnzoo": lambda x: ours.auto(x.float(), gen),
        "torchvision loop": lambda x: torch.stack([tv(img) for img in x]),
        "torchvision batch": lambda x: tv(x),
    }
    try:
        from kornia.augmentation import auto as kauto

        k = kauto.RandAugment(n=N_OPS, m=MAGNITUDE) if method == "randaugment" else kauto.TrivialAugment()
        k = k.to(device)
        out["kornia"] = lambda x: k(x.float() / 255.0)
    except ImportError:
        out["kornia"] = None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true", help="batch 8, one repeat: only checks that everything runs")
    ap.add_argument("--json", default=None, help="where to write the results (default benchmarks/logs/...)")
    a = ap.parse_args()
    if a.quick:
        a.batch, a.repeats = 8, 1
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    rows: List[dict] = []
    print(f"batch {a.batch}, {a.repeats} repeats, threads {torch.get_num_threads()}, device {device}, "
          f"torch {torch.__version__}\n")
    print("| method | shape | implementation | ms / image | ops drawn | distinct of 32 copies |")
    print("|---|---|---|---:|---|---:|")
    for c, h, w in SHAPES:
        x = torch.randint(0, 256, (a.batch, c, h, w), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
        x = x.to(device)
        copies = x[:1].expand(32, -1, -1, -1).contiguous()
        for method in ("randaugment", "trivialaugment"):
            for name, fn in candidates(method, c, device).items():
                row = dict(method=method, shape=f"{c}x{h}x{w}", implementation=name, batch=a.batch,
                           ops_drawn=OPS_DRAWN[name])
                if fn is None:
                    row.update(ms_per_image=None, distinct_of_32=None, note="not installed")
                else:
                    try:
                        row["ms_per_image"] = _median_seconds(lambda: fn(x), a.repeats, device) * 1e3 / a.batch
                        torch.manual_seed(0)
                        row["distinct_of_32"] = _distinct(fn(copies))
                    except Exception as e:  # a library that cannot do this shape: say so in the table
                        row.update(ms_per_image=None, distinct_of_32=None, note=f"{type(e).__name__}: {e}"[:120])
                rows.append(row)
                ms = "-" if row["ms_per_image"] is None else f"{row['ms_per_image']:.4f}"
                distinct = row.get("note", "-") if row["distinct_of_32"] is None else row["distinct_of_32"]
                print(f"| {method} | {row['shape']} | {name} | {ms} | {row['ops_drawn']} | {distinct} |")
    path = Path(a.json) if a.json else (Path(__file__).parent / "logs" /
                                        f"{dt.date.today().isoformat()}_augment_ops{'_quick' if a.quick else ''}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(batch=a.batch, repeats=a.repeats, threads=torch.get_num_threads(),
                                    device=str(device), torch=torch.__version__, quick=a.quick, rows=rows), indent=1))
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
