"""Model names as people type them: natural order, shell wildcards, the closest names to a typo.

Plain Python (no PyTorch), shared by the registry and the catalogue that ``cnnzoo list`` reads.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from typing import Iterable, List, Sequence, Union

__all__ = ["natural_key", "match_names", "closest_names", "unknown_name"]


def natural_key(name: str) -> list:
    """resnet18 before resnet101, as a person sorts them."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def match_names(names: Iterable[str], pattern: Union[str, Sequence[str]] = "*") -> List[str]:
    """The ``names`` matching a shell wildcard (or any of several), in natural order."""
    pats = [pattern] if isinstance(pattern, str) else list(pattern)
    return sorted((n for n in names if any(fnmatch.fnmatchcase(n, p.lower()) for p in pats)), key=natural_key)


def closest_names(name: str, names: Iterable[str], n: int = 5) -> List[str]:
    """Names that look like ``name`` (for "did you mean")."""
    names = list(names)
    close = difflib.get_close_matches(name.lower(), names, n=n, cutoff=0.5)
    if not close:
        close = [m for m in names if name.lower()[:3] in m][:n]
    return close


def unknown_name(name: str, names: Iterable[str]) -> ValueError:
    """The error for a model name that is not among ``names``, with the closest ones."""
    close = closest_names(name, names)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return ValueError(f"unknown model {name!r}.{hint} Run `cnnzoo list` to see every model.")
