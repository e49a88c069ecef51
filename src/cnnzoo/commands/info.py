"""``cnnzoo info MODEL``: what a model is — paper, input sizes, small-image use, stages, pretrained weights."""

from __future__ import annotations

import argparse
import json
from typing import Any, Dict, List


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="describe one model", description="Family, paper, input sizes, how the model "
                       "takes 28/32 px images, its stages (for freezing), its torchvision twin and its "
                       "pretrained weights (tags for pretrained=...).")
    p.add_argument("model")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..catalog import get_entry

    d = dict(get_entry(args.model))
    citation = d.pop("citation")
    d["weights"] = weights_summary(d["name"])
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
    sets = [f"{w['tag']}{' = imagenet' if w['default'] else ''} (top-1 {w['top1']:.2f}, {w['source']}"
            f"{', needs ' + w['convert'] + ' names' if w['convert'] else ''})" for w in d["weights"]]
    print(f"  weights       {', '.join(sets) if sets else '- (none catalogued)'}")
    return 0


def weights_summary(model: str) -> List[Dict[str, Any]]:
    """The model's catalogued weights sets (default first): tag, the tags it answers to, top-1/top-5, source."""
    from ..hub import weights_for

    return [dict(tag=e.tag, tags=list(e.tags), default=e.default, source=e.source, top1=e.top1, top5=e.top5,
                 convert=e.convert) for e in weights_for(model)]
