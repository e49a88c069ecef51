"""What trains: freezing stages and parameters, frozen BatchNorm, discriminative learning rates.

Stages come from the model's own ``stage_map`` (whole blocks, never half a residual block), so nothing here
names an architecture.
"""

from __future__ import annotations

import fnmatch
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from torch import nn

from ..errors import ParamError

__all__ = ["freeze", "freeze_bn", "trainable_table", "format_table", "stage_lr_scale"]


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
