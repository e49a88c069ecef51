"""Variants of a recipe on its validation split, alternated over rounds: the last epochs' val top-1 and the wall.

    python benchmarks/recipe_sweep.py variants.json --rounds 2 --val-split 0.2

``variants.json`` maps a name to the extra ``cnnzoo train`` arguments of that variant, e.g.
``{"relu5": ["--epochs", "5", "--set", "model.kwargs.act=relu"]}``. Round r runs every variant with seed r, in
order on even rounds and reversed on odd ones (the CPU's speed drifts between minutes). Each run's directory is
kept under ``--out`` for ``--tta-val``, which scores the runs' held-out validation images with each TTA mode
(the test split is not looked at to choose). Time it alone on the machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def tta_on_val(runs) -> None:
    """Each run's validation top-1 with no TTA, flip and flip_translate (the run's own held-out split)."""
    import torch

    from cnnzoo.builder import load_model
    from cnnzoo.train import trainer as T
    from cnnzoo.train.config import load_config
    from cnnzoo.train.evaluate import evaluate
    from cnnzoo.runtime import resolve_precision

    for run in runs:
        cfg = load_config(str(Path(run) / "config.yaml"))
        splits = T.load_splits(cfg)
        mean, std, _ = T.normalization(cfg, splits.dataset)
        model, meta = load_model(run)
        model = model.to(memory_format=torch.channels_last)
        size = tuple(meta.get("image_size") or splits.dataset.image_size[:2])
        device = torch.device("cpu")
        loaders = T.build_loaders(cfg, splits, size, meta["in_chans"], device, 0, 1, lambda m: None, (mean, std))
        amp = resolve_precision(cfg.train.precision, device, model)
        scores = [f"{tta or 'none'} {evaluate(model, loaders.val, len(splits.classes), device, amp, tta)['top1']:.4f}"
                  for tta in (None, "flip", "flip_translate")]
        print(run, " | ".join(scores), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("variants", nargs="+", help="a JSON file of variants, or run directories with --tta-val")
    ap.add_argument("--config", "-c", default="configs/fast_fashion-mnist.yaml")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--val-split", type=float, default=0.2)
    ap.add_argument("--out", default="runs/recipe_sweep")
    ap.add_argument("--tta-val", action="store_true", help="score finished runs' validation split with each TTA mode")
    a = ap.parse_args()
    if a.tta_val:
        return tta_on_val(a.variants)
    variants = json.loads(Path(a.variants[0]).read_text())
    base = [sys.executable, "-m", "cnnzoo", "train", "-c", a.config, "--no-progress",
            "--set", f"data.val_split={a.val_split}"]
    res = {k: [] for k in variants}
    for r in range(a.rounds):
        for k in (list(variants) if r % 2 == 0 else list(variants)[::-1]):
            out = Path(a.out) / f"{k}-{r}"
            shutil.rmtree(out, ignore_errors=True)
            t0 = time.perf_counter()
            p = subprocess.run(base + variants[k] + ["--seed", str(r), "--output", str(out)], capture_output=True,
                               text=True)
            wall = time.perf_counter() - t0
            if p.returncode:
                print(f"{k} r{r}: failed: {p.stderr.strip().splitlines()[-1:]}", flush=True)
                continue
            accs = [float(row["val_acc"]) for row in csv.DictReader(open(out / "metrics.csv")) if row.get("val_acc")]
            j = json.loads((out / "results.json").read_text())
            res[k].append((accs[-1], wall, j.get("img_per_s", 0.0)))
            print(f"{k:28s} r{r} val {' '.join(f'{v:.4f}' for v in accs[-3:])} wall {wall:6.1f} "
                  f"train {j['train_seconds']:.1f} s {j.get('img_per_s', 0):.0f} img/s", flush=True)
    for k, v in res.items():
        if v:
            print(f"{k:28s} median val {statistics.median(x[0] for x in v):.4f}  wall "
                  f"{statistics.median(x[1] for x in v):.1f} s  {statistics.median(x[2] for x in v):.0f} img/s")


if __name__ == "__main__":
    main()
