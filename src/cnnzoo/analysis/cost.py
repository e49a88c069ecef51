"""What a layer costs: a standard convolution against a 1x1 bottleneck and a depthwise-separable one, and a
flatten + fully connected head against global average pooling.

Multiplies are counted as multiply-adds over the output: a ``K x K`` convolution from ``C_in`` to ``C_out``
channels on an ``H x W`` output does ``H * W * C_out * K * K * C_in`` of them. The three designs, for "same"
padding:

* standard: one ``K x K`` convolution, ``C_in -> C_out``;
* bottleneck (GoogLeNet's 1x1 "reduce"): a 1x1 convolution ``C_in -> B`` first, then ``K x K``, ``B -> C_out``;
* depthwise-separable (Xception, MobileNet): a ``K x K`` convolution per input channel, then a 1x1 ``C_in -> C_out``.

The GoogLeNet example, a 5x5 convolution from a 192x28x28 input (C x H x W) to 32 channels: 120,422,400
multiplies; through a 16-channel bottleneck 12,443,648 -- ten times fewer. The command line's shapes are parsed
by :func:`cnnzoo.analysis.shapes.parse_input`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from ..errors import UserError

__all__ = ["Step", "Design", "conv_costs", "head_costs"]


@dataclass
class Step:
    """One convolution of a design."""

    what: str
    formula: str
    macs: int
    params: int  # weights, no biases


@dataclass
class Design:
    """A way to compute the layer: its convolutions and their sums."""

    name: str
    steps: List[Step]

    @property
    def macs(self) -> int:
        return sum(s.macs for s in self.steps)

    @property
    def params(self) -> int:
        return sum(s.params for s in self.steps)

    def as_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "macs": self.macs, "params": self.params,
                "steps": [vars(s) for s in self.steps]}


def _conv(what: str, oh: int, ow: int, c_out: int, k: int, c_in: int, groups_per_channel: bool = False) -> Step:
    if groups_per_channel:  # depthwise: one k x k filter per channel
        return Step(what, f"{oh}*{ow}*{c_in} * {k}*{k}", oh * ow * c_in * k * k, k * k * c_in)
    return Step(what, f"{oh}*{ow}*{c_out} * {k}*{k}*{c_in}", oh * ow * c_out * k * k * c_in, k * k * c_in * c_out)


def conv_costs(h: int, w: int, c_in: int, c_out: int, kernel: int, bottleneck: Optional[int] = None,
               depthwise: bool = False, stride: int = 1) -> List[Design]:
    """The designs to compare, standard first.

    Args:
        h, w, c_in: the input feature map.
        c_out: output channels.
        kernel: the spatial kernel ``K``.
        bottleneck: width ``B`` of a 1x1 reduction before the ``K x K`` convolution (None: not compared).
        depthwise: compare a depthwise-separable convolution too.
        stride: of the ``K x K`` convolution; "same" padding, so the output is ``ceil(H / S)``.
    """
    if min(h, w, c_in, c_out, kernel, stride) < 1:
        raise UserError("sizes, channels, kernel and stride must be positive")
    if bottleneck is not None and bottleneck < 1:
        raise UserError(f"--bottleneck must be at least 1, got {bottleneck}")
    oh, ow = -(-h // stride), -(-w // stride)
    k = kernel
    designs = [Design(f"standard {k}x{k}", [_conv(f"{k}x{k} conv {c_in}->{c_out}", oh, ow, c_out, k, c_in)])]
    if bottleneck is not None:
        designs.append(Design(f"1x1 bottleneck ({bottleneck}) + {k}x{k}", [
            _conv(f"1x1 conv {c_in}->{bottleneck}", h, w, bottleneck, 1, c_in),
            _conv(f"{k}x{k} conv {bottleneck}->{c_out}", oh, ow, c_out, k, bottleneck),
        ]))
    if depthwise:
        designs.append(Design(f"depthwise-separable {k}x{k}", [
            _conv(f"{k}x{k} depthwise, {c_in} channels", oh, ow, c_in, k, c_in, groups_per_channel=True),
            _conv(f"1x1 pointwise {c_in}->{c_out}", oh, ow, c_out, 1, c_in),
        ]))
    return designs


def head_costs(h: int, w: int, c: int, classes: int) -> List[Design]:
    """Flatten + fully connected against global average pooling + fully connected (with biases here)."""
    if min(h, w, c, classes) < 1:
        raise UserError("the feature map and --classes must be positive")
    flat = h * w * c
    return [
        Design(f"flatten + FC ({c}*{h}*{w} = {flat:,} inputs)",
               [Step(f"FC {flat:,}->{classes}", f"{c}*{h}*{w}*{classes} + {classes}", flat * classes,
                     flat * classes + classes)]),
        Design(f"global average pool + FC ({c} inputs)",
               [Step(f"FC {c}->{classes}", f"{c}*{classes} + {classes}", c * classes, c * classes + classes)]),
    ]
