"""Convolution arithmetic: output size, whether the windows tile the input, and the cost of weight sharing.

Output size along one axis (Dumoulin & Visin, "A guide to convolution arithmetic for deep learning", 2016)::

    O = (W - K_eff + 2P) / S + 1,    K_eff = D * (K - 1) + 1

When ``(W - K_eff + 2P)`` is not a multiple of ``S`` PyTorch floors the division: the last pixels of the padded
input are never covered by a window. With the input channels and the number of filters, the layer's parameters
follow: ``(K*K*C_in + 1) * filters`` with weight sharing (one filter bank slides over the image), and
``O_h * O_w * filters * (K*K*C_in + 1)`` if every output position had its own weights (a locally connected
layer) -- AlexNet's first layer: 34,944 against 105,705,600.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Union

from ..errors import UserError

__all__ = ["AxisArith", "ConvArith", "conv_arith", "out_size"]


def out_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """``floor((W - K_eff + 2P) / S) + 1``, as ``nn.Conv2d`` computes it."""
    return (size + 2 * padding - (dilation * (kernel - 1) + 1)) // stride + 1


@dataclass
class AxisArith:
    """The arithmetic along one axis."""

    size: int
    kernel: int
    stride: int
    padding: int
    dilation: int
    eff_kernel: int
    span: int  # W - K_eff + 2P
    out: int
    exact: bool
    uncovered: int  # input pixels (of the padded input) no window reaches
    fit_paddings: List[int] = field(default_factory=list)
    fit_inputs: List[int] = field(default_factory=list)

    def formula(self) -> str:
        w, k, p, s = self.size, self.eff_kernel, self.padding, self.stride
        if self.exact:
            return f"({w} - {k} + 2*{p}) / {s} + 1 = {self.span} / {s} + 1 = {self.out}"
        return (f"({w} - {k} + 2*{p}) / {s} + 1 = {self.span} / {s} + 1 = {self.span / s + 1:g}"
                f" -> floor: {self.out}")


@dataclass
class ConvArith:
    """What :func:`conv_arith` returns."""

    axes: Tuple[AxisArith, AxisArith]  # height, width
    in_channels: Optional[int] = None
    filters: Optional[int] = None

    @property
    def out_hw(self) -> Tuple[int, int]:
        return self.axes[0].out, self.axes[1].out

    @property
    def exact(self) -> bool:
        return all(a.exact for a in self.axes)

    @property
    def weights_per_filter(self) -> Optional[int]:
        if self.in_channels is None:
            return None
        return self.axes[0].kernel * self.axes[1].kernel * self.in_channels + 1

    @property
    def params_shared(self) -> Optional[int]:
        """``(K*K*C_in + 1) * filters``: one filter bank for every position."""
        if self.in_channels is None or self.filters is None:
            return None
        return self.weights_per_filter * self.filters

    @property
    def params_unshared(self) -> Optional[int]:
        """``O_h * O_w * filters * (K*K*C_in + 1)``: every output position with its own weights."""
        if self.params_shared is None:
            return None
        oh, ow = self.out_hw
        return oh * ow * self.params_shared

    @property
    def macs(self) -> Optional[int]:
        if self.params_shared is None:
            return None
        oh, ow = self.out_hw
        return oh * ow * self.filters * (self.weights_per_filter - 1)

    def as_dict(self) -> Dict[str, Any]:
        d: Dict[str, Any] = {"output": list(self.out_hw), "exact": self.exact,
                             "axes": [{k: v for k, v in vars(a).items()} for a in self.axes]}
        if self.params_shared is not None:
            d.update(filters=self.filters, in_channels=self.in_channels, params_shared=self.params_shared,
                     params_unshared=self.params_unshared, macs=self.macs)
        return d

    def lines(self) -> List[str]:
        h, w = self.axes
        square = (h.size, h.kernel, h.stride, h.padding, h.dilation) == (w.size, w.kernel, w.stride, w.padding,
                                                                          w.dilation)
        out: List[str] = []
        # one formula when both axes agree; else each axis with its own symbol: H for the height, W for the width
        for label, x, a in [("", "W", h)] if square else [(" (height)", "H", h), (" (width)", "W", w)]:
            out.append(f"output size{label} = ({x} - K + 2P) / S + 1")
            if a.dilation > 1:
                out.append(f"  dilated kernel K = D*(K-1) + 1 = {a.dilation}*({a.kernel}-1) + 1 = {a.eff_kernel}")
            out.append(f"  = {a.formula()}")
            if not a.exact:
                out.append(f"  does not divide evenly: {a.span} is not a multiple of the stride {a.stride}; PyTorch "
                           f"floors, so the last {a.uncovered} px of the padded input "
                           f"{'is' if a.uncovered == 1 else 'are'} never covered")
                if a.fit_paddings:
                    out.append("  padding that fits: " + ", ".join(
                        f"P={p} -> {out_size(a.size, a.kernel, a.stride, p, a.dilation)}" for p in a.fit_paddings))
                else:
                    parity = "odd" if (a.size - a.eff_kernel) % 2 else "even"
                    out.append(f"  no padding fits: {x} - K is {parity} and 2P is even, so the stride {a.stride} "
                               "never divides it")
                out.append("  input size that fits: " + ", ".join(
                    f"{x}={s} -> {out_size(s, a.kernel, a.stride, a.padding, a.dilation)}" for s in a.fit_inputs))
        oh, ow = self.out_hw
        if self.filters is not None:
            out.append(f"output volume: {self.filters}x{oh}x{ow} = {oh * ow * self.filters:,} values")
        else:
            out.append(f"output: {oh}x{ow}")
        if self.params_shared is not None:
            k = f"{h.kernel}*{w.kernel}*{self.in_channels}"
            out.append(f"parameters with weight sharing:    ({k} + 1) * {self.filters} = {self.params_shared:,}")
            out.append(f"parameters without weight sharing: {oh}*{ow}*{self.filters} * ({k} + 1) = "
                       f"{self.params_unshared:,}  ({self.params_unshared / self.params_shared:,.0f}x more)")
            out.append(f"multiply-adds: {oh}*{ow}*{self.filters} * {k} = {self.macs:,} (the same either way)")
        return out

    def text(self) -> str:
        return "\n".join(self.lines())


def _axis(size: int, kernel: int, stride: int, padding: int, dilation: int) -> AxisArith:
    eff = dilation * (kernel - 1) + 1
    span = size - eff + 2 * padding
    if span < 0:
        raise UserError(f"the kernel ({eff} px{' dilated' if dilation > 1 else ''}) is larger than the padded input "
                        f"({size} + 2*{padding} = {size + 2 * padding} px): no output; pad by at least "
                        f"{-(-(eff - size) // 2)} or use a larger input")
    rem = span % stride
    a = AxisArith(size, kernel, stride, padding, dilation, eff, span, span // stride + 1, rem == 0, rem)
    if rem:
        a.fit_paddings = [p for p in range(0, eff + stride) if (size - eff + 2 * p) % stride == 0
                          and size - eff + 2 * p >= 0][:2]
        below = size - rem
        a.fit_inputs = [s for s in (below, below + stride) if s - eff + 2 * padding >= 0]
    return a


def _pair(v: Union[int, Tuple[int, int]], what: str, minimum: int) -> Tuple[int, int]:
    h, w = (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))
    if min(h, w) < minimum:
        raise UserError(f"{what} must be at least {minimum}, got {v}")
    return h, w


def conv_arith(
    input: Union[int, Tuple[int, int]],
    kernel: Union[int, Tuple[int, int]],
    stride: Union[int, Tuple[int, int]] = 1,
    padding: Union[int, Tuple[int, int]] = 0,
    dilation: Union[int, Tuple[int, int]] = 1,
    in_channels: Optional[int] = None,
    filters: Optional[int] = None,
) -> ConvArith:
    """The arithmetic of one convolution (or pooling) layer.

    Args:
        input: input size ``W`` (square) or ``(H, W)``.
        kernel, stride, padding, dilation: as ``nn.Conv2d`` takes them (an int or ``(h, w)``).
        in_channels, filters: with both, the parameter counts with and without weight sharing.

    Raises:
        UserError: a non-positive size, a negative padding, or a kernel larger than the padded input.
    """
    ins = _pair(input, "the input size", 1)
    ks = _pair(kernel, "the kernel size", 1)
    ss = _pair(stride, "the stride", 1)
    ps = _pair(padding, "the padding", 0)
    ds = _pair(dilation, "the dilation", 1)
    if (in_channels is None) != (filters is None):
        raise UserError("give both --in-channels and --filters for the parameter counts")
    if in_channels is not None and (in_channels < 1 or filters < 1):
        raise UserError("--in-channels and --filters must be at least 1")
    axes = tuple(_axis(ins[i], ks[i], ss[i], ps[i], ds[i]) for i in range(2))
    return ConvArith(axes, in_channels, filters)  # type: ignore[arg-type]
