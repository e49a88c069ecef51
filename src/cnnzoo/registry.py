"""The model registry: which models there are and what their family files declare. Bookkeeping only.

Family files declare their variants with :func:`cnnzoo.models._spec.register_model`; importing
:mod:`cnnzoo.models` runs those declarations. This module looks them up (``list_models("resnet*")``,
``is_model``, the closest names to a typo); building a model is :mod:`cnnzoo.builder`'s job.
"""

from __future__ import annotations

from typing import List, Sequence, Union

from .models._spec import ENTRIES, NATIVE, ModelEntry, Paper, SmallInput, register_model
from .names import closest_names, match_names, unknown_name

__all__ = [
    "Paper",
    "SmallInput",
    "NATIVE",
    "ModelEntry",
    "register_model",
    "list_models",
    "is_model",
    "get_entry",
    "closest_models",
    "unknown_model",
]


def _ensure_loaded() -> None:
    # Importing the models package runs every family file's registrations.
    from . import models  # noqa: F401


def closest_models(name: str, n: int = 5) -> List[str]:
    """Registered names that look like ``name`` (for "did you mean")."""
    _ensure_loaded()
    return closest_names(name, ENTRIES, n)


def unknown_model(name: str) -> ValueError:
    """The error for a name that is not registered, with the closest names."""
    _ensure_loaded()
    return unknown_name(name, ENTRIES)


def is_model(name: str) -> bool:
    _ensure_loaded()
    return name in ENTRIES


def get_entry(name: str) -> ModelEntry:
    """The declaration of ``name``; raises ``ValueError`` naming the closest models for an unknown one."""
    _ensure_loaded()
    if name not in ENTRIES:
        raise unknown_model(name)
    return ENTRIES[name]


def list_models(pattern: Union[str, Sequence[str]] = "*") -> List[str]:
    """Registered model names matching a shell wildcard (``"resnet*"``), in natural order."""
    _ensure_loaded()
    return match_names(ENTRIES, pattern)
