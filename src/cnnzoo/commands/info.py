"""``cnnzoo info MODEL``: what a model is — paper, input sizes, small-image use, stages."""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="describe one model", description="Family, paper, input sizes, how the model "
                       "takes 28/32 px images, its stages (for freezing) and its torchvision twin.")
    p.add_argument("model")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..registry import count_params, model_info

    info = model_info(args.model)
    d = info.as_dict()
    d["params"] = count_params(args.model)
    if args.format == "json":
        print(json.dumps(d, indent=2))
        return 0
    c, h, w = info.input_size
    print(f"{info.name}: {info.description}")
    print(f"  family        {info.family}")
    print(f"  paper         {info.paper.cite()}")
    print(f"  parameters    {d['params']:,} (1000 classes)")
    print(f"  input         {c}x{h}x{w}, at least {info.min_input_size}x{info.min_input_size}")
    print(f"  small images  {info.small_input.describe()}")
    print(f"  aux heads     {'yes (training only)' if info.aux_logits else 'no'}")
    print(f"  stages        {', '.join(info.stages)}")
    print(f"  torchvision   {info.torchvision or '-'}")
    return 0
