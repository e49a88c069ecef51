"""Optimisers, sharpness-aware minimisation and learning-rate schedules.

The schedule is a pure function of the optimisation step (``lr_factor``), so a resumed run needs
only its step count to continue on exactly the same curve; the plateau schedule is a pure function of the
step and of the validation history the checkpoint stores (``plateau_steps``).

:class:`SAM` (Foret, Kleiner, Mobahi, Neyshabur, "Sharpness-Aware Minimization for Efficiently Improving
Generalization", ICLR 2021, https://arxiv.org/abs/2010.01412) wraps any base optimiser: the trainer's one
``train_step`` computes the gradient, calls :meth:`SAM.perturb` (w -> w + rho g / ||g||, the first-order worst
point of the rho-ball, eq. 2), computes the gradient again there (BatchNorm statistics left as they are:
:func:`bn_stats_frozen`), calls :meth:`SAM.restore` and steps the base optimiser with that gradient (eq. 3).

:class:`Lookahead` is the variant airbench (Jordan 2024, https://arxiv.org/abs/2404.00498) trains with (after Zhang,
Lucas, Hinton, Ba, "Lookahead Optimizer: k steps forward, 1 step back", NeurIPS 2019): every few steps the trained
weights are reset to a slow copy of them, which follows them closely early in the run and averages over more and
more of their recent past towards its end (a decay growing with the cube of the run's progress).
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Dict, Iterable, Iterator, List, NamedTuple, Sequence

import torch
from torch import nn

from typing import TYPE_CHECKING

from ..choices import OPTIMIZERS
from ..errors import ParamError
from ..layers.norm import NORM_LAYERS

if TYPE_CHECKING:  # the config imports the choices below; the types are only for the reader
    from .config import OptimConfig, ScheduleConfig


__all__ = ["param_groups", "build_optimizer", "lr_factor", "set_lr", "SAM", "bn_stats_frozen", "Lookahead",
           "PlateauStep", "plateau_steps", "plateau_factor"]


def param_groups(model: nn.Module, weight_decay: float, decay_norm_and_bias: bool = False,
                 lr_scale: dict | None = None, norm_bias_lr_scale: float = 1.0) -> List[dict]:
    """Parameter groups with no weight decay on biases and normalisation weights (1-D tensors).

    ``lr_scale`` maps a module or parameter path (``"layer1"``, ``"class_token"``; a trailing dot, as
    :func:`~cnnzoo.train.freeze.stage_lr_scale` writes them, is the same path) to a learning-rate multiplier
    (discriminative fine-tuning). A path covers the parameter of exactly that name (ViT's top-level
    ``class_token``) and everything under ``path.``, never a longer name that merely starts alike (``conv1`` is not
    ``conv10.weight``); the longest covering path wins. With ``lr_scale`` every trainable parameter must be covered:
    one left out would silently train at the full rate, so it is an error.

    ``norm_bias_lr_scale`` multiplies the rate of normalisation layers' biases on top of that (airbench: 64). It is
    kept in the group's ``lr_scale``, the factor :func:`set_lr` applies at every step, so every schedule keeps it;
    a group with weight decay gets its decay divided by the same number, so that lr x weight decay per step (the
    shrinking a step applies) stays as it was.
    """
    paths = {str(k).rstrip("."): float(v) for k, v in (lr_scale or {}).items()}
    norm_biases = {id(m.bias) for m in model.modules() if isinstance(m, NORM_LAYERS) and m.bias is not None}
    groups: dict = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        no_decay = p.ndim <= 1 and not decay_norm_and_bias
        scale = 1.0
        if paths:
            match = max((k for k in paths if name == k or name.startswith(k + ".")), key=len, default=None)
            if match is None:
                raise ValueError(f"parameter {name!r} is in no stage of the learning-rate scales "
                                 f"({', '.join(sorted(paths)[:6])}...); the model's stage_map must cover it")
            scale = paths[match]
        boost = float(norm_bias_lr_scale) if id(p) in norm_biases else 1.0
        key = (no_decay, scale, boost)
        if key not in groups:
            groups[key] = {"params": [], "weight_decay": 0.0 if no_decay else weight_decay / boost,
                           "lr_scale": scale * boost}
        groups[key]["params"].append(p)
    return list(groups.values())


def build_optimizer(params: Iterable[dict], cfg: "OptimConfig") -> torch.optim.Optimizer:
    """The optimiser ``cfg.name`` over ``params``, wrapped in :class:`SAM` when ``cfg.sam``."""
    base = _base_optimizer(list(params), cfg)
    return SAM(base, cfg.sam_rho) if getattr(cfg, "sam", False) else base


def fused_kwargs(params: Iterable[torch.Tensor]) -> Dict[str, bool]:
    """``{"fused": True}`` where PyTorch's fused update can serve ``params`` (floating tensors, all on the CPU or all
    on one CUDA device), else ``{}``: the update the trainer and ``cnnzoo benchmark`` use for SGD, Adam and AdamW.

    PyTorch's default on the CPU is a Python loop over the tensors; the fused kernel measured 5.4x faster for
    vgg11_bn's 133M parameters (292 -> 54 ms an SGD step, 18% of its training step at 3x64x64, batch 64) and 1.8x
    for resnet18's (benchmarks/RESULTS.md). It computes the same update, up to the rounding of fused multiply-adds.
    """
    devices = set()
    for p in params:
        if not p.is_floating_point() or p.device.type not in ("cpu", "cuda"):
            return {}
        devices.add(p.device)
    return {"fused": True} if len(devices) == 1 else {}


def _base_optimizer(groups: List[dict], cfg: "OptimConfig") -> torch.optim.Optimizer:
    if not groups:
        raise ValueError("no trainable parameters: everything is frozen")
    fused = fused_kwargs(p for g in groups for p in g["params"])  # SGD, Adam and AdamW have the fused kernel
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0,
                               **fused)
    if cfg.name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, **fused)
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, **fused)
    if cfg.name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=cfg.lr, alpha=cfg.alpha, eps=cfg.eps, momentum=cfg.momentum)
    raise ValueError(f"unknown optimiser {cfg.name!r}; use one of {', '.join(OPTIMIZERS)}")


class SAM(torch.optim.Optimizer):
    """Sharpness-aware minimisation around ``base`` (any ``torch.optim`` optimiser), with radius ``rho``.

    One update, as the trainer's ``train_step`` makes it::

        loss(model(x), y).backward()     # g = grad L(w)
        sam.perturb()                    # w <- w + e,  e = rho * g / ||g||  (one norm over every parameter)
        loss(model(x), y).backward()     # g' = grad L(w + e)  (zero the gradients first)
        sam.restore()                    # back to w (a copy of it, exactly)
        sam.step()                       # the base optimiser's step with g' (clip g' first, if clipping)

    ``param_groups`` and ``state`` are the base optimiser's own objects, so learning-rate schedules, gradient
    clipping and a gradient scaler (fp16) act on the base optimiser through this one. :meth:`perturb` is invariant
    to a gradient scaler's factor (``g / ||g||``), so it takes the still-scaled gradient; a non-finite gradient
    gives no perturbation, and the scaler then skips the step as it would without SAM. ``state_dict`` is the base
    optimiser's (the perturbation lives only inside one step), so checkpoints of SAM and plain runs have the
    same form. Under DistributedDataParallel the first gradient is each replica's own (the trainer computes it
    without synchronising): the paper's m-sharpness, with m the per-replica batch.
    """

    def __init__(self, base: torch.optim.Optimizer, rho: float = 0.05) -> None:
        if not isinstance(base, torch.optim.Optimizer):
            raise ParamError("base", type(base).__name__, "is not a torch.optim.Optimizer")
        if not (isinstance(rho, (int, float)) and rho >= 0 and math.isfinite(rho)):
            raise ParamError("rho", rho, "is SAM's neighbourhood radius: a number >= 0 (0.05 in the paper)")
        self.base, self.rho = base, float(rho)
        super().__init__(base.param_groups, base.defaults)
        self.param_groups, self.state = base.param_groups, base.state  # one set, shared
        self._perturbation: List[tuple] = []  # (parameter, its value before perturb) within one step

    def _params(self) -> List[torch.Tensor]:
        return [p for g in self.param_groups for p in g["params"] if p.grad is not None]

    @torch.no_grad()
    def perturb(self) -> None:
        """Move to the first-order worst point of the rho-ball: ``w + rho * g / ||g||`` (eq. 2 with p = 2)."""
        if self._perturbation:
            raise RuntimeError("SAM.perturb called twice without restore")
        params = self._params()
        if not params:
            return
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad.float()) for p in params]))
        # On the device, no sync: 0 for a zero or non-finite gradient (the scaler then skips the step).
        scale = torch.where(torch.isfinite(norm) & (norm > 0), self.rho / norm.clamp_min(1e-12), 0.0)
        for p in params:
            e = torch.nan_to_num(p.grad.float() * scale, nan=0.0, posinf=0.0, neginf=0.0).to(p.dtype)
            self._perturbation.append((p, p.detach().clone()))
            p.add_(e)

    @torch.no_grad()
    def restore(self) -> None:
        """Back to ``w`` exactly (a copy, not ``(w + e) - e``), keeping the gradient computed at the perturbed point."""
        for p, w in self._perturbation:
            p.copy_(w)
        self._perturbation = []

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        if self._perturbation:
            raise RuntimeError("SAM.step called at the perturbed point: call restore() first")
        return self.base.step(closure)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base.zero_grad(set_to_none=set_to_none)

    def state_dict(self):  # type: ignore[override]
        return self.base.state_dict()

    def load_state_dict(self, state_dict) -> None:  # type: ignore[override]
        self.base.load_state_dict(state_dict)
        self.param_groups, self.state = self.base.param_groups, self.base.state

    def __repr__(self) -> str:
        return f"SAM(rho={self.rho}, base={self.base!r})"


@contextlib.contextmanager
def bn_stats_frozen(model: nn.Module) -> Iterator[None]:
    """BatchNorm running statistics (and batch counts) untouched by the forward passes inside the block.

    SAM's second forward pass sees the same batch at the perturbed weights; its statistics would count the
    batch twice, and at weights the network never has.
    """
    saved = []
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats and m.training:
            saved.append((m, m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone()))
            m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum, count in saved:
            m.momentum = momentum
            if count is not None:
                m.num_batches_tracked.copy_(count)


class Lookahead:
    """airbench's lookahead over a model's weights and BatchNorm statistics.

    A slow copy of every floating-point entry of ``model.state_dict()`` (parameters and running statistics, not
    the integer batch counts) starts as the model is. After every ``every``-th optimisation step t (t counted from
    1), with d = ``decay`` x (t / ``total_steps``)^3::

        slow <- slow + (1 - d) (fast - slow)      # slow.lerp_(fast, 1 - d)
        fast <- slow

    Early in the run d is near 0 (the slow copy follows the trained weights); by the end it is ``decay``, an
    average over the last updates. :meth:`finish` ends the run on the slow weights. A frozen parameter
    (``requires_grad=False``) is left alone, so that one frozen mid-run (``train.freeze_after``) keeps the value
    it had then. :meth:`state` and :meth:`load` carry the slow copy through a checkpoint: with the step count,
    a resumed run continues exactly.
    """

    def __init__(self, model: nn.Module, every: int, decay: float, total_steps: int) -> None:
        self.every, self.decay, self.total_steps = int(every), float(decay), int(total_steps)
        self.slow = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    def _pairs(self, model: nn.Module) -> List[tuple]:
        """(slow, fast) for every entry but frozen parameters; ``fast`` is the model's own tensor."""
        frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
        fast = model.state_dict()
        return [(slow, fast[k]) for k, slow in self.slow.items() if k not in frozen]

    @torch.no_grad()
    def step(self, model: nn.Module, steps_taken: int) -> None:
        """After optimisation step number ``steps_taken`` (1-based): the update, when it is an ``every``-th."""
        if steps_taken % self.every:
            return
        d = self.decay * (steps_taken / self.total_steps) ** 3
        for slow, fast in self._pairs(model):
            slow.lerp_(fast, 1 - d)
            fast.copy_(slow)

    @torch.no_grad()
    def finish(self, model: nn.Module) -> None:
        """The model takes the slow weights (airbench's last update, with d = 1)."""
        for slow, fast in self._pairs(model):
            fast.copy_(slow)

    def state(self) -> Dict[str, torch.Tensor]:
        return {k: v.cpu() for k, v in self.slow.items()}

    def load(self, state: Dict[str, torch.Tensor]) -> None:
        for k, v in self.slow.items():
            v.copy_(state[k])


