"""Training curves: loss and accuracy per epoch from a run's ``metrics.csv``."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Dict, List, Optional, Union

from ..errors import UserError
from ._mpl import DPI, pyplot, save

__all__ = ["plot_curves", "plot_run_curves", "read_metrics"]


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def read_metrics(metrics_csv: Union[str, Path]) -> Dict[str, List[float]]:
    """The columns of ``metrics.csv`` as float lists (blank or unreadable cells are NaN)."""
    p = Path(metrics_csv)
    if not p.is_file():
        raise UserError(f"no metrics file at {p}")
    with open(p, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
        fields = list(reader.fieldnames or [])
    if "epoch" not in fields:
        raise UserError(f"{p} is not a metrics file: it needs the columns epoch, train_loss, train_acc, val_loss, "
                        "val_acc")
    return {k: [_num(r.get(k)) for r in rows] for k in fields}


def plot_curves(metrics_csv: Union[str, Path], out_png: Union[str, Path]) -> str:
    """Loss (left) and accuracy (right) against the epoch, train and validation; a 1000 x 400 px PNG.

    Args:
        metrics_csv: columns ``epoch, train_loss, train_acc, val_loss, val_acc`` (others are ignored;
            validation columns may be empty or NaN when there was no validation split).
        out_png: where to write.

    Returns:
        the path written.
    """
    m = read_metrics(metrics_csv)
    ep = m["epoch"]
    plt = pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(10, 4), dpi=DPI)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.13, top=0.88, wspace=0.22)
    for ax, what in ((ax_l, "loss"), (ax_a, "acc")):
        for split, style in (("train", "-o"), ("val", "-s")):
            ys = m.get(f"{split}_{what}")
            if ys and any(not math.isnan(y) for y in ys):
                ax.plot(ep, ys, style, markersize=3, label=split)
        stages = m.get("stage")
        if stages:  # a fine-tune's stages, one after the other: a line where each new stage starts
            for i in range(1, len(stages)):
                if stages[i] != stages[i - 1]:
                    ax.axvline(ep[i] - 0.5, color="grey", linestyle="--", linewidth=1)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("loss" if what == "loss" else "accuracy")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    va = [y for y in m.get("val_acc", []) if not math.isnan(y)]
    best = f"best val accuracy {max(va):.4g}" if va else "no validation split"
    fig.suptitle(f"training curves ({len(ep)} epochs, {best})", fontsize=11)
    return save(fig, out_png)


def plot_run_curves(metrics_csv: Union[str, Path], out_png: Union[str, Path]) -> Optional[str]:
    """A run's ``curves.png`` when it ends: :func:`plot_curves`, or None where matplotlib is not installed (the
    CSV still has every number)."""
    try:
        return plot_curves(metrics_csv, out_png)
    except ImportError:
        return None
