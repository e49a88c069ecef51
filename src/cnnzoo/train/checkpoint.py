"""Checkpoints: weights as safetensors, training state through ``torch.load(weights_only=True)``.

Every file is written under a temporary name and renamed into place, and a checkpoint (weights
plus state) is a directory that becomes visible by one atomic rename of the ``LATEST`` pointer,
so a kill at any moment leaves either the previous checkpoint or the new one, never a torn file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple, Union

import torch
from torch import nn

from ..errors import UserError

__all__ = [
    "atomic_write",
    "save_weights",
    "load_weights",
    "save_state",
    "load_state",
    "save_checkpoint",
    "latest_checkpoint",
    "load_model",
    "weights_path",
]

FORMAT = "cnnzoo/1"
# Fault testing: seconds to pause inside every checkpoint write, so a test can kill the process there.
_WRITE_DELAY = float(os.environ.get("CNNZOO_CHECKPOINT_DELAY", "0") or 0)


def atomic_write(path: Union[str, Path], write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)``, flush it to disk, then rename it to ``path``.

    The temporary name keeps the suffix (``.model.tmp-123.onnx``) for writers that look at it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        write(str(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def _meta_str(meta: Dict[str, Any]) -> Dict[str, str]:
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}


def save_weights(path: Union[str, Path], model: nn.Module, meta: Optional[Dict[str, Any]] = None) -> Path:
    """Write ``model``'s state dict as safetensors with the model's name and arguments in the metadata."""
    from safetensors.torch import save_file

    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    m = {"format": FORMAT}
    if getattr(model, "model_name", ""):
        m["model"] = model.model_name
        m["model_args"] = getattr(model, "model_args", {})
    m.update(meta or {})
    return atomic_write(path, lambda tmp: save_file(state, tmp, metadata=_meta_str(m)))


def _decode(meta: Dict[str, str]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in (meta or {}).items():
        try:
            out[k] = json.loads(v)
        except (json.JSONDecodeError, TypeError):
            out[k] = v
    return out


def load_weights(path: Union[str, Path]) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """Read a safetensors file: (state dict, decoded metadata)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file {str(path)!r} not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{path} is not a readable safetensors file ({e}); was it written by cnnzoo?") from None
    return state, _decode(meta)


def save_state(path: Union[str, Path], state: Dict[str, Any]) -> Path:
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_state(path: Union[str, Path]) -> Dict[str, Any]:
    """Load training state with ``weights_only=True``: tensors and plain containers only, no code."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols are not for the user
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"training state {str(path)!r} not found") from None
    except Exception as e:  # an UnpicklingError for anything but plain data, or a corrupt file
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        why = f"it asks to run {found.group(1)}" if found else f"{type(e).__name__}"
        raise UserError(f"refusing to load {path}: not a plain-data training state ({why}); nothing in it was run") \
            from None


def save_checkpoint(run_dir: Union[str, Path], tag: str, model: nn.Module, state: Dict[str, Any],
                    meta: Dict[str, Any], keep: int = 2) -> Path:
    """Write ``checkpoints/<tag>/{model.safetensors,state.pt}`` then point ``checkpoints/LATEST`` at it."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".*.tmp-*"):  # left by a process killed while writing
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
    tmp = root / f".{tag}.tmp-{os.getpid()}"
    tmp.mkdir()
    save_weights(tmp / "model.safetensors", model, meta)
    if _WRITE_DELAY:
        time.sleep(_WRITE_DELAY)
    save_state(tmp / "state.pt", state)
    final = root / tag
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    atomic_write(root / "LATEST", lambda p: Path(p).write_text(tag + "\n"))
    # Older checkpoints go only once the new one is in place.
    dirs = sorted((d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")),
                  key=lambda d: d.stat().st_mtime)
    for d in dirs[:-keep]:
        if d.name != tag:
            shutil.rmtree(d, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: Union[str, Path]) -> Optional[Path]:
    root = Path(run_dir) / "checkpoints"
    pointer = root / "LATEST"
    if not pointer.is_file():
        return None
    d = root / pointer.read_text().strip()
    return d if (d / "model.safetensors").is_file() and (d / "state.pt").is_file() else None


def weights_path(spec: Union[str, Path]) -> Path:
    """The weights file of a run directory (its final ``model.safetensors``, else the latest checkpoint)."""
    p = Path(spec)
    if p.is_dir():
        if (p / "model.safetensors").is_file():
            return p / "model.safetensors"
        ck = latest_checkpoint(p)
        if ck is not None:
            return ck / "model.safetensors"
        raise UserError(f"{p} holds no model.safetensors or checkpoint; is it a cnnzoo run directory?")
    if p.suffix == ".safetensors":
        if not p.is_file():
            raise UserError(f"weights file {str(p)!r} not found")
        return p
    raise UserError(f"{str(p)!r} is neither a run directory nor a .safetensors file")


def load_model(spec: Union[str, Path], device: Union[str, torch.device] = "cpu",
               **create_kwargs: Any) -> Tuple[nn.Module, Dict[str, Any]]:
    """A model from a registry name (random weights), a ``.safetensors`` file or a run directory.

    Returns ``(model in eval mode, metadata)``; the metadata of a trained model holds ``classes``,
    ``mean``, ``std``, ``image_size`` and ``in_chans`` when cnnzoo wrote it.
    """
    from ..registry import create_model, is_model

    spec_s = str(spec)
    if is_model(spec_s) and not Path(spec_s).exists():
        model = create_model(spec_s, **create_kwargs)
        return model.to(device).eval(), {"model": spec_s, "model_args": getattr(model, "model_args", {})}
    state, meta = load_weights(weights_path(spec_s))
    name = meta.get("model")
    if not name:
        raise UserError(f"{spec_s} has no model name in its metadata; load it with create_model(name, pretrained=...)")
    args = dict(meta.get("model_args") or {})
    args.update(create_kwargs)
    model = create_model(name, **args)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise UserError(f"{spec_s} does not fit {name}: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return model.to(device).eval(), meta
