"""``cnnzoo benchmark MODEL...``: inference and training-step images/s and peak memory, optionally vs torchvision."""

from __future__ import annotations

import argparse
import sys

from ..choices import PROGRESS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "benchmark", help="images/s and peak memory of inference and training steps, vs torchvision",
        description="Measure inference (eval, no_grad) and training-step (forward, backward, SGD step) images/s "
        "and peak memory, the way cnnzoo runs a model (channels_last, the --precision autocast, BatchNorm folded "
        "for inference). --vs torchvision measures the same architecture from torchvision in the same process, "
        "as-is (fp32, NCHW) and with the same settings, the timed runs alternated; it reports the medians and "
        "the ratios ours / theirs. See docs/benchmark.md.")
    p.add_argument("models", nargs="+", metavar="MODEL", help="registry names (cnnzoo list)")
    p.add_argument("--batch-size", "-b", type=int, default=64, help="images per iteration (default 64)")
    p.add_argument("--batch", type=int, dest="batch_size", default=argparse.SUPPRESS,
                   help=argparse.SUPPRESS)  # the old name, kept for scripts
    p.add_argument("--input", "-i", default="3x64x64", metavar="CxHxW",
                   help="input size (default 3x64x64); at 32 px or less, models with a small-input option are "
                   "built with it (not with --vs, which compares torchvision's architecture)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                   help="autocast dtype of our model (auto: what the trainer picks; default)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                   help="run our model in channels_last memory format (default: yes)")
    p.add_argument("--matmul-conv", action=argparse.BooleanOptionalAction, default=True,
                   help="CPU: convolutions with few output positions as one matrix product, as the trainer runs "
                        "them (train.matmul_conv; default: yes)")
    p.add_argument("--fold-bn", action=argparse.BooleanOptionalAction, default=True,
                   help="fold BatchNorm into the convolutions for inference (default: yes, where cnnzoo.fuse exists)")
    p.add_argument("--vs", choices=["torchvision"],
                   help="also measure torchvision's twin: as-is (fp32, NCHW) and with our settings")
    p.add_argument("--mode", choices=["both", "infer", "train"], default="both",
                   help="what to measure (default both)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per variant; the median is reported (default 5)")
    p.add_argument("--steps", type=int, default=10, help="iterations per timed run (default 10)")
    p.add_argument("--warmup", type=int, default=3, help="untimed iterations of each variant before timing (default 3)")
    p.add_argument("--num-classes", type=int, default=1000, help="classifier outputs (default 1000)")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads (torch.set_num_threads; default: PyTorch's)")
    p.add_argument("--seed", type=int, default=0, help="seeds the weights, the batch and the targets")
    p.add_argument("--peak-gflops", type=float, metavar="G",
                   help="the device's peak GFLOP/s for the 'of peak' column (default: measured, the best 2048x2048 "
                   "matrix product in each variant's precision)")
    p.add_argument("--format", "-f", choices=["text", "json", "markdown"], default="text")
    p.add_argument("--progress", choices=PROGRESS, default="auto",
                   help="a bar over the timed runs on stderr: auto (on a terminal; default), bar (always), none")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..analysis.shapes import parse_input
    from ..bench import MODES, benchmark, format_results
    from ..errors import UserError
    from ..builder import model_info

    size = parse_input(args.input)
    for name in args.models:  # every name checked before anything is measured
        info = model_info(name)
        if args.vs == "torchvision" and info.torchvision is None:
            from ..bench import torchvision_twins

            raise UserError(f"{name} has no torchvision twin, so --vs torchvision cannot compare it; models that "
                            f"have one: {', '.join(torchvision_twins())}")
    if args.threads is not None and args.threads < 1:
        raise UserError(f"--threads must be at least 1, got {args.threads}")
    modes = MODES if args.mode == "both" else (args.mode,)
    log = (lambda msg: print(msg, file=sys.stderr, flush=True)) if sys.stderr.isatty() else None
    threads = torch.get_num_threads()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        results = [benchmark(name, batch=args.batch_size, input_size=size, device=args.device,
                             precision=args.precision, channels_last=args.channels_last, fold_bn=args.fold_bn,
                             vs=args.vs, repeats=args.repeats, steps=args.steps, warmup=args.warmup,
                             num_classes=args.num_classes, modes=modes, seed=args.seed, log=log,
                             progress=args.progress, peak_gflops=args.peak_gflops, matmul_conv=args.matmul_conv)
                   for name in args.models]
    finally:  # in-process callers (tests, scripts) keep their own setting
        torch.set_num_threads(threads)
    print(format_results(results, args.format))
    return 0
