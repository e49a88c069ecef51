"""``cnnzoo weights [PATTERN]``: the pretrained weights catalogue as a table (read from weights.json, no torch)."""

from __future__ import annotations

import argparse
import json
from typing import Any, Dict, List


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("weights", help="list the pretrained weights",
                       description="List the published ImageNet weights cnnzoo can download (create_model(name, "
                       "pretrained=True or a tag), --pretrained TAG): model, tag, source, top-1/top-5, parameters, "
                       "file size, input and crop, licence. 'imagenet' names each model's best set.")
    p.add_argument("pattern", nargs="?", default="*",
                   help="a shell wildcard over model names ('resnet*') or a part of the name ('vgg'); default: all")
    p.add_argument("--format", choices=["text", "markdown", "json"], default="text")
    p.set_defaults(func=run)


def _mb(x: Any) -> str:
    return f"{x:.1f}" if isinstance(x, (int, float)) else "-"


def _pct(x: Any) -> str:
    return f"{x:.2f}" if isinstance(x, (int, float)) else "-"


def rows(pattern: str = "*") -> List[Dict[str, Any]]:
    """One row per weights set of the models matching ``pattern`` (as ``cnnzoo list`` reads patterns)."""
    from ..hub import list_weights
    from .list import name_pattern

    out = []
    for e in list_weights(name_pattern(pattern)):
        c, h, w = e.input_size
        out.append(dict(model=e.model, tag=e.tag, tags=list(e.tags), default=e.default, source=e.source,
                        origin=e.origin, top1=e.top1, top5=e.top5, params=e.params, size_mb=e.file_size_mb,
                        input=f"{c}x{h}x{w}", resize=e.resize_size, crop=e.crop_size, licence=e.licence,
                        convert=e.convert, url=e.download_url))
    return out


def _tag_cell(r: Dict[str, Any]) -> str:
    tag = f"{r['tag']} (imagenet)" if r["default"] else r["tag"]
    return f"{tag} [needs {r['convert']} names]" if r["convert"] else tag


def run(args: argparse.Namespace) -> int:
    from ..errors import UserError

    table = rows(args.pattern)
    if not table:
        raise UserError(f"no catalogued weights for a model matching {args.pattern!r}; run `cnnzoo weights` to see "
                        "them all")
    if args.format == "json":
        print(json.dumps(table, indent=2))
        return 0
    if args.format == "markdown":
        print("| model | tag | source | top-1 | top-5 | params | size MB | input / crop | licence |")
        print("|---|---|---|---:|---:|---:|---:|---|---|")
        for r in table:
            print(f"| `{r['model']}` | {_tag_cell(r)} | {r['source']} | {_pct(r['top1'])} | {_pct(r['top5'])} "
                  f"| {r['params']:,} | {_mb(r['size_mb'])} | {r['input']} / {r['crop']} | {r['licence']} |")
        return 0
    cols = ["model", "tag", "source", "top-1", "top-5", "params", "size MB", "input", "crop", "licence"]
    cells = [[r["model"], _tag_cell(r), r["source"], _pct(r["top1"]), _pct(r["top5"]), f"{r['params']:,}",
              _mb(r["size_mb"]), r["input"], str(r["crop"]), r["licence"]] for r in table]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(cols)]
    right = {3, 4, 5, 6, 8}

    def fmt(vals: List[str]) -> str:
        return "  ".join(v.rjust(wd) if i in right else v.ljust(wd) for i, (v, wd) in enumerate(zip(vals, widths)))

    print(fmt(cols).rstrip())
    for c in cells:
        print(fmt(c).rstrip())
    models = len({r["model"] for r in table})
    print(f"{len(table)} weights sets for {models} models; 'imagenet' is each model's default "
          "(create_model(name, pretrained=True))")
    return 0
