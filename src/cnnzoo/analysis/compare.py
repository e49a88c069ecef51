"""Models and trained runs side by side: parameters, multiply-adds, depth, measured speed, accuracy.

* Parameters, MACs and depth come from :func:`~cnnzoo.analysis.summary.summarize` on the meta device (nothing
  computed). Parameters are those the eval forward pass uses: auxiliary heads, run only in training, are left out
  (GoogLeNet 6.6 M, not 13.0 M). Depth is the number of convolution and linear layers the eval forward pass runs,
  shortcut projections included (ResNet-50: 53 convolutions + 1 linear = 54; the paper's "50" leaves out the 4
  projections).
* Images/s: eval forward of a batch of random images, no gradients, best of ``repeats`` timed runs after one
  warm-up.
* For runs, ``results.json`` gives the accuracy (test top-1, else validation top-1) and the training time.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from ..errors import UserError
from ..io import Progress
from ..runtime import resolve_device
from .flops import human
from .load import is_run, read_results
from .summary import summarize

__all__ = ["Entry", "compare", "measure_speed", "format_table"]


@dataclass
class Entry:
    """One row of the comparison."""

    name: str
    model: str
    input: Tuple[int, int, int]
    params: int
    macs: int
    depth: int
    img_per_s: Optional[float] = None
    top1: Optional[float] = None
    top1_split: Optional[str] = None  # "test" or "val"
    train_seconds: Optional[float] = None
    run: Optional[str] = None

    def as_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["input"] = "x".join(map(str, self.input))
        return d


def measure_speed(spec: str, input_size: Sequence[int], batch_size: int = 8, repeats: int = 3,
                  device: str = "cpu", **create_kwargs: Any) -> float:
    """Images per second of the eval forward pass of ``spec`` (random weights for a registry name)."""
    from .load import load_model

    if batch_size < 1 or repeats < 1:
        raise UserError("--batch-size and --repeats must be at least 1")
    dev = resolve_device(device)
    model, _ = load_model(spec, dev, **create_kwargs)
    x = torch.randn(batch_size, *input_size, device=dev)
    best = float("inf")
    with torch.inference_mode():
        model(x)  # warm-up: allocator, cuDNN autotuning, lazy initialisation
        for _ in range(repeats):
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t = time.perf_counter()
            model(x)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            best = min(best, time.perf_counter() - t)
    return batch_size / best


def _label(spec: str, taken: set) -> str:
    name = Path(spec).name if is_run(spec) else spec
    if name == "model.safetensors":
        name = Path(spec).parent.name
    label, i = name, 2
    while label in taken:
        label, i = f"{name} ({i})", i + 1
    taken.add(label)
    return label


def compare(specs: Sequence[str], input_size: Optional[str] = None, timing: bool = True, batch_size: int = 8,
            repeats: int = 3, device: str = "cpu", model_kwargs: Optional[Dict[str, Dict[str, Any]]] = None,
            progress: str = "none", **create_kwargs: Any) -> List[Entry]:
    """One :class:`Entry` per model name, run directory or ``.safetensors`` file, in the order given.

    Args:
        specs: registry names (random weights: no accuracy) and runs.
        input_size: ``"CxHxW"`` for every entry; default: each run's image size, each model's registered input.
        timing: measure images/s (slow for big models on a CPU).
        batch_size, repeats, device: of the timing.
        model_kwargs: ``create_model`` arguments for one registry name (``{"resnet18": {"small_input": True}}``).
        progress: with ``timing``, a bar over the entries (:data:`cnnzoo.choices.PROGRESS`; ``auto``: on a
            terminal, on stderr).
        **create_kwargs: ``create_model`` arguments for every registry name (``num_classes=10``...).
    """
    if not specs:
        raise UserError("nothing to compare: give model names and/or --runs RUN_DIR ...")
    out: List[Entry] = []
    taken: set = set()
    for spec in Progress(progress if timing else "none", unit="model").iterate(list(specs), desc="timing"):
        run = is_run(spec)
        kwargs = {} if run else dict(create_kwargs, **(model_kwargs or {}).get(spec, {}))
        try:
            s = summarize(spec, input_size, depth=1, **kwargs)
        except ValueError as e:
            raise UserError(f"{spec}: {str(e).strip().splitlines()[0]}") from None
        t = s.totals
        # Parameters the eval forward uses: GoogLeNet's auxiliary heads (training only) are left out.
        e = Entry(_label(spec, taken), str(spec), s.input, int(t["params"] - t["unused_params"]), int(t["macs"]),
                  int(t["conv_linear_layers"]))
        if run:
            from .load import read_meta

            e.model = read_meta(spec)["model"]
            e.run = str(spec)
            res = read_results(spec)
            for key, split in (("test_top1", "test"), ("val_top1", "val")):
                v = res.get(key)
                if isinstance(v, (int, float)) and v == v:  # not NaN
                    e.top1, e.top1_split = float(v), split
                    break
            if isinstance(res.get("train_seconds"), (int, float)):
                e.train_seconds = float(res["train_seconds"])
        if timing:
            kw = dict(kwargs)
            if not run:
                kw.setdefault("in_chans", s.input[0])
            e.img_per_s = measure_speed(spec, s.input, batch_size, repeats, device, **kw)
        out.append(e)
    return out


def _seconds(s: Optional[float]) -> str:
    if s is None:
        return "-"
    if s < 120:
        return f"{s:.0f} s"
    return f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


def format_table(entries: Sequence[Entry], fmt: str = "markdown") -> str:
    """The comparison as a markdown table or CSV (exact numbers in CSV)."""
    if fmt == "csv":
        import csv
        import io

        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        cols = ["name", "model", "input", "params", "macs", "depth", "img_per_s", "top1", "top1_split",
                "train_seconds", "run"]
        w.writerow(cols)
        for e in entries:
            d = e.as_dict()
            w.writerow(["" if d[c] is None else (f"{d[c]:.6g}" if isinstance(d[c], float) else d[c]) for c in cols])
        return buf.getvalue().rstrip("\n")
    if fmt != "markdown":
        raise ValueError(f"unknown format {fmt!r}: markdown or csv")
    any_run = any(e.run for e in entries)
    head = ["model", "input", "params", "MACs", "depth", "images/s"] + (["top-1", "train time"] if any_run else [])
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for e in entries:
        label = f"`{e.name}` ({e.model})" if e.run and e.model != e.name else f"`{e.name}`"
        cells = [label, "x".join(map(str, e.input)), f"{e.params:,}", human(e.macs), str(e.depth),
                 f"{e.img_per_s:,.0f}" if e.img_per_s is not None else "-"]
        if any_run:
            acc = "-" if e.top1 is None else (f"{e.top1:.2%}" if e.top1 <= 1 else f"{e.top1:.2f}")
            if e.top1 is not None and e.top1_split == "val":
                acc += " (val)"
            cells += [acc, _seconds(e.train_seconds)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
