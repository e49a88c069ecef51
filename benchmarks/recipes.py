"""Run Fashion-MNIST recipes and print their test accuracy and wall time as markdown rows.

    python benchmarks/recipes.py configs/lenet5_fashion-mnist.yaml configs/bn_convnet_fashion-mnist.yaml

Wall time is the whole `cnnzoo train` call (data loading, training, per-epoch validation, the final
test evaluation). The reference column is the Fashion-MNIST benchmark table's figure for the
closest architecture, where it lists one.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

# The Fashion-MNIST repository's benchmark table (test accuracy), by our model name.
REFERENCE = {"resnet18": 0.949, "vgg16": 0.935, "googlenet": 0.937, "mobilenet_v2": 0.950,
             "densenet_bc_100_12": 0.954, "alexnet_owt": 0.899, "squeezenet1_1": 0.900}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recipes", nargs="+")
    ap.add_argument("--out", default="runs/recipes")
    ap.add_argument("--set", action="append", default=[], help="extra overrides for every recipe")
    a = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {sys.platform}; date {time.strftime('%Y-%m-%d')}")
    print("| recipe | model | epochs | test top-1 | reference | wall time | img/s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for recipe in a.recipes:
        out = Path(a.out) / Path(recipe).stem
        cmd = [sys.executable, "-m", "cnnzoo", "train", "-c", recipe, "--output", str(out), "--overwrite",
               "--no-progress", *sum((["--set", s] for s in a.set), [])]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            print(f"| {Path(recipe).name} | failed: {r.stderr.strip().splitlines()[-1]} | | | | | |")
            continue
        res = json.loads((out / "results.json").read_text())
        ref = REFERENCE.get(res["model"])
        print(f"| {Path(recipe).name} | {res['model']} | {res['epochs']} | {res['test_top1']:.4f} | "
              f"{ref if ref else '-'} | {wall:.0f} s | {res['img_per_s']:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
