"""Latency of `cnnzoo --help`, `cnnzoo list` and `cnnzoo info googlenet` (or ``--command``s), two checkouts side by side.

Each round runs every command once in each checkout, the order reversed every other round (ABBA), as fresh
processes (`python -m cnnzoo ...` with PYTHONPATH set to the checkout's src/); it reports the median and the range
of the wall times per command and checkout, and the ratio of the medians.

    git worktree add /tmp/cnnzoo-before c6a1ada
    python benchmarks/cli_latency.py --before /tmp/cnnzoo-before --after . --rounds 5
    python benchmarks/cli_latency.py --before /tmp/cnnzoo-before --after . --command "summary lenet5"
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = [["--help"], ["list"], ["info", "googlenet"]]


def wall(checkout: Path, args) -> float:
    env = dict(os.environ, PYTHONPATH=str(checkout / "src"))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cnnzoo", *args], env=env, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, required=True)
    ap.add_argument("--after", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--command", action="append", metavar="ARGS",
                    help="a command's arguments as one string (repeatable); default: --help, list, info googlenet")
    a = ap.parse_args()
    commands = [c.split() for c in a.command] if a.command else COMMANDS
    sides = {"before": a.before.resolve(), "after": a.after.resolve()}
    times = {(s, " ".join(c)): [] for s in sides for c in commands}
    for r in range(a.rounds):
        order = list(sides) if r % 2 == 0 else list(sides)[::-1]
        for c in commands:
            for s in order:
                times[(s, " ".join(c))].append(wall(sides[s], c))
    print(f"| command | before median (range) s | after median (range) s | before / after |")
    print("|---|---:|---:|---:|")
    for c in commands:
        k = " ".join(c)
        b, f = times[("before", k)], times[("after", k)]
        ratio = statistics.median(b) / statistics.median(f)
        print(f"| `cnnzoo {k}` | {statistics.median(b):.2f} ({min(b):.2f}-{max(b):.2f}) "
              f"| {statistics.median(f):.2f} ({min(f):.2f}-{max(f):.2f}) | {ratio:.{0 if ratio >= 10 else 2}f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
