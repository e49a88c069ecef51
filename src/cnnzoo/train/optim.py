"""Optimisers and learning-rate schedules.

The schedule is a pure function of the optimisation step (``lr_factor``), so a resumed run needs
only its step count to continue on exactly the same curve.
"""

from __future__ import annotations

import math
from typing import Iterable, List

import torch
from torch import nn

from typing import TYPE_CHECKING

from ..choices import OPTIMIZERS

if TYPE_CHECKING:  # the config imports the choices below; the types are only for the reader
    from .config import OptimConfig, ScheduleConfig


__all__ = ["param_groups", "build_optimizer", "lr_factor", "set_lr"]


def param_groups(model: nn.Module, weight_decay: float, decay_norm_and_bias: bool = False,
                 lr_scale: dict | None = None) -> List[dict]:
    """Parameter groups with no weight decay on biases and normalisation weights (1-D tensors).

    ``lr_scale`` maps a parameter-name prefix to a learning-rate multiplier (discriminative
    fine-tuning); the longest matching prefix wins.
    """
    groups: dict = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        no_decay = p.ndim <= 1 and not decay_norm_and_bias
        scale = 1.0
        if lr_scale:
            match = max((k for k in lr_scale if name.startswith(k)), key=len, default=None)
            scale = lr_scale[match] if match is not None else 1.0
        key = (no_decay, scale)
        if key not in groups:
            groups[key] = {"params": [], "weight_decay": 0.0 if no_decay else weight_decay, "lr_scale": scale}
        groups[key]["params"].append(p)
    return list(groups.values())


def build_optimizer(params: Iterable[dict], cfg: "OptimConfig") -> torch.optim.Optimizer:
    groups = list(params)
    if not groups:
        raise ValueError("no trainable parameters: everything is frozen")
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    if cfg.name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)
    if cfg.name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=cfg.lr, alpha=cfg.alpha, eps=cfg.eps, momentum=cfg.momentum)
    raise ValueError(f"unknown optimiser {cfg.name!r}; use one of {', '.join(OPTIMIZERS)}")


def lr_factor(step: int, steps_per_epoch: int, epochs: int, cfg: "ScheduleConfig") -> float:
    """Multiplier of the peak learning rate at optimisation step ``step`` (0-based)."""
    total = max(1, steps_per_epoch * epochs)
    epoch = step / max(1, steps_per_epoch)  # fractional epoch
    warm = cfg.warmup_epochs * steps_per_epoch
    if cfg.name != "onecycle" and warm > 0 and step < warm:
        return cfg.warmup_start + (1.0 - cfg.warmup_start) * step / warm
    if cfg.name == "constant":
        return 1.0
    if cfg.name == "step":
        return cfg.gamma ** math.floor((epoch - cfg.warmup_epochs) / cfg.step_size)
    if cfg.name == "multistep":
        return cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
    if cfg.name == "exponential":
        return cfg.gamma ** max(0.0, epoch - cfg.warmup_epochs)
    if cfg.name == "cosine":
        t = min(1.0, (step - warm) / max(1.0, total - warm))
        return cfg.min_lr + (1.0 - cfg.min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))
    if cfg.name == "onecycle":
        # Smith & Topin 2019, cosine phases: lr/25 -> lr over pct_start, then down to lr/25e4.
        up = max(1.0, cfg.pct_start * total)
        start, end = 1 / 25, 1 / 25e4
        if step < up:
            return start + (1 - start) * 0.5 * (1 - math.cos(math.pi * step / up))
        t = min(1.0, (step - up) / max(1.0, total - up))
        return end + (1 - end) * 0.5 * (1 + math.cos(math.pi * t))
    raise ValueError(f"unknown schedule {cfg.name!r}")


def set_lr(optimizer: torch.optim.Optimizer, base_lr: float, factor: float) -> float:
    for g in optimizer.param_groups:
        g["lr"] = base_lr * factor * g.get("lr_scale", 1.0)
    return base_lr * factor
