"""``cnnzoo conv-arith``: a convolution's output size with the arithmetic shown, and weight sharing's savings."""

from __future__ import annotations

import argparse
import json


def _size(text: str):
    parts = str(text).lower().replace("×", "x").split("x")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or HxW, got {text!r}") from None
    if len(nums) == 1:
        return nums[0]
    if len(nums) == 2:
        return tuple(nums)
    raise argparse.ArgumentTypeError(f"expected N or HxW, got {text!r}")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "conv-arith", help="output size of a convolution, with the arithmetic",
        description="Output size (W - K + 2P) / S + 1 with the arithmetic shown; when the stride does not divide "
        "evenly, the paddings and input sizes that would. With --in-channels and --filters, the parameters with "
        "weight sharing and without it (a locally connected layer). See docs/conv-arith.md.")
    p.add_argument("--input", "-i", type=_size, required=True, metavar="N|HxW",
                   help="input size: N (square) or HxW (height x width; each axis worked out on its own)")
    p.add_argument("--kernel", "-k", type=_size, required=True, metavar="K|KHxKW", help="kernel size")
    p.add_argument("--stride", "-s", type=_size, default=1, metavar="S", help="stride (default 1)")
    p.add_argument("--padding", "-p", type=_size, default=0, metavar="P", help="zero padding per side (default 0)")
    p.add_argument("--dilation", type=_size, default=1, metavar="D", help="dilation (default 1)")
    p.add_argument("--in-channels", type=int, metavar="C", help="input channels (with --filters: parameter counts)")
    p.add_argument("--filters", type=int, metavar="N", help="number of filters (output channels)")
    p.add_argument("--format", "-f", choices=["text", "json"], default="text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..analysis.conv_arith import conv_arith

    r = conv_arith(args.input, args.kernel, args.stride, args.padding, args.dilation, args.in_channels, args.filters)
    print(json.dumps(r.as_dict(), indent=2) if args.format == "json" else r.text())
    return 0
