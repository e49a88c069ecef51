"""Receptive field and effective stride ("jump") of every tensor in a forward pass.

The classic recurrence (Dumoulin & Visin 2016; Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional
Neural Networks", Distill 2019), applied per axis to every operation as it runs:

* a convolution or pooling window of size ``k`` (dilation ``d``), stride ``s``::

      rf_out   = rf_in + (d * (k - 1)) * jump_in
      jump_out = jump_in * s

* a strided slice ``x[..., ::s]`` (a parameter-free shortcut that subsamples) multiplies the jump by ``s``;
* an operation that mixes every position (flattening a feature map, a global mean, a fully connected layer
  on the flattened map, adaptive pooling to 1x1) covers the whole map: ``rf_out = rf_in + (H - 1) * jump_in``;
* any other operation (activation, normalisation, padding, addition, concatenation) takes the **maximum over
  its inputs**, so a residual sum or an Inception concatenation has the receptive field of its widest branch.
  Inputs that are broadcast as a 1x1 map over a larger one (the gate of Squeeze-and-Excitation) are left out:
  they carry global context, and counting them would make every later layer "the whole image".

The rule runs at the ATen level (a ``TorchDispatchMode``), so it sees every convolution and pooling whether it
comes from a module or a functional call, and needs no per-architecture code. Values are in input pixels; a
receptive field larger than the input counts the padding too (the theoretical receptive field).
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Tuple

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.weak import WeakIdKeyDictionary

__all__ = ["RF", "ReceptiveFieldMode", "format_rf"]

aten = torch.ops.aten

# (rf_h, rf_w, jump_h, jump_w), in input pixels.
RF = Tuple[int, int, int, int]
ONE: RF = (1, 1, 1, 1)

_CONV = {"convolution", "_convolution", "conv2d", "cudnn_convolution", "mkldnn_convolution",
         "_slow_conv2d_forward", "thnn_conv2d", "_nnpack_spatial_convolution", "convolution_overrideable"}
_POOL = {"max_pool2d", "max_pool2d_with_indices", "avg_pool2d", "mkldnn_max_pool2d", "quantized_max_pool2d",
         "max_pool1d", "avg_pool1d", "max_pool1d_with_indices", "lp_pool2d"}
_ADAPTIVE = {"_adaptive_avg_pool2d", "adaptive_avg_pool2d", "adaptive_max_pool2d", "mkldnn_adaptive_avg_pool2d"}


def _pair(v: Any, default: int) -> Tuple[int, int]:
    if v is None:
        return default, default
    if isinstance(v, (list, tuple)):
        if len(v) == 0:
            return default, default
        v = [int(x) for x in v]
        return (v[-2], v[-1]) if len(v) >= 2 else (v[0], v[0])
    return int(v), int(v)


def _bind(func: Any, args: tuple, kwargs: Dict[str, Any]) -> Dict[str, Any]:
    """The arguments of an ATen call by their schema names."""
    names = [a.name for a in func._schema.arguments]
    out = dict(zip(names, args))
    out.update(kwargs)
    return out


def _grow(s: RF, kh: int, kw: int, sh: int, sw: int) -> RF:
    rh, rw, jh, jw = s
    return rh + (kh - 1) * jh, rw + (kw - 1) * jw, jh * sh, jw * sw


def _global(s: RF, shape: torch.Size) -> RF:
    """The state after every position of a ``... x H x W`` map has been mixed."""
    h, w = int(shape[-2]), int(shape[-1])
    return _grow(s, h, w, 1, 1)


def _adaptive_window(size: int, out: int) -> int:
    """The widest window of adaptive pooling: output i reads [floor(i*I/O), ceil((i+1)*I/O))."""
    return max(-(-(i + 1) * size // out) - (i * size // out) for i in range(max(out, 1)))


def _max(states: Iterable[RF]) -> RF:
    states = list(states)
    return tuple(max(s[i] for s in states) for i in range(4))  # type: ignore[return-value]


def format_rf(h: int, w: int) -> str:
    """``7`` for a square value, ``7x1`` (height x width) otherwise."""
    return str(h) if h == w else f"{h}x{w}"


class ReceptiveFieldMode(TorchDispatchMode):
    """Track ``(rf_h, rf_w, jump_h, jump_w)`` for every tensor derived from the tensors passed to ``seed``.

    Example::

        mode = ReceptiveFieldMode()
        with mode:
            mode.seed(x)
            y = model(x)
        mode.get(y)   # -> (rf_h, rf_w, jump_h, jump_w)
    """

    def __init__(self) -> None:
        super().__init__()
        self.state: WeakIdKeyDictionary = WeakIdKeyDictionary()

    def seed(self, x: torch.Tensor, state: RF = ONE) -> None:
        self.state[x] = state

    def get(self, t: Any) -> Optional[RF]:
        return self.state.get(t) if isinstance(t, torch.Tensor) else None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = func.overloadpacket.__name__ if hasattr(func, "overloadpacket") else getattr(func, "__name__", "")
        tracked = [(t, self.state[t]) for t in tree_leaves((args, kwargs))
                   if isinstance(t, torch.Tensor) and t in self.state]
        if not tracked:
            return out
        outs: List[torch.Tensor] = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
        new = self._rule(name, func, args, kwargs, tracked, outs)
        if new is not None:
            for t in outs:
                self.state[t] = new
        else:
            for t in outs:
                self.state[t] = self._generic(tracked, t)
        return out

    def _rule(self, name: str, func, args, kwargs, tracked, outs) -> Optional[RF]:
        if name in _CONV:
            a = _bind(func, args, kwargs)
            x, w = a.get("input", args[0]), a.get("weight", args[1])
            s = self.state.get(x)
            if s is None or w.dim() < 3 or a.get("transposed", False):
                return None
            kh, kw = (int(w.shape[-2]), int(w.shape[-1])) if w.dim() >= 4 else (1, int(w.shape[-1]))
            dh, dw = _pair(a.get("dilation"), 1)
            sh, sw = _pair(a.get("stride"), 1)
            return _grow(s, dh * (kh - 1) + 1, dw * (kw - 1) + 1, sh, sw)
        if name in _POOL:
            a = _bind(func, args, kwargs)
            s = self.state.get(args[0])
            if s is None:
                return None
            kh, kw = _pair(a.get("kernel_size"), 1)
            sh, sw = _pair(a.get("stride"), 0)
            if sh == 0:  # an empty stride means stride = kernel size
                sh, sw = kh, kw
            dh, dw = _pair(a.get("dilation"), 1)
            return _grow(s, dh * (kh - 1) + 1, dw * (kw - 1) + 1, sh, sw)
        if name in _ADAPTIVE:
            x = args[0]
            s = self.state.get(x)
            if s is None or x.dim() < 3 or not outs:
                return None
            ih, iw = int(x.shape[-2]), int(x.shape[-1])
            oh, ow = int(outs[0].shape[-2]), int(outs[0].shape[-1])
            return _grow(s, _adaptive_window(ih, oh), _adaptive_window(iw, ow), max(ih // oh, 1), max(iw // ow, 1))
        if name == "slice":
            a = _bind(func, args, kwargs)
            x = a.get("self", args[0])
            s = self.state.get(x)
            step, dim = int(a.get("step", 1) or 1), int(a.get("dim", 0))
            if s is None or x.dim() != 4 or step == 1:
                return None
            dim %= 4
            if dim == 2:
                return s[0], s[1], s[2] * step, s[3]
            if dim == 3:
                return s[0], s[1], s[2], s[3] * step
            return None
        return None

    @staticmethod
    def _generic(tracked: List[Tuple[torch.Tensor, RF]], out: torch.Tensor) -> RF:
        spatial = [(t, s) for t, s in tracked if t.dim() == 4]
        if out.dim() >= 3:
            same = [s for t, s in spatial if t.shape[-2:] == out.shape[-2:]]
            if same:  # element-wise, concatenation, a reshape that keeps H x W: the widest input
                return _max(same)
            if out.dim() == 4 and (out.shape[-2:] != (1, 1) or not spatial):  # padding, resizing
                return _max(s for _, s in tracked)
        # Flattened, reduced over H x W or mixed across positions: every output sees the whole map.
        return _max([_global(s, t.shape) for t, s in spatial] + [s for t, s in tracked if t.dim() != 4])
