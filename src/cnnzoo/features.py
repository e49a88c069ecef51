"""Multi-level feature maps of any model with stages: ``create_model(name, features_only=True, out_indices=...)``.

As timm's ``features_only`` (and torchvision's ``create_feature_extractor``): the model returns a list of feature
maps, one per stage it ends, from the stem to the last stage, and ``model.feature_info`` says each one's channels,
reduction (input size / map size) and the module that produces it.

Where a stage's features are taken, read from the model itself, so no family needs code of its own: the leaf
modules that ``forward_features`` runs are traced once (on the meta device), each attributed to the stage of the
model's ``stage_map`` that owns it. A stage's feature map is what enters the first module of the next stage (so
activations and pooling that follow the stage's last layer are included, as in the network's own data flow); the
last stage's is the output of ``forward_features``. Stages that end in vectors (the fully connected layers of
AlexNet, VGG, LeNet) and the classifier are not feature maps and are left out. ``reduction`` is the nominal stride
(a power of two), as timm reports it.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from .errors import ParamError

__all__ = ["FeatureInfo", "FeatureExtractor", "feature_points"]


class FeatureInfo(list):
    """One dict per returned feature map: ``num_chs``, ``reduction``, ``module`` (where it is taken), ``stage``.

    timm's accessors work on it: ``channels()``, ``reduction()``, ``module_name()``.
    """

    def channels(self) -> List[int]:
        return [f["num_chs"] for f in self]

    def reduction(self) -> List[int]:
        return [f["reduction"] for f in self]

    def module_name(self) -> List[str]:
        return [f["module"] for f in self]

    def stages(self) -> List[str]:
        return [f["stage"] for f in self]


def _stage_of(stage_map: Dict[str, Tuple[str, ...]]):
    prefixes = [(p, s) for s, paths in stage_map.items() for p in paths]

    def find(name: str) -> Optional[str]:
        for p, s in prefixes:
            if name == p or name.startswith(p + "."):
                return s
        return None

    return find


def _trace(model: nn.Module, size: Tuple[int, int, int]) -> Tuple[List[Tuple[str, torch.Size]], torch.Size]:
    """The leaf modules ``forward_features`` runs, in order, with the shape entering each; and the output shape."""
    order: List[Tuple[str, torch.Size]] = []
    hooks = []
    for name, m in model.named_modules():
        if name and not any(True for _ in m.children()):
            hooks.append(m.register_forward_pre_hook(
                lambda mod, args, name=name: order.append((name, args[0].shape)) if args and torch.is_tensor(args[0])
                else None))
    try:
        with torch.no_grad():
            out = model.forward_features(torch.zeros(1, *size, device="meta"))
    finally:
        for h in hooks:
            h.remove()
    return order, out.shape


def feature_points(model: nn.Module, input_size: Tuple[int, int, int],
                   meta_twin: Optional[nn.Module] = None) -> FeatureInfo:
    """Every feature map the model offers, from a trace at ``input_size`` (C, H, W) on the meta device.

    ``module`` is the module whose input is the map, or ``""`` for the output of ``forward_features``.
    ``meta_twin`` is the same architecture built on the meta device (else a copy of ``model`` is moved there).
    """
    stage_map = getattr(model, "stage_map", {})
    stage_of = _stage_of(stage_map)
    meta = meta_twin if meta_twin is not None else _meta_copy(model)
    order, out_shape = _trace(meta, input_size)
    points: List[Dict[str, Any]] = []
    current: Optional[str] = None
    for name, shape in order:
        stage = stage_of(name)
        if stage is None or stage == current or stage == "head":
            continue
        if current is not None:
            points.append({"stage": current, "module": name, "shape": shape})
        current = stage
    if current is not None:
        points.append({"stage": current, "module": "", "shape": out_shape})
    h = input_size[1]
    info = FeatureInfo()
    for p in points:
        if len(p["shape"]) == 4:
            # The nominal stride, a power of two: unpadded layers make 227 / 6 = 37.8 mean 32.
            ratio = h / max(1, int(p["shape"][2]))
            info.append({"num_chs": int(p["shape"][1]), "reduction": 2 ** max(0, round(math.log2(ratio))),
                         "module": p["module"], "stage": p["stage"]})
    return info


def _meta_copy(model: nn.Module) -> nn.Module:
    """The same architecture on the meta device (for tracing shapes without touching the real weights)."""
    import copy

    if next(model.parameters(), torch.empty(0)).device.type == "meta":
        return model
    return copy.deepcopy(model).to("meta").eval()


class FeatureExtractor(nn.Module):
    """A model that returns its stages' feature maps (a list, shallow to deep) instead of logits.

    Args:
        model: a cnnzoo model with ``stage_map`` and ``forward_features``.
        out_indices: which of the model's feature maps to return (negative counts from the deepest); default all.
        input_size: (C, H, W) at which the reductions are measured (default: the model's registered input).
        meta_twin: the same architecture built on the meta device, for the trace (default: a copy of ``model``).
    """

    def __init__(self, model: nn.Module, out_indices: Optional[Sequence[int]] = None,
                 input_size: Optional[Tuple[int, int, int]] = None, meta_twin: Optional[nn.Module] = None) -> None:
        super().__init__()
        self.model = model
        name = getattr(model, "model_name", "") or type(model).__name__
        size = tuple(input_size) if input_size else (model.in_chans, 224, 224)
        points = feature_points(model, size, meta_twin)  # type: ignore[arg-type]
        if not points:
            raise ParamError("features_only", True, f"is not available for {name}: it has no stages that end in "
                             "feature maps (its features are tokens or vectors)")
        n = len(points)
        indices = list(range(n)) if out_indices is None else [int(i) for i in out_indices]
        bad = [i for i in indices if not -n <= i < n]
        if bad or not indices:
            raise ParamError("out_indices", tuple(indices), f"is out of range: {name} has {n} feature maps "
                             f"(indices 0..{n - 1}: {', '.join(p['stage'] for p in points)})")
        self.out_indices = tuple(i % n for i in indices)
        self.feature_info = FeatureInfo(points[i] for i in self.out_indices)
        self.model_name = getattr(model, "model_name", "")
        self.in_chans = model.in_chans
        self._captured: Dict[int, torch.Tensor] = {}
        for k, p in enumerate(self.feature_info):
            if p["module"]:
                model.get_submodule(p["module"]).register_forward_pre_hook(self._capture(k))

    def _capture(self, k: int):
        def hook(module: nn.Module, args) -> None:
            if self._active:
                self._captured[k] = args[0]
        return hook

    _active = False

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        self.model.check_input(x)
        self._captured = {}
        self._active = True
        try:
            out = self.model.forward_features(x)
        finally:
            self._active = False
        return [self._captured[k] if p["module"] else out for k, p in enumerate(self.feature_info)]