def lr_factor(step: int, steps_per_epoch: int, epochs: int, cfg: "ScheduleConfig", plateau: float = 1.0) -> float:
    """Multiplier of the peak learning rate at optimisation step ``step`` (0-based).

    ``plateau`` is the plateau schedule's factor for the current epoch (:func:`plateau_factor` of the validation
    history so far); the other schedules ignore it.
    """
    total = max(1, steps_per_epoch * epochs)
    epoch = step / max(1, steps_per_epoch)  # fractional epoch
    warm = cfg.warmup_epochs * steps_per_epoch
    if cfg.name != "onecycle" and warm > 0 and step < warm:
        return cfg.warmup_start + (1.0 - cfg.warmup_start) * step / warm
    if cfg.name == "constant":
        return 1.0
    if cfg.name == "plateau":
        return plateau
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


class PlateauStep(NamedTuple):
    """The plateau schedule after one epoch: the factor the next epoch trains with, and why."""

    factor: float  # of the peak learning rate, for the next epoch
    reduced: bool  # this epoch's validation made it drop
    bad_epochs: int  # epochs without improvement that led to it (0 when not reduced)


def plateau_steps(values: Sequence[float], cfg: "ScheduleConfig") -> List[PlateauStep]:
    """The plateau schedule over a validation history (``values[i]``: the metric after epoch ``i + 1``).

    torch's ``ReduceLROnPlateau`` (mode ``max`` for ``val_acc``, ``min`` for ``val_loss``; threshold mode ``rel``),
    replayed from the history instead of held as state, so that a resumed run (whose checkpoint stores the
    history) continues on exactly the same rates: an epoch improves when it beats the best so far by more than
    ``threshold`` (relative); after more than ``patience`` epochs without improvement the factor is multiplied by
    ``gamma`` (not below ``min_lr``, a fraction of the peak rate), and the ``cooldown`` epochs after a reduction
    count no bad epochs.
    """
    maximise = cfg.plateau_metric == "val_acc"
    best = -math.inf if maximise else math.inf
    bad = cooldown = 0
    factor, out = 1.0, []
    for v in values:
        v = float(v)
        better = v > best * (1 + cfg.threshold) if maximise else v < best * (1 - cfg.threshold)  # torch's rel mode
        if better:
            best, bad = v, 0
        else:
            bad += 1
        if cooldown > 0:
            cooldown -= 1
            bad = 0
        reduced, count = False, 0
        if bad > cfg.patience:
            new = max(factor * cfg.gamma, cfg.min_lr)
            reduced, count = new < factor, bad
            factor, cooldown, bad = new, cfg.cooldown, 0
        out.append(PlateauStep(factor, reduced, count))
    return out


def plateau_factor(history: Sequence[Dict[str, Any]], cfg: "ScheduleConfig") -> float:
    """The plateau factor for the epoch after ``history`` (rows with ``val_acc`` / ``val_loss``); 1 before any."""
    steps = plateau_steps([r[cfg.plateau_metric] for r in history], cfg)
    return steps[-1].factor if steps else 1.0


def set_lr(optimizer: torch.optim.Optimizer, base_lr: float, factor: float) -> float:
    for g in optimizer.param_groups:
        g["lr"] = base_lr * factor * g.get("lr_scale", 1.0)
    return base_lr * factor
