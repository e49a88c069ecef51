"""``cnnzoo weights [PATTERN]``: the pretrained weights catalogue as a table (read from weights.json, no torch)."""

from __future__ import annotations

import argparse
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
    from ._table import Column, print_table

    table = rows(args.pattern)
    if not table:
        raise UserError(f"no catalogued weights for a model matching {args.pattern!r}; run `cnnzoo weights` to see "
                        "them all")
    text = [Column("model", lambda r: r["model"]), Column("tag", _tag_cell), Column("source", lambda r: r["source"]),
            Column("top-1", lambda r: _pct(r["top1"]), True), Column("top-5", lambda r: _pct(r["top5"]), True),
            Column("params", lambda r: f"{r['params']:,}", True), Column("size MB", lambda r: _mb(r["size_mb"]), True),
            Column("input", lambda r: r["input"]), Column("crop", lambda r: str(r["crop"]), True),
            Column("licence", lambda r: r["licence"])]
    markdown = [Column("model", lambda r: f"`{r['model']}`"), *text[1:7],
                Column("input / crop", lambda r: f"{r['input']} / {r['crop']}"), text[9]]
    models = len({r["model"] for r in table})
    print_table(table, text, markdown, args.format,
                footer=f"{len(table)} weights sets for {models} models; 'imagenet' is each model's default "
                "(create_model(name, pretrained=True))")
    return 0
