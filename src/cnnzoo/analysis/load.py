"""Models to analyse: from a registry name, a ``.safetensors`` file or a run directory.

A run directory (written by ``cnnzoo train``) holds ``model.safetensors`` whose metadata names the model
(``"model"``), its ``create_model`` arguments (``"model_args"``: num_classes, in_chans, ...), and what the
images looked like (``"classes"``, ``"mean"``, ``"std"``, ``"image_size"``), plus ``results.json`` and
``metrics.csv``. Analyses that need only shapes (summary, compare) build the model on the meta device from that
metadata, without reading the weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import torch
from torch import nn

from ..errors import UserError

__all__ = ["load_model", "read_meta", "build_on_meta", "parse_input", "default_input", "parse_kwargs",
           "read_results", "is_run"]

Spec = Union[str, Path]


def load_model(spec: Spec, device: Union[str, torch.device] = "cpu",
               **create_kwargs: Any) -> Tuple[nn.Module, Dict[str, Any]]:
    """A model in eval mode and its metadata.

    Args:
        spec: a registry name (random initial weights), a ``.safetensors`` file or a run directory (the
            model named in the weights' metadata, built with ``create_model(name, **model_args)`` and loaded
            with its weights).
        device: where to put the model.
        **create_kwargs: ``create_model`` arguments; they override the stored ``model_args``.

    Returns:
        ``(model, meta)``: ``meta`` has ``"model"`` and ``"model_args"``, and for trained weights ``"classes"``,
        ``"mean"``, ``"std"``, ``"image_size"``.

    Raises:
        UserError: a missing file, a file that is not safetensors, weights without a model name, or weights
            that do not fit the model.
    """
    # One loader for the whole package: the trainer's checkpoint module reads exactly the format it writes.
    from ..train.checkpoint import load_model as _load

    return _load(spec, device, **create_kwargs)


def _weights_file(spec: Spec) -> Path:
    from ..train.checkpoint import weights_path

    return weights_path(spec)


def is_run(spec: Any) -> bool:
    """Whether ``spec`` names weights on disk (a run directory or a ``.safetensors`` file)."""
    if not isinstance(spec, (str, Path)):
        return False
    p = Path(spec)
    return p.is_dir() or p.suffix == ".safetensors"


def read_meta(spec: Spec) -> Dict[str, Any]:
    """The metadata of a registry name, a ``.safetensors`` file or a run directory, without loading weights."""
    from ..registry import is_model

    s = str(spec)
    if is_model(s) and not Path(s).exists():
        return {"model": s, "model_args": {}}
    if not is_run(s):
        from ..registry import closest_models

        close = closest_models(s)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UserError(f"{s!r} is neither a registered model nor a run directory or .safetensors file.{hint}")
    from safetensors import SafetensorError, safe_open

    path = _weights_file(s)
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{path} is not a readable safetensors file ({e}); was it written by cnnzoo?") from None
    meta: Dict[str, Any] = {}
    for k, v in raw.items():
        try:
            meta[k] = json.loads(v)
        except (json.JSONDecodeError, TypeError):
            meta[k] = v
    if not meta.get("model"):
        raise UserError(f"{s} has no model name in its metadata; was it written by cnnzoo?")
    return meta


def build_on_meta(spec: Spec, **create_kwargs: Any) -> Tuple[nn.Module, Dict[str, Any]]:
    """The model of ``spec`` built on the meta device (shapes only: no memory, no initialisation)."""
    from ..registry import create_model

    meta = read_meta(spec)
    args = dict(meta.get("model_args") or {})
    args.update(create_kwargs)
    with torch.device("meta"):
        model = create_model(meta["model"], **args)
    return model.eval(), meta


def read_results(run_dir: Spec) -> Dict[str, Any]:
    """``results.json`` of a run directory (``{}`` when there is none)."""
    p = Path(run_dir)
    f = (p if p.is_dir() else p.parent) / "results.json"
    if not f.is_file():
        return {}
    try:
        return json.loads(f.read_text())
    except (json.JSONDecodeError, OSError) as e:
        raise UserError(f"{f} is not valid JSON ({e})") from None


def parse_input(text: str, channels: Optional[int] = None) -> Tuple[int, int, int]:
    """``"1x28x28"`` (C x H x W), ``"28x28"`` (H x W) or ``"28"`` (square) -> ``(C, H, W)``.

    ``channels`` fills in C when it is not given (default 3).
    """
    parts = str(text).lower().replace("×", "x").replace(",", "x").split("x")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise UserError(f"--input takes CxHxW, HxW or N (e.g. 1x28x28, 224x224, 224), got {text!r}") from None
    if len(nums) == 1:
        nums = [channels or 3, nums[0], nums[0]]
    elif len(nums) == 2:
        nums = [channels or 3, *nums]
    elif len(nums) != 3:
        raise UserError(f"--input takes CxHxW, HxW or N (e.g. 1x28x28, 224x224, 224), got {text!r}")
    if min(nums) < 1:
        raise UserError(f"--input sizes must be positive, got {text!r}")
    return nums[0], nums[1], nums[2]


def default_input(model: nn.Module, meta: Optional[Dict[str, Any]] = None) -> Tuple[int, int, int]:
    """The input a model expects: trained runs' ``image_size``, else the registered input size."""
    from ..registry import is_model, model_info

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


def parse_kwargs(items) -> Dict[str, Any]:
    """``["small_input=true", "drop_rate=0.2"]`` -> ``{"small_input": True, "drop_rate": 0.2}`` (values as YAML)."""
    import yaml

    out: Dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise UserError(f"--kw takes KEY=VALUE (e.g. --kw small_input=true), got {item!r}")
        k, raw = item.split("=", 1)
        try:
            out[k.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            out[k.strip()] = raw
    return out
