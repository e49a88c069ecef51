"""What trains: freezing stages and parameters (from the start or after some epochs), frozen BatchNorm (whole, or
its scale), BatchNorm's momentum, discriminative learning rates.

Stages come from the model's own ``stage_map`` (whole blocks, never half a residual block), so nothing here
names an architecture.
"""

from __future__ import annotations

import fnmatch
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..errors import ParamError

__all__ = ["freeze", "freeze_bn", "freeze_bn_scale", "set_bn_momentum", "freeze_after", "trainable_table",
           "format_table", "stage_lr_scale"]


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


def freeze_bn_scale(model: nn.Module) -> int:
    """Every BatchNorm's scale (weight) at 1 and frozen, its bias still trained, as airbench's BatchNorm has it;
    returns how many. Called before the optimiser is built, which then leaves the scales out."""
    n = 0
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None:
            with torch.no_grad():
                m.weight.fill_(1.0)
            m.weight.requires_grad_(False)
            n += 1
    return n


def set_bn_momentum(model: nn.Module, momentum: float) -> int:
    """Every BatchNorm's PyTorch ``momentum`` (the new batch's share of the running statistics); returns how many."""
    n = 0
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = momentum
            n += 1
    return n


def freeze_after(model: nn.Module, schedule: Dict[str, int], epochs_done: int) -> List[str]:
    """Freeze the parameters matching a wildcard of ``schedule`` (``{"stem.0.bias": 3}``) whose epoch count
    ``epochs_done`` has reached; returns the names newly frozen.

    A pure function of the epoch count, so a resumed run freezes exactly what the uninterrupted one had frozen
    at that point. The parameters stay in the optimiser: without a gradient (the trainer zeroes gradients to
    None) SGD, Adam and the others skip them, momentum and weight decay included.
    """
    names = dict(model.named_parameters())
    newly = []
    for pattern, after in schedule.items():
        matched = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not matched:
            raise ParamError("freeze_after", pattern, f"matches no parameter; names look like {next(iter(names))}")
        if epochs_done < after:
            continue
        for n in matched:
            if names[n].requires_grad:
                names[n].requires_grad_(False)
                newly.append(n)
    return newly


def freeze(model: nn.Module, until: Optional[str] = None, patterns: Sequence[str] = ()) -> List[str]:
    """Freeze the stages up to and including ``until``, and parameters matching ``patterns``.

    Stages are whole blocks from the model's ``stage_map`` (never half a residual block).
    Returns the names of the frozen parameters.
    """
    frozen: set = set()
    if until:
        stages = list(getattr(model, "stage_names", ()))
        if until not in stages:
            raise ParamError("freeze_until", until, f"is not a stage of {getattr(model, 'model_name', '') or 'the model'}; "
                             f"its stages are {', '.join(stages)}")
        if until == stages[-1]:
            raise ParamError("freeze_until", until, "would freeze the classifier too; pick an earlier stage")
        for s in stages[: stages.index(until) + 1]:
            for m in model.stage_modules(s):
                frozen |= {id(p) for p in m.parameters()}
    names = []
    for n, p in model.named_parameters():
        if id(p) in frozen or any(fnmatch.fnmatchcase(n, pat) for pat in patterns):
            p.requires_grad_(False)
            names.append(n)
    if patterns and not names and not until:
        raise ParamError("freeze", " ".join(patterns), f"matches no parameter; names look like "
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
