"""``cnnzoo list [PATTERN]``: the registry as a table."""

from __future__ import annotations

import argparse
import json


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

    table = rows(args.pattern)
    if not table:
        raise UserError(f"no model matches {args.pattern!r}; run `cnnzoo list` to see them all")
    if args.format == "json":
        print(json.dumps(table, indent=2))
        return 0
    if args.format == "markdown":
        print("| name | family | year | params | input | min | small images | paper |")
        print("|---|---|---|---:|---|---:|---|---|")
        for r in table:
            print(f"| `{r['name']}` | {r['family']} | {r['year']} | {r['params']:,} | {r['input']} | {r['min']} "
                  f"| {r['small']} | [{r['paper']}]({r['url']}) |")
        return 0
    cols = [("name", "name"), ("family", "family"), ("year", "year"), ("params", "params"), ("input", "input"),
            ("min", "min"), ("small images", "small")]
    cells = [[f"{r[k]:,}" if k == "params" else str(r[k]) for _, k in cols] for r in table]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, (h, _) in enumerate(cols)]
    right = {3, 5}
    fmt = lambda vals: "  ".join(v.rjust(wd) if i in right else v.ljust(wd) for i, (v, wd) in enumerate(zip(vals, widths)))
    print(fmt([h for h, _ in cols]).rstrip())
    for c in cells:
        print(fmt(c).rstrip())
    print(f"{len(table)} models")
    return 0
