"""Models to analyse: from a registry name, a ``.safetensors`` file or a run directory.

A run directory (written by ``cnnzoo train``) holds ``model.safetensors`` whose metadata names the model
(``"model"``), its ``create_model`` arguments (``"model_args"``: num_classes, in_chans, ...), and what the
images looked like (``"classes"``, ``"mean"``, ``"std"``, ``"image_size"``), plus ``results.json`` and
``metrics.csv``. Analyses that need only shapes (summary, compare) build the model on the meta device from that
metadata, without reading the weights. Loading is the builder's (:mod:`cnnzoo.builder`); this module adds what
the analyses read beside the weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

from torch import nn

from ..builder import build_on_meta, load_model, model_info, read_meta
from ..errors import UserError
from ..io import RunDir, is_weights_spec
from ..registry import is_model

__all__ = ["load_model", "read_meta", "build_on_meta", "default_input", "read_results", "is_run"]

Spec = Union[str, Path]

is_run = is_weights_spec


def read_results(run_dir: Spec) -> Dict[str, Any]:
    """``results.json`` of a run directory (``{}`` when there is none)."""
    p = Path(run_dir)
    run = RunDir(p if p.is_dir() else p.parent)
    return run.read_json(run.results)


def default_input(model: nn.Module, meta: Optional[Dict[str, Any]] = None) -> Tuple[int, int, int]:
    """The input a model expects: trained runs' ``image_size``, else the registered input size."""
    meta = meta or {}
    c = int(getattr(model, "in_chans", 0) or (meta.get("model_args") or {}).get("in_chans") or 3)
    if meta.get("image_size"):
        size = meta["image_size"]
        h, w = (int(size), int(size)) if isinstance(size, (int, float)) else (int(size[0]), int(size[-1]))
        return c, h, w
    name = getattr(model, "model_name", "") or meta.get("model", "")
    if name and is_model(name):
        _, h, w = model_info(name).input_size
        return c, h, w
    raise UserError("the input size is not known for this model; pass --input CxHxW")
