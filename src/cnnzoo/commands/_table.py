"""Tables on the command line: the text, markdown and json forms of ``cnnzoo list`` and ``cnnzoo weights``."""

from __future__ import annotations

import json
from typing import Any, Callable, Dict, List, NamedTuple, Sequence


class Column(NamedTuple):
    """A column: its heading, how a row shows in it, and whether numbers sit right in the text form."""

    header: str
    cell: Callable[[Dict[str, Any]], str]
    right: bool = False


def print_table(rows: List[Dict[str, Any]], text: Sequence[Column], markdown: Sequence[Column], fmt: str,
                footer: str = "") -> None:
    """``rows`` as aligned text (then ``footer``), a markdown table, or their JSON."""
    if fmt == "json":
        print(json.dumps(rows, indent=2))
        return
    if fmt == "markdown":
        print("| " + " | ".join(c.header for c in markdown) + " |")
        print("|" + "|".join("---:" if c.right else "---" for c in markdown) + "|")
        for r in rows:
            print("| " + " | ".join(c.cell(r) for c in markdown) + " |")
        return
    cells = [[c.cell(r) for c in text] for r in rows]
    widths = [max(len(c.header), *(len(row[i]) for row in cells)) for i, c in enumerate(text)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if c.right else v.ljust(w) for v, w, c in zip(values, widths, text)).rstrip()

    print(line([c.header for c in text]))
    for row in cells:
        print(line(row))
    if footer:
        print(footer)
