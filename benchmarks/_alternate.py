"""The in-process timing loop the benchmark scripts share: variants alternated, the order reversed every other
round (ABBA), so that the CPU's drift between minutes falls on every variant alike."""

from __future__ import annotations

import time
from typing import Callable, Dict, List


def alternate(runs: Dict[str, Callable[[], None]], repeats: int) -> Dict[str, List[float]]:
    """Wall seconds of each timed run, ``repeats`` of each: ``runs`` maps a variant's name to one timed run (its
    warm-up is the caller's); round r runs them in order, or reversed where r is odd."""
    times: Dict[str, List[float]] = {k: [] for k in runs}
    for r in range(repeats):
        for k in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
            t0 = time.perf_counter()
            runs[k]()
            times[k].append(time.perf_counter() - t0)
    return times
