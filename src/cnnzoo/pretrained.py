"""Pretrained weights into a model: from our files, torchvision's or timm's, adapting head and input.

``load_pretrained(model, path)`` takes our ``.safetensors`` or run directory, or a torchvision or timm
``state_dict`` (``.pth``/``.pt`` read with ``torch.load(weights_only=True)``, or ``.safetensors``), maps its
names to ours, re-initialises a classifier of another size, adapts the first convolution to another channel
count (as timm does) and refuses another architecture. ``load_torchvision_weights`` is the strict form for a
torchvision ``state_dict`` of the identical architecture.

Part of the builder layer: it works on a built model and needs only :mod:`cnnzoo.io` below it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Tuple, Union

import torch
from torch import nn

from .errors import UserError
from .io import load_state, load_weights, weights_path

__all__ = ["LoadReport", "read_state_dict", "load_pretrained", "adapt_input_conv", "convert_torchvision_state_dict",
           "load_torchvision_weights"]


@dataclass
class LoadReport:
    loaded: List[str] = field(default_factory=list)
    reinitialised: List[str] = field(default_factory=list)
    adapted: List[str] = field(default_factory=list)
    resized: List[str] = field(default_factory=list)  # reshaped by the model's small-input option: from scratch
    new_aux_heads: List[str] = field(default_factory=list)  # auxiliary heads the file has no weights for
    skipped: List[str] = field(default_factory=list)  # in the file, not used by the model
    source: str = ""
    note: str = ""

    def summary(self) -> str:
        parts = [f"loaded {len(self.loaded)} tensors from {self.source}"]
        if self.adapted:
            parts.append(f"adapted {', '.join(self.adapted)} to the input channels")
        if self.reinitialised:
            parts.append(f"re-initialised {', '.join(self.reinitialised)}")
        if self.new_aux_heads:
            parts.append(f"new auxiliary heads {', '.join(self.new_aux_heads)} (not in the file)")
        if self.resized:
            parts.append(f"re-initialised {len(self.resized)} reshaped by the small-input option "
                         f"({', '.join(self.resized[:3])}{', ...' if len(self.resized) > 3 else ''})")
        if self.note:
            parts.append(self.note)
        if self.skipped:
            parts.append(f"skipped {len(self.skipped)} unused ({', '.join(self.skipped[:3])}"
                         f"{', ...' if len(self.skipped) > 3 else ''})")
        return "; ".join(parts)


def read_state_dict(path: Union[str, Path]) -> Tuple[Dict[str, torch.Tensor], Dict[str, object]]:
    """A state dict and its metadata from a run directory, ``.safetensors`` or ``.pth``/``.pt``."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"pretrained weights {str(p)!r} not found")
    if p.is_dir() or p.suffix == ".safetensors":
        return load_weights(weights_path(p))
    if p.suffix not in (".pth", ".pt", ".bin", ".ckpt"):
        raise UserError(f"{p}: unknown weights format; use .safetensors, .pth or .pt, or a run directory")
    obj = load_state(p)
    for key in ("state_dict", "model", "model_state_dict", "module"):  # common wrappers
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"{p} holds no state dict of tensors")
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}
    return sd, {}


