"""Transfer learning on real data, offline: Fashion-MNIST -> handwritten digits with few labels.

Pretrains a model on Fashion-MNIST with cnnzoo, then, for 10 and 100 labelled digits per class,
compares (a) the same model trained from scratch, (b) a linear probe (frozen body, head trained),
(c) two-stage fine-tuning (head first, then everything at a lower rate). Prints a markdown table
of test accuracy (scikit-learn digits' fixed 359-image test split) and wall time.

    python benchmarks/transfer_digits.py --model bn_convnet --pretrain-epochs 5 --out runs/transfer
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from cnnzoo.cli import main as cnnzoo


def run(args: list) -> dict:
    t0 = time.perf_counter()
    rc = cnnzoo(args)
    if rc != 0:
        sys.exit(f"failed ({rc}): cnnzoo {' '.join(args)}")
    out = Path(args[args.index("--output") + 1])
    res = json.loads((out / "results.json").read_text())
    res["wall"] = time.perf_counter() - t0
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="bn_convnet")
    ap.add_argument("--pretrain-epochs", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=30, help="epochs on the digits")
    ap.add_argument("--shots", type=int, nargs="+", default=[10, 100])
    ap.add_argument("--out", default="runs/transfer")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reuse-pretrain", action="store_true", help="keep OUT/pretrain from an earlier run")
    a = ap.parse_args()
    root = Path(a.out)
    if root.exists():
        for d in root.iterdir():
            if not (a.reuse_pretrain and d.name == "pretrain"):
                shutil.rmtree(d)
    common = ["--no-progress", "--set", "run.tensorboard=false", "--seed", str(a.seed)]
    digits = ["--data", "digits", "--set", "data.image_size=28", "--model", a.model] + common

    pre = root / "pretrain"
    if a.reuse_pretrain and (pre / "results.json").is_file():
        p = json.loads((pre / "results.json").read_text())
        p["wall"] = p["total_seconds"]
    else:
        p = run(["train", "--model", a.model, "--data", "fashion-mnist", "--epochs", str(a.pretrain_epochs),
                 "--set", "data.augment.hflip=true", "--set", "data.augment.translate=2", "--set", "schedule.name=onecycle",
                 "--lr", "0.1", "--output", str(pre), *common])
    rows = [("pretrain on Fashion-MNIST (all 60k labels)", "-", p["test_top1"], p["wall"])]
    for n in a.shots:
        shot = ["--set", f"data.per_class={n}", "--epochs", str(a.epochs)]
        s = run(["train", *digits, *shot, "--lr", "0.05", "--output", str(root / f"scratch-{n}")])
        rows.append(("from scratch", n, s["test_top1"], s["wall"]))
        lp = run(["finetune", *digits, *shot, "--pretrained", str(pre), "--head-epochs", str(a.epochs),
                  "--head-lr", "0.01", "--unfreeze", "none", "--output", str(root / f"probe-{n}")])
        rows.append(("linear probe (frozen body)", n, lp["test_top1"], lp["wall"]))
        ft = run(["finetune", *digits, *shot, "--pretrained", str(pre), "--head-epochs", "5", "--head-lr", "0.01",
                  "--lr", "0.01", "--output", str(root / f"finetune-{n}")])
        rows.append(("fine-tune: head 5 ep. at 1e-2, then all at 1e-2", n, ft["test_top1"], ft["wall"]))
    print(f"\n{a.model}, digits test split (359 images), seed {a.seed}, {a.epochs} epochs on the digits\n")
    print("| method | labels per class | test top-1 | wall time |")
    print("|---|---:|---:|---:|")
    for name, n, acc, wall in rows:
        print(f"| {name} | {n} | {acc:.3f} | {wall:.1f} s |")


if __name__ == "__main__":
    main()
