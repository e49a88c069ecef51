"""A layer-by-layer summary: output shape, parameters, multiply-adds, receptive field and jump of every layer.

One forward pass of one image (eval mode, no gradients; for registered models on the meta device, so nothing is
computed or allocated) runs under two dispatch modes at once: ``MacCounter`` (PyTorch's FLOP counter) and
``ReceptiveFieldMode``. Hooks on every submodule read both at each call, so a layer's row holds the MACs spent
inside that call and the receptive field of its output. A module called twice (LeNet's shared pooling layer)
gets a row per call.

Which calls are rows: those at nesting depth ``depth`` and, above it, the leaves and the containers whose
children the model calls itself. Depth counts calls (a module called from its parent's ``forward`` is one deeper),
so it matches the module names except where a model calls a grandchild directly. The default picks the deepest
of 3, 2, 1 that gives at most 70 rows: LeNet-5 and VGG show every layer, ResNet-18 every convolution, ResNet-50
one row per bottleneck and GoogLeNet one row per Inception branch.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .flops import COUNTED, MacCounter, human
from .rf import ReceptiveFieldMode, format_rf

__all__ = ["Layer", "Summary", "summarize", "trace", "AUTO_DEPTHS", "MAX_AUTO_ROWS"]

AUTO_DEPTHS = (3, 2, 1)  # the default depth is the deepest of these ...
MAX_AUTO_ROWS = 70  # ... that gives at most this many rows


@dataclass
class Layer:
    """One row: a call of one module."""

    name: str
    type: str
    depth: int
    output: Tuple[int, ...]  # without the batch dimension
    params: int
    macs: int
    rf: Optional[Tuple[int, int]]  # receptive field (height, width) in input pixels
    jump: Optional[Tuple[int, int]]  # effective stride (height, width) in input pixels


@dataclass
class _Call:
    name: str
    module: nn.Module
    depth: int
    leaf: bool
    order: int
    macs: int = 0
    output: Tuple[int, ...] = ()
    rf: Optional[Tuple[int, int, int, int]] = None
    children: int = 0  # calls made directly inside this one


@dataclass
class Summary:
    """What :func:`summarize` returns; ``format(kind)`` renders it."""

    model: str
    input: Tuple[int, int, int]
    depth: int
    layers: List[Layer]
    totals: Dict[str, Any]
    calls: List[_Call] = field(default_factory=list, repr=False)

    def as_dict(self) -> Dict[str, Any]:
        layers = []
        for r in self.layers:
            d = asdict(r)
            d["output"] = list(r.output)
            d["rf"] = list(r.rf) if r.rf else None
            d["jump"] = list(r.jump) if r.jump else None
            layers.append(d)
        return {"model": self.model, "input": list(self.input), "depth": self.depth, "layers": layers,
                "totals": dict(self.totals)}

    def format(self, kind: str = "text") -> str:
        if kind == "json":
            return json.dumps(self.as_dict(), indent=2)
        if kind == "csv":
            return self._csv()
        if kind == "markdown":
            return self._markdown()
        if kind == "text":
            return self._text()
        raise ValueError(f"unknown format {kind!r}: text, markdown, csv or json")

    # ------------------------------------------------------------------------------------------ rendering

    def _cells(self) -> List[List[str]]:
        rows = []
        for r in self.layers:
            rows.append([r.name, r.type, "x".join(map(str, r.output)) or "-", f"{r.params:,}",
                         human(r.macs) if r.macs else "-",
                         format_rf(*r.rf) if r.rf else "-", format_rf(*r.jump) if r.jump else "-"])
        return rows

    _HEAD = ["layer", "type", "output", "params", "MACs", "RF", "jump"]
    _RIGHT = {3, 4, 5, 6}

    def _total_lines(self) -> List[Tuple[str, str]]:
        t = self.totals
        c, h, w = self.input
        lines = [
            ("input", f"{c}x{h}x{w}"),
            ("parameters", f"{t['params']:,} ({t['trainable_params']:,} trainable, {t['frozen_params']:,} frozen)"),
        ]
        if t.get("unused_params"):
            lines.append(("not run", f"{t['unused_params']:,} parameters in modules this forward pass does not "
                                    "call (e.g. auxiliary heads, which run only in training)"))
        lines += [
            ("multiply-adds", f"{t['macs']:,} ({human(t['macs'])}MACs)"),
            ("FLOPs", f"{t['flops']:,} ({human(t['flops'])}FLOPs = 2 x MACs)"),
            ("conv+linear layers", f"{t['conv_linear_layers']}"),
            ("activations", f"{human(t['activation_bytes'], 'B')} for one image (outputs of every layer, "
                            f"{t['dtype']}: what training keeps for the backward pass)"),
            ("parameter memory", f"{human(t['param_bytes'], 'B')} ({t['dtype']})"),
        ]
        if t.get("output_rf"):
            lines.append(("receptive field", f"{format_rf(*t['output_rf'])} px at the last spatial layer "
                                             f"(jump {format_rf(*t['output_jump'])})"))
        lines.append(("counted", COUNTED))
        return lines

    def _text(self) -> str:
        cells = self._cells()
        widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(self._HEAD)]

        def fmt(vals: Sequence[str]) -> str:
            return "  ".join(v.rjust(wd) if i in self._RIGHT else v.ljust(wd)
                             for i, (v, wd) in enumerate(zip(vals, widths))).rstrip()

        out = [f"{self.model}  (input {'x'.join(map(str, self.input))}, depth {self.depth})", fmt(self._HEAD),
               "-" * len(fmt(["-" * w for w in widths]))]
        out += [fmt(c) for c in cells]
        out.append("-" * len(fmt(["-" * w for w in widths])))
        kw = max(len(k) for k, _ in self._total_lines())
        out += [f"{k.ljust(kw)}  {v}" for k, v in self._total_lines()]
        return "\n".join(out)

    def _markdown(self) -> str:
        out = [f"**{self.model}**, input {'x'.join(map(str, self.input))}", "",
               "| " + " | ".join(self._HEAD) + " |",
               "|" + "|".join("---:" if i in self._RIGHT else "---" for i in range(len(self._HEAD))) + "|"]
        for c in self._cells():
            out.append("| " + " | ".join([f"`{c[0]}`", *c[1:]]) + " |")
        out += ["", "| total | |", "|---|---|"]
        out += [f"| {k} | {v} |" for k, v in self._total_lines()]
        return "\n".join(out)

    def _csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["name", "type", "depth", "output", "params", "macs", "rf_h", "rf_w", "jump_h", "jump_w"])
        for r in self.layers:
            rf = r.rf or ("", "")
            j = r.jump or ("", "")
            w.writerow([r.name, r.type, r.depth, "x".join(map(str, r.output)), r.params, r.macs, *rf, *j])
        t = self.totals
        w.writerow(["total", "", "", "x".join(map(str, self.input)), t["params"], t["macs"], "", "", "", ""])
        return buf.getvalue().rstrip("\n")


# ----------------------------------------------------------------------------------------------- tracing

def _first_tensor(out: Any) -> Optional[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)):
        for o in out:
            t = _first_tensor(o)
            if t is not None:
                return t
    if isinstance(out, dict):
        for o in out.values():
            t = _first_tensor(o)
            if t is not None:
                return t
    return None


def trace(model: nn.Module, x: torch.Tensor) -> Tuple[List[_Call], Dict[str, Any]]:
    """Run ``model(x)`` once (eval, no grad) and record every submodule call.

    Returns the calls in the order they started and global facts: total MACs, the distinct leaf outputs'
    bytes, the receptive field of the last 4-D output.
    """
    calls: List[_Call] = []
    stack: List[_Call] = []
    leaf_outputs: Dict[int, torch.Tensor] = {}  # id -> tensor, kept alive so ids stay unique
    counter = MacCounter()
    rf = ReceptiveFieldMode()
    last_spatial: List[Optional[Tuple[int, int, int, int]]] = [None]
    handles = []

    for name, mod in model.named_modules():
        if not name:
            continue
        leaf = next(mod.children(), None) is None

        def pre(m, args, name=name, leaf=leaf):
            # Depth in the call tree, not in the module names: a model may call a container's children itself.
            c = _Call(name, m, len(stack) + 1, leaf, len(calls))
            if stack:
                stack[-1].children += 1
            calls.append(c)
            stack.append(c)
            counter.start()

        def post(m, args, out):
            c = stack.pop()
            c.macs = counter.stop()
            t = _first_tensor(out)
            if t is not None:
                c.output = tuple(int(s) for s in t.shape[1:])
                c.rf = rf.get(t)
                if c.leaf:
                    leaf_outputs.setdefault(id(t), t)
                if t.dim() == 4 and t.shape[-1] * t.shape[-2] > 1 and c.rf is not None:
                    last_spatial[0] = c.rf

        handles.append(mod.register_forward_pre_hook(pre))
        handles.append(mod.register_forward_hook(post))

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), counter, rf:
            rf.seed(x)
            out = model(x)
            t = _first_tensor(out)
            if last_spatial[0] is None and t is not None:
                last_spatial[0] = rf.get(t)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    act = sum(t.numel() * t.element_size() for t in leaf_outputs.values())
    return calls, {"macs": counter.macs, "activation_bytes": act, "last_rf": last_spatial[0]}


def _rows(calls: List[_Call], depth: int) -> List[_Call]:
    rows, inside = [], -1  # calls nested in a row (a container's children) follow it until depth drops back
    for c in calls:
        if inside >= 0 and c.depth > inside:
            continue
        inside = -1
        if c.depth == depth or (c.depth < depth and (c.leaf or not c.children)):
            rows.append(c)
            inside = c.depth
    return rows


def _too_small(e: RuntimeError) -> bool:
    msg = str(e)
    return "too small" in msg or "Kernel size can't be greater" in msg or "smaller than kernel" in msg


def summarize(
    model: Union[str, nn.Module],
    input_size: Optional[Union[str, Sequence[int]]] = None,
    depth: Optional[int] = None,
    **create_kwargs: Any,
) -> Summary:
    """Summarise a model layer by layer.

    Args:
        model: a registry name, a run directory or ``.safetensors`` file (built on the meta device from its
            metadata), or any ``nn.Module`` (run where its parameters are; build it on the meta device to
            count without computing).
        input_size: ``(C, H, W)`` or a string ``"1x28x28"``; default: the run's image size or the model's
            registered input. For a registry name, C sets ``in_chans``.
        depth: rows for modules down to this nesting depth (leaves above it included); default: the
            deepest of 3, 2, 1 with at most 70 rows.
        **create_kwargs: ``create_model`` arguments (``small_input=True``...), for names and runs.

    Raises:
        ValueError: the input is smaller than the model takes (the model's own message), a bad depth.
    """
    from .load import build_on_meta, default_input
    from .shapes import parse_input

    if depth is not None and depth < 1:
        raise ValueError(f"depth must be at least 1, got {depth}")
    if isinstance(model, nn.Module):
        net, meta = model, {}
        label = getattr(model, "model_name", "") or type(model).__name__
        if isinstance(input_size, str):
            input_size = parse_input(input_size, getattr(model, "in_chans", None))
        if input_size is None:
            input_size = default_input(net, meta)
    else:
        from ..builder import model_info
        from .load import read_meta

        stored = read_meta(model).get("model_args") or {}
        kwargs = dict(create_kwargs)
        if "in_chans" not in stored and "in_chans" not in kwargs:
            # A registry name: the channels of --input, else of the registered input (1 for LeNet-5).
            kwargs["in_chans"] = model_info(read_meta(model)["model"]).input_size[0]
            if isinstance(input_size, str):
                input_size = parse_input(input_size, kwargs["in_chans"])
            if input_size is not None:
                kwargs["in_chans"] = int(input_size[0])
        elif isinstance(input_size, str):
            input_size = parse_input(input_size, int(kwargs.get("in_chans", stored.get("in_chans", 3))))
        net, meta = build_on_meta(model, **kwargs)
        label = str(model)
        if input_size is None:
            input_size = default_input(net, meta)
    c, h, w = (int(v) for v in input_size)
    p = next(net.parameters(), None)
    dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
    x = torch.zeros(1, c, h, w, device=p.device if p is not None else "cpu", dtype=dtype)
    try:
        calls, facts = trace(net, x)
    except RuntimeError as e:
        if _too_small(e):
            raise ValueError(f"{label}: input {c}x{h}x{w} is too small: {str(e).splitlines()[0]}") from None
        raise

    if depth is None:
        depth = next((d for d in AUTO_DEPTHS if len(_rows(calls, d)) <= MAX_AUTO_ROWS), 1)
    seen: set = set()
    layers = []
    for call in _rows(calls, depth):
        n = 0
        for q in call.module.parameters():
            if id(q) not in seen:
                seen.add(id(q))
                n += q.numel()
        rf = call.rf
        layers.append(Layer(call.name, type(call.module).__name__, call.depth, call.output, n, call.macs,
                            (rf[0], rf[1]) if rf else None, (rf[2], rf[3]) if rf else None))
    params = list({id(q): q for q in net.parameters()}.values())
    run_params = {id(q) for call in calls for q in call.module.parameters(recurse=False)}
    if not calls:  # a model without submodules: its own parameters and operations
        run_params = {id(q) for q in params}
    other = facts["macs"] - sum(r.macs for r in layers)
    other_params = sum(q.numel() for q in params if id(q) in run_params and id(q) not in seen)
    if other > 0 or other_params:  # a parent's own parameters and functional ops (an embedding, a matmul)
        layers.append(Layer("(outside any layer)", "functional", 0, (), other_params, other, None, None))

    conv_linear = {id(call.module) for call in calls
                   if isinstance(call.module, (nn.modules.conv._ConvNd, nn.Linear))}
    last = facts["last_rf"]
    totals = {
        "params": sum(q.numel() for q in params),
        "trainable_params": sum(q.numel() for q in params if q.requires_grad),
        "frozen_params": sum(q.numel() for q in params if not q.requires_grad),
        "unused_params": sum(q.numel() for q in params if id(q) not in run_params),
        "macs": facts["macs"],
        "flops": 2 * facts["macs"],
        "conv_linear_layers": len(conv_linear),
        "activation_bytes": facts["activation_bytes"],
        "param_bytes": sum(q.numel() * q.element_size() for q in params),
        "buffer_bytes": sum(b.numel() * b.element_size() for b in net.buffers()),
        "dtype": str(dtype).replace("torch.", ""),
        "output_rf": [last[0], last[1]] if last else None,
        "output_jump": [last[2], last[3]] if last else None,
        "counted": COUNTED,
    }
    return Summary(label, (c, h, w), depth, layers, totals, calls)