def adapt_input_conv(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """A first-convolution weight for ``in_chans`` inputs from one trained on RGB.

    One channel: the sum over RGB (a grey image replicated to RGB gives the same output). More:
    RGB repeated and scaled by 3/in_chans so activations keep their scale (timm's rule).
    """
    src = weight.shape[1]
    if src == in_chans:
        return weight
    w = weight.float()
    if in_chans == 1:
        w = w.sum(1, keepdim=True)
    else:
        reps = math.ceil(in_chans / src)
        w = w.repeat(1, reps, 1, 1)[:, :in_chans] * (src / in_chans)
    return w.to(weight.dtype)


def _head_keys(model: nn.Module) -> List[str]:
    """Parameter and buffer names of the classifier and of every auxiliary classifier's last layer."""
    heads = [model.get_classifier()] if hasattr(model, "get_classifier") else []
    heads += [h.get_classifier() for h in getattr(model, "aux_heads", lambda: [])()]
    ids = {id(t) for m in heads if m is not None for t in (*m.parameters(), *m.buffers())}
    return [n for n, t in (*model.named_parameters(), *model.named_buffers()) if id(t) in ids]


def _aux_prefixes(model: nn.Module) -> Tuple[str, ...]:
    """``"aux1."``... : tensors of auxiliary classifiers the architecture can have, built or not."""
    return tuple(f"{n}." for n in getattr(model, "aux_head_names", lambda: ())())


def load_pretrained(model: nn.Module, path: Union[str, Path], verbose: bool = False) -> LoadReport:
    """Load weights from ``path`` into ``model``, adapting head and input channels (see :func:`load_adapting`).

    Raises:
        UserError: when the checkpoint is of another architecture (a tensor of the body is
            missing, of another shape, or left over), listing the mismatched keys.
    """
    sd, meta = read_state_dict(path)
    src_model = meta.get("model") if isinstance(meta, dict) else None
    return load_adapting(model, sd, str(path), src_model, verbose)


def load_adapting(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "a state dict",
                  src_model: Optional[str] = None, verbose: bool = False) -> LoadReport:
    """Load ``state_dict`` into ``model`` by name, adapting what a fine-tune changes, refusing another network.

    * a classifier of another size (or auxiliary heads the file lacks or the model lacks): re-initialised;
    * a first convolution for another channel count: adapted (:func:`adapt_input_conv`);
    * a model built with its small-input option (``small_input=True``) from weights of the paper's
      configuration: every tensor that fits loads, the ones the option reshapes (a ResNet's 3x3 stem, VGG's
      smaller classifier) are re-initialised, and the report names them;
    * anything else that does not fit: the file is of another architecture.

    Raises:
        UserError: another architecture, with the first mismatched tensors.
    """
    sd = dict(state_dict)
    own = model.state_dict()
    if not any(k in own for k in sd):
        converted = convert_torchvision_state_dict(model, sd)
        if any(k in own for k in converted):
            sd = converted
    name = getattr(model, "model_name", "") or type(model).__name__
    spec = getattr(model, "small_input_spec", None)
    small = spec is not None and spec.applied_to(model)

    heads = set(_head_keys(model))
    aux = _aux_prefixes(model)
    first_conv = next((k for k, v in own.items() if v.dim() == 4), None)
    report = LoadReport(source=source)
    new: Dict[str, torch.Tensor] = {}
    mismatched: List[str] = []
    for k, v in own.items():
        if k not in sd:
            if k.startswith(aux):  # auxiliary heads the file was saved without
                report.new_aux_heads.append(k.split(".")[0])
                continue
            if k in heads:
                report.reinitialised.append(k)
                continue
            if k.endswith("num_batches_tracked"):
                continue
            mismatched.append(f"{k} missing")
            continue
        src = sd[k]
        if src.shape == v.shape:
            new[k] = src.to(v.dtype)
        elif k in heads:
            report.reinitialised.append(k)
        elif k == first_conv and src.dim() == 4 and src.shape[0] == v.shape[0] and src.shape[2:] == v.shape[2:]:
            new[k] = adapt_input_conv(src, v.shape[1]).to(v.dtype)
            report.adapted.append(k)
        elif small:
            report.resized.append(f"{k} {tuple(src.shape)} -> {tuple(v.shape)}")
        else:
            mismatched.append(f"{k} {tuple(src.shape)} vs {tuple(v.shape)}")
    report.skipped = [k for k in sd if k not in own]
    # Tensors of the file that the model has no place for, beyond auxiliary heads: another network.
    extra = [k for k in report.skipped if not k.startswith(aux) and not k.endswith("num_batches_tracked")]
    if not small:
        mismatched += [f"{k} unused" for k in extra]
    if small and len(new) < len([k for k in own if not k.endswith("num_batches_tracked")]) / 2:
        mismatched.append(f"only {len(new)} of {len(own)} tensors fit")
    if mismatched:
        what = f" (it is a {src_model})" if src_model and src_model != name else ""
        more = f" (+{len(mismatched) - 3} more)" if len(mismatched) > 3 else ""
        hint = ""
        if spec is not None and spec.has_option and not small:
            hint = f"; if it was saved with {spec.args_text()}, build the model with it too"
        raise UserError(f"{source} is a checkpoint of another architecture than {name}{what}: "
                        f"{len(mismatched)} tensors do not fit, e.g. {'; '.join(mismatched[:3])}{more}{hint}")
    model.load_state_dict(new, strict=False)
    report.reinitialised = sorted(set(report.reinitialised))
    report.new_aux_heads = sorted(set(report.new_aux_heads))
    report.loaded = sorted(new)
    if small and report.resized:
        report.note = f"{name} is built with {spec.args_text()}: the layers it reshapes start from scratch"
    if verbose:
        print(report.summary())
    model.pretrained_report = report
    return report


def convert_torchvision_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Rename a torchvision ``state_dict``'s keys to ``model``'s.

    Families whose module names match torchvision's need nothing; the others define
    ``convert_torchvision_state_dict(state_dict) -> state_dict`` on the model class.
    """
    conv = getattr(model, "convert_torchvision_state_dict", None)
    sd = dict(state_dict)
    return dict(conv(sd)) if conv is not None else sd


def load_torchvision_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor],
                             strict: bool = False) -> nn.Module:
    """Load a torchvision ``state_dict`` into our model of the same architecture.

    By default with the fine-tuning rules of :func:`load_adapting` (another head size, input channels, the
    small-input option); ``strict=True`` demands every key and shape to match.

    Raises:
        ValueError: when the keys or shapes do not match, listing the first mismatches.
    """
    if not strict:
        try:
            load_adapting(model, state_dict, "the torchvision state dict")
        except UserError as e:
            raise ValueError(str(e)) from None
        return model
    sd = convert_torchvision_state_dict(model, state_dict)
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    wrong = [f"{k} {tuple(sd[k].shape)} vs {tuple(v.shape)}" for k, v in own.items() if k in sd and sd[k].shape != v.shape]
    if missing or unexpected or wrong:
        name = getattr(model, "model_name", type(model).__name__)
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", wrong)):
            if items:
                more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
                parts.append(f"{label}: {', '.join(items[:5])}{more}")
        raise ValueError(f"these weights do not fit {name}: " + "; ".join(parts))
    model.load_state_dict(sd, strict=True)
    return model
