"""The comparison plot: accuracy (or speed) against multiply-adds, one labelled bubble per model."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence, Union

from ..errors import UserError
from ._mpl import DPI, pyplot, save

__all__ = ["plot_compare"]


def plot_compare(entries: Sequence, out_png: Union[str, Path]) -> str:
    """Bubble chart of :class:`~cnnzoo.analysis.compare.Entry` rows; an 800 x 600 px PNG.

    The y axis is top-1 accuracy when any entry has one (entries without are left out), else images/s, else
    parameters. x is MACs (log scale); bubble area is proportional to parameters.
    """
    from ..analysis.flops import human

    if any(e.top1 is not None for e in entries):
        pts = [e for e in entries if e.top1 is not None]
        ys = [e.top1 * 100 if e.top1 <= 1 else e.top1 for e in pts]
        ylabel, ylog = "top-1 accuracy (%)", False
    elif any(e.img_per_s for e in entries):
        pts = [e for e in entries if e.img_per_s]
        ys = [e.img_per_s for e in pts]
        ylabel, ylog = "images / s (eval forward)", True
    else:
        pts = list(entries)
        ys = [e.params for e in pts]
        ylabel, ylog = "parameters", True
    if not pts:
        raise UserError("nothing to plot")
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 6), dpi=DPI)
    fig.subplots_adjust(left=0.11, right=0.97, bottom=0.1, top=0.9)
    big = max(e.params for e in pts) or 1
    xs = [max(e.macs, 1) for e in pts]
    sizes = [60 + 2400 * e.params / big for e in pts]
    colours = plt.cm.tab10.colors
    for i, (e, x, y, s) in enumerate(zip(pts, xs, ys, sizes)):
        ax.scatter([x], [y], s=s, alpha=0.55, color=colours[i % len(colours)], edgecolors="black", linewidths=0.6)
    ax.set_xscale("log")
    if ylog:
        ax.set_yscale("log")
    ax.margins(x=0.15, y=0.2)
    ax.autoscale_view()
    placed: list = []  # label boxes in display pixels, to keep labels apart
    for e, x, y, s in zip(pts, xs, ys, sizes):
        text = f"{e.name}\n{human(e.params)}params"
        px, py = ax.transData.transform((x, y))
        r = math.sqrt(s) / 2 * DPI / 72 + 3
        w, h = 6.5 * max(len(t) for t in text.split("\n")), 26
        for dx, dy, ha, va in ((0, -r, "center", "top"), (0, r, "center", "bottom"), (r, 0, "left", "center"),
                               (-r, 0, "right", "center")):
            x0 = px + dx - (w / 2 if ha == "center" else (0 if ha == "left" else w))
            y0 = py + dy - (h if va == "top" else (0 if va == "bottom" else h / 2))
            box = (x0, y0, x0 + w, y0 + h)
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
                break
        placed.append(box)
        ax.annotate(text, (x, y), xytext=(dx * 72 / DPI, dy * 72 / DPI), textcoords="offset points", ha=ha, va=va,
                    fontsize=8)
    ax.set_xlabel("multiply-adds per image (MACs, log scale)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="both")
    fig.suptitle(f"{ylabel.split(' (')[0]} against compute; bubble area = parameters", fontsize=12)
    return save(fig, out_png)
