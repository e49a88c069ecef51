"""Target 3: Fashion-MNIST test accuracy and wall time of `cnnzoo train -c configs/fast_fashion-mnist.yaml`.

Runs the recipe once per seed, each as its own ``cnnzoo train`` process, so the wall time is what a user
waits for: interpreter start, imports, reading the dataset, training, the test pass, writing the run.
Prints per seed the test top-1 (with the recipe's test-time augmentation), the wall seconds and the
trainer's own split (data loading, training epochs), then the medians.

    python benchmarks/time_to_accuracy.py                              # seeds 0 1 2
    python benchmarks/time_to_accuracy.py --seeds 0 -- --epochs 1 --set data.per_class=100   # a quick check

Arguments after ``--`` go to ``cnnzoo train`` unchanged (they are shown in the output: a changed recipe
is a different result).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    argv = sys.argv[1:]
    extra = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", "-c", default="configs/fast_fashion-mnist.yaml")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default="runs/time_to_accuracy", help="run directories go here (replaced)")
    ap.add_argument("--json", metavar="FILE", help="also write every number here")
    a = ap.parse_args(argv)
    root = Path(a.out)
    rows = []
    for seed in a.seeds:
        out = root / f"seed-{seed}"
        if out.exists():
            shutil.rmtree(out)
        cmd = [sys.executable, "-m", "cnnzoo", "train", "-c", a.config, "--seed", str(seed), "--output", str(out),
               "--no-progress", *extra]
        print("$ " + " ".join(cmd[2:]), file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call(cmd)
        wall = time.perf_counter() - t0
        if rc != 0:
            sys.exit(f"seed {seed}: cnnzoo train failed ({rc})")
        res = json.loads((out / "results.json").read_text())
        if "test_top1" not in res:
            sys.exit(f"seed {seed}: no test accuracy in {out}/results.json (is the test split there?)")
        rows.append(dict(seed=seed, test_top1=res["test_top1"], wall_seconds=wall, data_seconds=res["data_seconds"],
                         train_seconds=res["train_seconds"], epochs=res["epochs"], tta=res.get("tta"),
                         img_per_s=res.get("img_per_s"), precision=res["precision"], device=res["device"]))
    recipe = f"`cnnzoo train -c {a.config}`" + (f" + `{' '.join(extra)}`" if extra else "")
    print(f"\n{recipe}, {rows[0]['device']}, {rows[0]['precision']}, {rows[0]['epochs']} epochs, "
          f"TTA {rows[0]['tta'] or 'none'}\n")
    print("| seed | test top-1 | wall s | data s | training s | train img/s |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['seed']} | {100 * r['test_top1']:.2f}% | {r['wall_seconds']:.1f} | {r['data_seconds']:.1f} "
              f"| {r['train_seconds']:.1f} | {r['img_per_s'] or 0:,.0f} |")
    med = {k: statistics.median(r[k] for r in rows) for k in ("test_top1", "wall_seconds", "data_seconds",
                                                                 "train_seconds")}
    print(f"| **median** | **{100 * med['test_top1']:.2f}%** | **{med['wall_seconds']:.1f}** "
          f"| {med['data_seconds']:.1f} | {med['train_seconds']:.1f} | |")
    if a.json:
        Path(a.json).write_text(json.dumps(dict(config=a.config, extra=extra, runs=rows, median=med), indent=2) + "\n")


if __name__ == "__main__":
    main()
