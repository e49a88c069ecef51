"""Transfer learning: pretrained weights from any source, head and input adaptation, freezing.

``load_pretrained(model, path)`` takes our ``.safetensors`` or run directory, or a torchvision or
timm ``state_dict`` (``.pth``/``.pt`` read with ``torch.load(weights_only=True)``, or
``.safetensors``), maps its names to ours, re-initialises a classifier of another size, adapts the
first convolution to another channel count (as timm does) and refuses another architecture.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .errors import UserError

__all__ = ["LoadReport", "read_state_dict", "load_pretrained", "adapt_input_conv", "freeze", "freeze_bn",
           "trainable_table", "format_table", "stage_lr_scale"]


@dataclass
class LoadReport:
    loaded: List[str] = field(default_factory=list)
    reinitialised: List[str] = field(default_factory=list)
    adapted: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)  # in the file, not used by the model
    source: str = ""

    def summary(self) -> str:
        parts = [f"loaded {len(self.loaded)} tensors from {self.source}"]
        if self.adapted:
            parts.append(f"adapted {', '.join(self.adapted)} to the input channels")
        if self.reinitialised:
            parts.append(f"re-initialised {', '.join(self.reinitialised)}")
        if self.skipped:
            parts.append(f"skipped {len(self.skipped)} unused ({', '.join(self.skipped[:3])}"
                         f"{', ...' if len(self.skipped) > 3 else ''})")
        return "; ".join(parts)


def read_state_dict(path: Union[str, Path]) -> Tuple[Dict[str, torch.Tensor], Dict[str, object]]:
    """A state dict and its metadata from a run directory, ``.safetensors`` or ``.pth``/``.pt``."""
    from .train.checkpoint import load_state, load_weights, weights_path

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


def _classifier_keys(model: nn.Module) -> List[str]:
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    mods = head if isinstance(head, (list, tuple)) else [head]
    ids = {id(p) for m in mods if m is not None for p in m.parameters()}
    names = [n for n, p in model.named_parameters() if id(p) in ids]
    # Auxiliary classifiers' last layers are heads too.
    for n, m in model.named_modules():
        if "aux" in n and isinstance(m, nn.Linear) and hasattr(model, "aux_logits"):
            names += [f"{n}.{k}" for k, _ in m.named_parameters()]
    return names


def load_pretrained(model: nn.Module, path: Union[str, Path], verbose: bool = False) -> LoadReport:
    """Load weights from ``path`` into ``model``, adapting head and input channels.

    Raises:
        UserError: when the checkpoint is of another architecture (a tensor of the body is
            missing, of another shape, or left over), listing the mismatched keys.
    """
    from .compat import convert_torchvision_state_dict

    sd, meta = read_state_dict(path)
    own = model.state_dict()
    if not any(k in own for k in sd):
        converted = convert_torchvision_state_dict(model, sd)
        if any(k in own for k in converted):
            sd = converted
    name = getattr(model, "model_name", type(model).__name__)
    src_model = meta.get("model") if isinstance(meta, dict) else None

    heads = set(_classifier_keys(model))
    first_conv = next((k for k, v in own.items() if v.dim() == 4), None)
    report = LoadReport(source=str(path))
    new: Dict[str, torch.Tensor] = {}
    mismatched: List[str] = []
    for k, v in own.items():
        if k not in sd:
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
        else:
            mismatched.append(f"{k} {tuple(src.shape)} vs {tuple(v.shape)}")
    report.skipped = [k for k in sd if k not in own]
    # Tensors of the file that the model has no place for, beyond auxiliary heads: another network.
    extra = [k for k in report.skipped if "aux" not in k and not k.endswith("num_batches_tracked")]
    mismatched += [f"{k} unused" for k in extra]
    if mismatched:
        what = f" (it is a {src_model})" if src_model and src_model != name else ""
        more = f" (+{len(mismatched) - 3} more)" if len(mismatched) > 3 else ""
        raise UserError(f"{path} is a checkpoint of another architecture than {name}{what}: "
                        f"{len(mismatched)} tensors do not fit, e.g. {'; '.join(mismatched[:3])}{more}")
    model.load_state_dict(new, strict=False)
    report.reinitialised = sorted(set(report.reinitialised))
    report.loaded = sorted(new)
    if verbose:
        print(report.summary())
    model.pretrained_report = report
    return report


# ----------------------------------------------------------------------------------------- freezing


def _bn_eval(module: nn.Module, inputs) -> None:
    module.training = False  # running statistics stay as loaded, even in model.train()


def freeze_bn(model: nn.Module) -> int:
    """Keep every BatchNorm in eval mode with frozen affine parameters; returns how many."""
    n = 0
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            for p in m.parameters():
                p.requires_grad_(False)
            m.register_forward_pre_hook(_bn_eval)
            m.eval()
            n += 1
    return n


def freeze(model: nn.Module, until: Optional[str] = None, patterns: Sequence[str] = ()) -> List[str]:
    """Freeze the stages up to and including ``until``, and parameters matching ``patterns``.

    Stages are whole blocks from the model's ``stage_map`` (never half a residual block).
    Returns the names of the frozen parameters.
    """
    frozen: set = set()
    if until:
        stages = list(getattr(model, "stage_names", ()))
        if until not in stages:
            raise UserError(f"{getattr(model, 'model_name', '')} has no stage {until!r}; its stages are "
                            f"{', '.join(stages)}")
        if until == stages[-1]:
            raise UserError(f"--freeze-until {until} would freeze the classifier too; pick an earlier stage")
        for s in stages[: stages.index(until) + 1]:
            for m in model.stage_modules(s):
                frozen |= {id(p) for p in m.parameters()}
    names = []
    for n, p in model.named_parameters():
        if id(p) in frozen or any(fnmatch.fnmatchcase(n, pat) for pat in patterns):
            p.requires_grad_(False)
            names.append(n)
    if patterns and not names and not until:
        raise UserError(f"--freeze {' '.join(patterns)} matches no parameter; names look like "
                        f"{next(iter(dict(model.named_parameters())))}")
    return names


def trainable_table(model: nn.Module) -> List[Tuple[str, int, int]]:
    """(stage, trainable, frozen) parameter counts per stage of the model's ``stage_map``."""
    rows = []
    for s in getattr(model, "stage_names", ()):
        ps = {id(p): p for m in model.stage_modules(s) for p in m.parameters()}.values()
        rows.append((s, sum(p.numel() for p in ps if p.requires_grad), sum(p.numel() for p in ps if not p.requires_grad)))
    return rows


def format_table(rows: Iterable[Tuple[str, int, int]]) -> str:
    rows = list(rows)
    lines = [f"{'stage':<12}{'trainable':>14}{'frozen':>14}"]
    for s, t, f in rows:
        lines.append(f"{s:<12}{t:>14,}{f:>14,}")
    lines.append(f"{'total':<12}{sum(r[1] for r in rows):>14,}{sum(r[2] for r in rows):>14,}")
    return "\n".join(lines)


def stage_lr_scale(model: nn.Module, decay: float) -> Dict[str, float]:
    """Discriminative learning rates: the head gets 1, each earlier stage ``decay`` times the next."""
    stages = list(getattr(model, "stage_names", ()))
    out: Dict[str, float] = {}
    for i, s in enumerate(reversed(stages)):
        for path in model.stage_map[s]:
            out[path + "."] = decay ** i
    return out
