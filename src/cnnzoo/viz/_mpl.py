"""Matplotlib with the Agg backend (files only, no display), imported on first use."""

from __future__ import annotations

DPI = 100  # every figure is saved at this resolution, without "tight" cropping, so its pixel size is fixed


def pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save(fig, path) -> str:
    from pathlib import Path

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(p, dpi=DPI)
    pyplot().close(fig)
    return str(p)
