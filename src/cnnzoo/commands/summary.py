"""``cnnzoo summary MODEL``: every layer's output shape, parameters, multiply-adds, receptive field and jump."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "summary", help="layer-by-layer table: shapes, parameters, MACs, receptive field",
        description="One row per layer -- name, type, output shape, parameters, multiply-adds, receptive field and "
        "effective stride (jump) -- then the totals: parameters (trainable, frozen), MACs and FLOPs, activation "
        "and parameter memory. Counted on the meta device: instant, even for VGG at 224x224. See docs/summary.md.")
    p.add_argument("model", metavar="MODEL|RUN_DIR", help="a registry name, a run directory or a .safetensors file")
    p.add_argument("--input", "-i", metavar="CxHxW",
                   help="input size: CxHxW, HxW or N (default: the run's image size, else the model's registered "
                        "input); C sets in_chans for a registry name")
    p.add_argument("--depth", "-d", type=int, metavar="N",
                   help="rows for modules down to nesting depth N (default: the deepest of 3, 2, 1 with at most "
                        "70 rows)")
    p.add_argument("--format", "-f", choices=["text", "markdown", "csv", "json"], default="text")
    p.add_argument("--small", action="store_true",
                   help="build the model the way it takes 28-32 px images (e.g. small_input=True for ResNets, "
                        "see `cnnzoo list`)")
    p.add_argument("--kw", action="append", default=[], metavar="KEY=VALUE",
                   help="a create_model argument, read as YAML (e.g. --kw small_input=true --kw drop_rate=0.2)")
    p.add_argument("--num-classes", type=int, metavar="N", help="classifier outputs (default 1000, or the run's)")
    p.set_defaults(func=run)


def model_kwargs(args: argparse.Namespace) -> dict:
    """``--kw``, ``--num-classes`` and ``--small`` as create_model arguments (shared with ``compare``)."""
    from ..analysis.load import read_meta
    from ..analysis.shapes import parse_kwargs
    from ..builder import model_info

    kwargs = parse_kwargs(args.kw)
    if args.num_classes is not None:
        if args.num_classes < 0:
            from ..errors import UserError

            raise UserError(f"--num-classes must be >= 0, got {args.num_classes}")
        kwargs["num_classes"] = args.num_classes
    if getattr(args, "small", False):
        for spec in args.model if isinstance(args.model, list) else [args.model]:
            for k, v in model_info(read_meta(spec)["model"]).small_input.option_kwargs().items():
                kwargs.setdefault(k, v)
    return kwargs


def small_hint(spec: str, small: bool) -> str:
    """What to add to the command line when a model rejects a small input."""
    from ..analysis.load import read_meta
    from ..builder import model_info

    try:
        si = model_info(read_meta(spec)["model"]).small_input
    except Exception:  # noqa: BLE001 - a hint is optional
        return ""
    if si.has_option and small:
        return ""
    hint = si.command_line_hint()
    return f" On the command line: {hint}." if hint else ""


def run(args: argparse.Namespace) -> int:
    from ..analysis.load import read_meta
    from ..analysis.summary import summarize
    from ..errors import UserError
    from ..builder import model_info

    if args.depth is not None and args.depth < 1:
        raise UserError(f"--depth must be at least 1, got {args.depth}")
    kwargs = model_kwargs(args)
    size = args.input
    if args.small and size is None:
        side = model_info(read_meta(args.model)["model"]).small_input.input_for_small_images()
        if side is not None:
            size = f"{side}x{side}"
    try:
        s = summarize(args.model, size, args.depth, **kwargs)
    except ValueError as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(msg + (small_hint(args.model, args.small) if "at least" in msg or "small" in msg else ""))
    print(s.format(args.format))
    return 0
