"""``cnnzoo compare MODEL... --runs RUN_DIR...``: parameters, MACs, depth, speed and accuracy side by side."""

from __future__ import annotations

import argparse

from ..choices import PROGRESS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare", help="compare models and runs: params, MACs, depth, images/s, accuracy",
        description="One table: parameters, multiply-adds, depth (convolution + linear layers run), measured "
        "images/s (eval forward), and for trained runs the top-1 accuracy and training time. --plot draws "
        "accuracy (or images/s) against MACs, bubble area = parameters. See docs/compare.md.")
    p.add_argument("models", nargs="*", metavar="MODEL", help="registry names (run directories work here too)")
    p.add_argument("--runs", nargs="+", default=[], metavar="RUN_DIR", help="trained runs")
    p.add_argument("--input", "-i", metavar="CxHxW",
                   help="input size for every entry (default: each run's image size, each model's registered input)")
    p.add_argument("--format", "-f", choices=["markdown", "csv"], default="markdown")
    p.add_argument("--plot", metavar="FILE.png", help="write the bubble chart here")
    p.add_argument("--no-timing", action="store_true", help="skip the images/s measurement")
    p.add_argument("--batch-size", type=int, default=8, help="timing batch (default 8)")
    p.add_argument("--repeats", type=int, default=3, help="timed forward passes, best kept (default 3)")
    p.add_argument("--device", default="cpu", help="timing device: cpu, cuda, cuda:N or auto (default cpu)")
    p.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads for the timing (torch.set_num_threads; default: PyTorch's choice)")
    p.add_argument("--small", action="store_true",
                   help="build the registry models that have a small-input option with it (needs --input)")
    p.add_argument("--kw", action="append", default=[], metavar="KEY=VALUE",
                   help="create_model argument for the registry names, read as YAML")
    p.add_argument("--num-classes", type=int, metavar="N", help="classifier outputs of the registry names")
    p.add_argument("--progress", choices=PROGRESS, default="auto",
                   help="a bar over the entries on stderr while they are timed: auto (on a terminal; default), bar "
                   "(always), none")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..analysis.compare import compare, format_table
    from ..analysis.load import is_run
    from ..analysis.shapes import parse_kwargs
    from ..errors import UserError
    from ..builder import model_info

    specs = list(args.models) + list(args.runs)
    if not specs:
        raise UserError("nothing to compare: give model names and/or --runs RUN_DIR ...")
    for r in args.runs:
        if not is_run(r):
            raise UserError(f"--runs {r}: not a run directory or .safetensors file")
    kwargs = parse_kwargs(args.kw)
    if args.num_classes is not None:
        kwargs["num_classes"] = args.num_classes
    if args.threads is not None:
        if args.threads < 1:
            raise UserError(f"--threads must be at least 1, got {args.threads}")
        import torch

        torch.set_num_threads(args.threads)
    per_model = {}
    if args.small:
        if not args.input:
            raise UserError("--small builds the models for 28-32 px images: give the size too, e.g. --input 3x32x32")
        for n in (s for s in specs if not is_run(s)):
            option = model_info(n).small_input.option_kwargs()
            if option:
                per_model[n] = option
    entries = compare(specs, args.input, not args.no_timing, args.batch_size, args.repeats, args.device,
                      per_model, progress=args.progress, **kwargs)
    print(format_table(entries, args.format))
    if args.plot:
        from ..viz.compare import plot_compare

        print(f"wrote {plot_compare(entries, args.plot)}")
    return 0
