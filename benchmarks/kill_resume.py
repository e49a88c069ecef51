"""Kill-and-resume: SIGKILL a training run at random moments, resume it each time, compare with an unbroken run.

For each precision: one uninterrupted reference run, then the same run killed ``--kills`` times at random
moments (each attempt killed after a uniform random time, about two kills per reference run's time, so some
kills land before the first checkpoint, some inside a checkpoint write or after the last one, most mid-epoch) and resumed after each kill until it finishes. A kill before the first
checkpoint leaves nothing to resume: the run is started again with ``--overwrite``, as cnnzoo's message says.
At the end the final weights (every tensor, bitwise), ``metrics.csv`` (every column but the timings) and
``results.json`` (every field but the timings) must equal the reference's.

Checkpoint writes are slowed by ``CNNZOO_CHECKPOINT_DELAY`` (default 0.2 s, in both runs; it changes no result)
so that the kills inside a write are not left to luck. This is a correctness measurement, not a timing one:
it may run beside other work.

    python benchmarks/kill_resume.py --kills 12 --precision fp32 bf16 --json benchmarks/logs/kill_resume.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from cnnzoo.io import RunDir, load_weights  # noqa: E402

TIMES = {"seconds", "img_per_s", "train_seconds", "data_seconds", "test_seconds", "total_seconds"}


def command(args, out: Path, precision: str) -> List[str]:
    return [sys.executable, "-m", "cnnzoo", "train", "--model", args.model, "--data", args.data, "--epochs",
            str(args.epochs), "--batch-size", str(args.batch_size), "--deterministic", "--no-progress",
            "--precision", precision, "--seed", str(args.seed), "--output", str(out)]


def env(args) -> Dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT / "src"), CNNZOO_CHECKPOINT_DELAY=str(args.write_delay))


def in_a_write(out: Path) -> bool:
    ck = out / "checkpoints"
    return ck.is_dir() and any(ck.glob(".*.tmp-*"))


class Attempt:
    """One ``cnnzoo train`` process, with the moment its header line (training about to start) appeared."""

    def __init__(self, cmd: List[str], args) -> None:
        import threading

        self.p = subprocess.Popen(cmd, env=env(args), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        self.started = threading.Event()
        self.err: List[str] = []
        threading.Thread(target=self._read_out, daemon=True).start()
        threading.Thread(target=lambda: self.err.extend(self.p.stderr), daemon=True).start()

    def _read_out(self) -> None:
        for line in self.p.stdout:
            if " parameters (" in line:  # the run's header: data loaded, model built, the loop starts
                self.started.set()
        self.started.set()


def reference_run(args, out: Path, precision: str) -> Tuple[float, float]:
    """Train the reference; returns (seconds to the header line, seconds of training after it)."""
    t0 = time.perf_counter()
    a = Attempt(command(args, out, precision) + ["--overwrite"] * out.exists(), args)
    a.started.wait()
    t1 = time.perf_counter()
    if a.p.wait() != 0:
        raise SystemExit(f"reference run failed: {''.join(a.err)[-2000:]}")
    return t1 - t0, time.perf_counter() - t1


def killed_run(args, out: Path, precision: str, startup: float, span: float, rng: random.Random) -> Dict[str, int]:
    """Train into ``out`` with ``args.kills`` SIGKILLs at random moments; resume after each until it finishes.

    One kill in ``kills`` lands at a uniform random moment of the start-up (before the first checkpoint); the
    others at a uniform random moment of the training that follows the header line: up to ``2 span / kills``
    after a resume (``span``: the reference's training time), so that the kills spread over the whole run, and
    up to ``span`` for a run started from scratch."""
    counts = dict(kills=0, before_first_checkpoint=0, inside_checkpoint_write=0, mid_run=0,
                  after_last_checkpoint=0, resumes=0, restarts=0)
    started = False
    while True:
        if not started or RunDir(out).latest_checkpoint() is None:
            cmd = command(args, out, precision) + (["--overwrite"] if started else [])
            counts["restarts"] += started
        else:
            cmd = [sys.executable, "-m", "cnnzoo", "train", "--resume", str(out), "--no-progress"]
            counts["resumes"] += 1
        started = True
        a = Attempt(cmd, args)
        if counts["kills"] < args.kills:
            if rng.random() < 1 / args.kills:
                delay = rng.uniform(0.1, startup)
            else:
                a.started.wait()
                # From scratch (no checkpoint yet): anywhere in the run, else it might never pass its first one.
                fresh = "--resume" not in cmd
                delay = rng.uniform(0.0, span if fresh else 2 * span / args.kills)
            try:
                a.p.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                run = RunDir(out)
                where = ("inside_checkpoint_write" if in_a_write(out) else
                         "before_first_checkpoint" if run.latest_checkpoint() is None else
                         "after_last_checkpoint" if run.checkpoint_epoch() == args.epochs else "mid_run")
                a.p.kill()
                a.p.wait()
                counts["kills"] += 1
                counts[where] += 1
                if (out / "results.json").is_file():  # killed while it was exiting: finished all the same
                    return counts
                continue
        if a.p.wait() != 0:
            raise SystemExit(f"run failed ({a.p.returncode}): {''.join(a.err)[-2000:]}")
        if (out / "results.json").is_file():
            return counts


def metrics_rows(path: Path) -> List[Dict[str, str]]:
    with open(path) as f:
        return [{k: v for k, v in row.items() if k not in TIMES} for row in csv.DictReader(f)]


def compare(ref: Path, out: Path) -> Dict[str, bool]:
    wa, wb = load_weights(ref / "model.safetensors")[0], load_weights(out / "model.safetensors")[0]
    ra, rb = (json.loads((d / "results.json").read_text()) for d in (ref, out))
    return {
        "weights_bit_identical": wa.keys() == wb.keys() and all(bool((wa[k] == wb[k]).all()) for k in wa),
        "metrics_identical": metrics_rows(ref / "metrics.csv") == metrics_rows(out / "metrics.csv"),
        "results_identical": {k: v for k, v in ra.items() if k not in TIMES} ==
                             {k: v for k, v in rb.items() if k not in TIMES},
        "checkpoints_kept": len(RunDir(out).own_checkpoints()),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=12)
    ap.add_argument("--model", default="lenet5")
    ap.add_argument("--data", default="digits")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--precision", nargs="+", default=["fp32", "bf16"])
    ap.add_argument("--write-delay", type=float, default=0.2)
    ap.add_argument("--work", default="runs/kill_resume")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    report = {"date": time.strftime("%Y-%m-%d"), "command": " ".join(sys.argv), "runs": []}
    ok = True
    for precision in args.precision:
        ref, out = work / f"ref-{precision}", work / f"killed-{precision}"
        startup, span = reference_run(args, ref, precision)
        if out.exists():
            shutil.rmtree(out)
        counts = killed_run(args, out, precision, startup, span, rng)
        result = {"precision": precision, "reference_seconds": round(startup + span, 1), **counts,
                  **compare(ref, out)}
        ok &= result["weights_bit_identical"] and result["metrics_identical"] and result["results_identical"]
        report["runs"].append(result)
        print(json.dumps(result))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
