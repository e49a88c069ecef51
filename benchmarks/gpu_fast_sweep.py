"""Target 4 on a GPU: choose the fast airbench recipe on the validation split, then test it (3 seeds).

Runs five candidates with a 10% validation split, picks the best validation accuracy, then runs that
candidate (and the 16-epoch one without cuDNN autotuning, for comparison) on all 60k training images
with seeds 0-2 and reports the test accuracy. As run on the lent H100 on 2026-11-23 (benchmarks/RESULTS.md);
the IDX files are read from ``.data/fashion-mnist`` (a copy carried with the working tree) and every log
goes to ``$OUT/all.log``.

    PYTHONPATH=src python3 benchmarks/gpu_fast_sweep.py
"""
import json, os, subprocess, sys, time, statistics
D = os.path.abspath(".data/fashion-mnist"); R = "/tmp/runs"; os.makedirs(R, exist_ok=True)
OUT = os.environ.get("OUT", "/tmp")
BASE = ["-c", "configs/fast_fashion-mnist.yaml", "--model", "airbench94", "--batch-size", "1024", "--lr", "0.8",
        "--set", "model.kwargs.act=gelu"]  # as run in 2026-11: the CPU recipe then had GELU
def run(name, args, val=True, seed=0):
    out = f"{R}/{name}"
    cmd = [sys.executable, "-m", "cnnzoo", "train", "--data", "fashion-mnist", "--data-dir", D, "--device", "cuda",
           "--no-progress", "--overwrite", "--output", out, "--seed", str(seed), *BASE, *args,
           "--set", f"data.val_split={0.1 if val else 0.0}"]
    t = time.perf_counter(); p = subprocess.run(cmd, capture_output=True, text=True); wall = time.perf_counter() - t
    open(f"{OUT}/all.log", "a").write(f"### {name} {' '.join(args)}\n{p.stdout}{p.stderr}\n")
    if p.returncode: print(name, "FAILED", p.stderr[-500:]); return None
    r = json.load(open(out + "/results.json")); r["wall"] = wall
    print(f"{name:22s} val {r.get('val_top1', 0):.4f} test {r['test_top1']:.4f} train_s {r['train_seconds']:6.2f} "
          f"total_s {r.get("total_seconds", 0):6.2f} test_s {r.get("test_seconds", 0):5.2f} wall {wall:5.1f} img/s {r.get('img_per_s', 0):,.0f}", flush=True)
    return r
cands = {
    "e16_nobench": ["--epochs", "16", "--set", "train.cudnn_benchmark=false"],
    "e16": ["--epochs", "16"],
    "e24": ["--epochs", "24"],
    "wide_e16": ["--epochs", "16", "--set", 'model.kwargs={"widths":[128,384,384]}'],
    "e16_ls02": ["--epochs", "16", "--set", "train.label_smoothing=0.2"],
}
res = {k: run(k, v) for k, v in cands.items()}
ok = {k: r for k, r in res.items() if r}
best = max(ok, key=lambda k: ok[k]["val_top1"])
print("best by val:", best, flush=True)
finals = [best] + ([k for k in ("e16_nobench", "e16") if k != best][:1])
summary = {}
for k in finals:
    rows = [run(f"final_{k}_s{s}", cands[k], val=False, seed=s) for s in (0, 1, 2)]
    rows = [r for r in rows if r]
    summary[k] = dict(test=[r["test_top1"] for r in rows], train_s=[r["train_seconds"] for r in rows],
                      total_s=[r.get("total_seconds") for r in rows], wall=[r["wall"] for r in rows])
    print(k, "median test", statistics.median(summary[k]["test"]), "median train_s", statistics.median(summary[k]["train_s"]),
          "median wall", round(statistics.median(summary[k]["wall"]), 1), flush=True)
json.dump(dict(cands=cands, val={k: (r or {}).get("val_top1") for k, r in res.items()}, summary=summary),
          open(f"{OUT}/t4.json", "w"), indent=1)
