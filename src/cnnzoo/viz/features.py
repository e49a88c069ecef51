"""What a layer sees: feature-map grids of chosen layers and the filters of the first convolution.

Each feature map is scaled to its own range (otherwise a few strong channels hide the rest); filters are scaled
one by one the same way, shown in colour when they read an RGB image.
"""

from __future__ import annotations

import difflib
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..errors import UserError
from ._mpl import DPI, pyplot, save

__all__ = ["capture", "default_layers", "resolve_layer", "plot_feature_maps", "plot_filters",
           "WIDTH_IN"]

WIDTH_IN = 12.0  # every grid is 12 inches (1200 px) wide


def resolve_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name`` (``layer4.1.conv2``), or a one-line error listing close names."""
    modules = dict(model.named_modules())
    if name in modules and name:
        return modules[name]
    close = difflib.get_close_matches(name, [n for n in modules if n], n=4, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `cnnzoo summary MODEL --depth 9` lists the names"
    raise UserError(f"the model has no layer {name!r}{hint}")


def default_layers(model: nn.Module, at_most: int = 4) -> List[str]:
    """The last module of each stage (``stage_map``), up to ``at_most`` of them spread from first to last."""
    stage_map: Dict[str, Tuple[str, ...]] = getattr(model, "stage_map", {}) or {}
    names = [paths[-1] for stage, paths in stage_map.items() if stage != "head" and paths]
    if not names:
        names = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if len(names) > at_most:
        idx = sorted({round(i * (len(names) - 1) / (at_most - 1)) for i in range(at_most)})
        names = [names[i] for i in idx]
    return names


def capture(model: nn.Module, x: torch.Tensor, names: Sequence[str]) -> Tuple[torch.Tensor, Dict[str, torch.Tensor],
                                                                              Optional[Tuple[str, nn.Conv2d]]]:
    """Run ``model(x)`` (no gradients) and return its output, the outputs of the named layers and the first
    ``nn.Conv2d`` called (name, module)."""
    outs: Dict[str, torch.Tensor] = {}
    first: List[Tuple[str, nn.Conv2d]] = []
    handles = []
    wanted = {n: resolve_layer(model, n) for n in names}
    def keep(name: str):
        def hook(mod, args, out) -> None:  # returns None: the output goes on unchanged
            if name not in outs:  # a module called twice (a shared pooling layer): its first call
                outs[name] = _tensor(out).detach().clone()
        return hook

    def first_conv(name: str):
        def hook(mod, args, out) -> None:
            if not first:
                first.append((name, mod))
        return hook

    for n, m in wanted.items():
        handles.append(m.register_forward_hook(keep(n)))
    for n, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(first_conv(n)))
    try:
        with torch.no_grad():
            y = model(x)
    finally:
        for h in handles:
            h.remove()
    for n in names:
        if n not in outs:
            raise UserError(f"layer {n!r} is not called in the forward pass (an auxiliary head?); choose another")
    return _tensor(y), {n: outs[n] for n in names}, (first[0] if first else None)


def _tensor(o) -> torch.Tensor:
    if isinstance(o, torch.Tensor):
        return o
    if isinstance(o, (tuple, list)) and o and isinstance(o[0], torch.Tensor):
        return o[0]
    raise UserError("this layer does not return a tensor")


def _grid(n: int, cols: int) -> Tuple[int, int]:
    cols = max(1, min(cols, n))
    return math.ceil(n / cols), cols


def _norm(t: torch.Tensor) -> torch.Tensor:
    lo, hi = t.min(), t.max()
    return (t - lo) / (hi - lo) if float(hi - lo) > 0 else torch.zeros_like(t)


def plot_feature_maps(act: torch.Tensor, out_png, title: str = "", max_maps: int = 32, cols: int = 8) -> str:
    """A grid of the first ``max_maps`` channels of one image's ``C x H x W`` activation; returns the path.

    The figure is 1200 px wide and ``150 * rows + 50`` px tall.
    """
    if act.dim() == 4:
        act = act[0]
    if act.dim() != 3:
        raise UserError(f"{title or 'this layer'} outputs shape {tuple(act.shape)}, not a C x H x W feature map; "
                        "choose a convolutional layer")
    n = min(int(act.shape[0]), max_maps)
    rows, cols = _grid(n, cols)
    cell = WIDTH_IN / cols
    plt = pyplot()
    fig = plt.figure(figsize=(WIDTH_IN, rows * 1.5 + 0.5), dpi=DPI)
    top = 1 - 0.5 / (rows * 1.5 + 0.5)
    for i in range(n):
        r, c = divmod(i, cols)
        ax = fig.add_axes((c / cols + 0.005, top - (r + 1) * (1.5 / (rows * 1.5 + 0.5)) + 0.01,
                           1 / cols - 0.01, min(cell, 1.5) / (rows * 1.5 + 0.5) - 0.02))
        ax.imshow(_norm(act[i].float()).cpu().numpy(), cmap="viridis", interpolation="nearest", aspect="auto")
        ax.set_axis_off()
        ax.text(0.02, 0.98, str(i), color="white", fontsize=7, va="top", ha="left", transform=ax.transAxes)
    shown = f"first {n} of {act.shape[0]} channels" if n < act.shape[0] else f"{n} channels"
    fig.suptitle(f"{title}  {'x'.join(map(str, act.shape))}  ({shown}, each scaled to its own range)",
                 y=1 - 0.12 / (rows * 1.5 + 0.5), fontsize=11)
    return save(fig, out_png)


def plot_filters(weight: torch.Tensor, out_png, title: str = "", max_filters: int = 64, cols: int = 16) -> str:
    """The first ``max_filters`` filters of a convolution's ``O x I x kh x kw`` weight; returns the path.

    RGB filters (I = 3) are shown in colour, others as the mean over their input channels. The figure is
    1200 px wide and ``75 * rows + 50`` px tall.
    """
    w = weight.detach().float().cpu()
    n = min(int(w.shape[0]), max_filters)
    rows, cols = _grid(n, cols)
    plt = pyplot()
    h_in = rows * 0.75 + 0.5
    fig = plt.figure(figsize=(WIDTH_IN, h_in), dpi=DPI)
    top = 1 - 0.5 / h_in
    for i in range(n):
        r, c = divmod(i, cols)
        f = w[i]
        img = _norm(f).permute(1, 2, 0).numpy() if f.shape[0] == 3 else _norm(f.mean(0)).numpy()
        ax = fig.add_axes((c / cols + 0.004, top - (r + 1) * (0.75 / h_in) + 0.006,
                           1 / cols - 0.008, 0.75 / h_in - 0.012))
        ax.imshow(img, cmap=None if f.shape[0] == 3 else "gray", interpolation="nearest", aspect="auto")
        ax.set_axis_off()
    o, i_, kh, kw = w.shape
    shown = f"first {n} of {o}" if n < o else f"{o}"
    colour = "RGB" if i_ == 3 else ("grey" if i_ == 1 else f"mean of {i_} input channels")
    fig.suptitle(f"{title}: {shown} filters, {kh}x{kw}x{i_} ({colour}, each scaled to its own range)",
                 y=1 - 0.12 / h_in, fontsize=11)
    return save(fig, out_png)
