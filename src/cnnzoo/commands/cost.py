"""``cnnzoo cost``: multiplies of a standard, a bottlenecked and a depthwise-separable convolution; head sizes."""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cost", help="cost of a convolution: standard vs 1x1 bottleneck vs depthwise-separable",
        description="Multiplies and weights of a KxK convolution ('same' padding) against the same layer behind a "
        "1x1 bottleneck (GoogLeNet) and as a depthwise-separable convolution (MobileNet), with the ratios; and a "
        "classifier head on a feature map: flatten + FC against global average pooling + FC. Shapes are "
        "C x H x W, as in every cnnzoo command. See docs/cost.md.")
    p.add_argument("--input", "-i", metavar="CxHxW", help="input feature map, channels x height x width (192x28x28)")
    p.add_argument("--output", "-o", type=int, metavar="C", help="output channels")
    p.add_argument("--kernel", "-k", type=int, metavar="K", help="kernel size K (KxK)")
    p.add_argument("--stride", type=int, default=1, metavar="S", help="stride of the KxK convolution (default 1)")
    p.add_argument("--bottleneck", "-b", type=int, metavar="B", help="compare a 1x1 reduction to B channels first")
    p.add_argument("--depthwise", action="store_true", help="compare a depthwise-separable convolution")
    p.add_argument("--head", metavar="CxHxW", help="a classifier's input feature map, channels x height x width "
                   "(VGG's 512x7x7)")
    p.add_argument("--classes", type=int, default=1000, metavar="N", help="classes of the head (default 1000)")
    p.add_argument("--format", "-f", choices=["text", "json"], default="text")
    p.set_defaults(func=run)


def _table(title: str, designs, what: str) -> list:
    base = designs[0]
    out = [title]
    for d in designs:
        out.append(f"  {d.name}")
        for s in d.steps:
            out.append(f"    {s.what:<34} {s.formula:<28} = {s.macs:>15,} {what}   {s.params:>12,} weights")
        ratio = "" if d is base else f"   ({base.macs / d.macs:.2f}x fewer {what} than {base.name.split(' (')[0]})"
        out.append(f"    {'total':<34} {'':<28} = {d.macs:>15,} {what}   {d.params:>12,} weights{ratio}")
    return out


def run(args: argparse.Namespace) -> int:
    from ..analysis.cost import conv_costs, head_costs
    from ..analysis.shapes import parse_input
    from ..errors import UserError

    conv_args = (args.output, args.kernel)
    if args.input is None and args.head is None:
        raise UserError("give a convolution (--input CxHxW --output C --kernel K) and/or a head (--head CxHxW)")
    out, result = [], {}
    if args.input is not None:
        if None in conv_args:
            raise UserError("--input needs --output (channels) and --kernel")
        c, h, w = parse_input(args.input, need_channels=True)
        designs = conv_costs(h, w, c, args.output, args.kernel, args.bottleneck, args.depthwise, args.stride)
        oh, ow = -(-h // args.stride), -(-w // args.stride)
        out += _table(f"{args.kernel}x{args.kernel} convolution, {c}x{h}x{w} -> {args.output}x{oh}x{ow} "
                      f"('same' padding, stride {args.stride}; multiplies = output positions x weights per output)",
                      designs, "multiplies")
        result["conv"] = [d.as_dict() for d in designs]
    elif any(v is not None for v in conv_args) or args.bottleneck is not None or args.depthwise:
        raise UserError("--output, --kernel, --bottleneck and --depthwise need --input CxHxW")
    if args.head is not None:
        if args.classes < 1:
            raise UserError(f"--classes must be at least 1, got {args.classes}")
        c, h, w = parse_input(args.head, what="--head", need_channels=True)
        heads = head_costs(h, w, c, args.classes)
        if out:
            out.append("")
        out.append(f"classifier head on a {c}x{h}x{w} feature map, {args.classes} classes (weights + biases)")
        for d in heads:
            st = d.steps[0]
            out.append(f"  {d.name:<44} {st.formula:>22} = {d.params:>12,} parameters   ({d.macs:,} multiplies)")
        flat, gap = heads
        out.append(f"  global average pooling saves {flat.params - gap.params:,} parameters: "
                   f"{flat.params / gap.params:.1f}x fewer")
        result["head"] = [d.as_dict() for d in heads]
    print(json.dumps(result, indent=2) if args.format == "json" else "\n".join(out))
    return 0
