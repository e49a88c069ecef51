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
    from ..catalog import get_entry

    d = dict(get_entry(args.model))
    citation = d.pop("citation")
    if args.format == "json":
        print(json.dumps(d, indent=2))
        return 0
    c, h, w = d["input_size"]
    m = d["min_input_size"]
    print(f"{d['name']}: {d['description']}")
    print(f"  family        {d['family']}")
    print(f"  paper         {citation}")
    print(f"  parameters    {d['params']:,} (1000 classes)")
    print(f"  input         {c}x{h}x{w}, at least {m}x{m}")
    print(f"  small images  {d['small_input']}")
    print(f"  aux heads     {'yes (training only)' if d['aux_logits'] else 'no'}")
    print(f"  stages        {', '.join(d['stages'])}")
    print(f"  torchvision   {d['torchvision'] or '-'}")
    return 0
