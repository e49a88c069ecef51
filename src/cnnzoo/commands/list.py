"""``cnnzoo list [PATTERN]``: the registry as a table."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="list the models", description="List registered models: name, family, year, "
                       "parameters (1000 classes), default input size, how it takes 28-32 px images.")
    p.add_argument("pattern", nargs="?", default="*",
                   help="a shell wildcard ('resnet*') or a part of the name ('vgg': every name containing it); "
                   "default: all")
    p.add_argument("--format", choices=["text", "markdown", "json"], default="text")
    p.set_defaults(func=run)


def name_pattern(pattern: str) -> str:
    """The shell wildcard a ``cnnzoo list`` pattern stands for.

    A pattern with a wildcard character (``*``, ``?`` or ``[``) is used as given (``resnet*``: names starting with
    resnet); one without is a part of the name (``vgg`` -> ``*vgg*``: every name containing it), as timm's
    ``list_models`` reads its filters.
    """
    return pattern if any(ch in pattern for ch in "*?[") else f"*{pattern}*"


def rows(pattern: str = "*"):
    from ..catalog import list_entries

    out = []
    for e in list_entries(name_pattern(pattern)):
        c, h, w = e["input_size"]
        out.append(dict(name=e["name"], family=e["family"], year=e["paper"]["year"], params=e["params"],
                        input=f"{c}x{h}x{w}", min=e["min_input_size"], small=e["small_input"],
                        paper=e["paper"]["title"], url=e["paper"]["url"]))
    return out


def run(args: argparse.Namespace) -> int:
    from ..errors import UserError
    from ._table import Column, print_table

    table = rows(args.pattern)
    if not table:
        raise UserError(f"no model matches {args.pattern!r}; run `cnnzoo list` to see them all")
    text = [Column("name", lambda r: r["name"]), Column("family", lambda r: r["family"]),
            Column("year", lambda r: str(r["year"])), Column("params", lambda r: f"{r['params']:,}", True),
            Column("input", lambda r: r["input"]), Column("min", lambda r: str(r["min"]), True),
            Column("small images", lambda r: r["small"])]
    markdown = [Column("name", lambda r: f"`{r['name']}`"), *text[1:3], text[3], text[4], text[5],
                text[6], Column("paper", lambda r: f"[{r['paper']}]({r['url']})")]
    print_table(table, text, markdown, args.format, footer=f"{len(table)} models")
    return 0
