"""Fold BatchNorm into the convolution before it, for inference and export.

In eval mode a BatchNorm is a fixed per-channel affine map, ``y = (x - mean) / sqrt(var + eps) * gamma + beta``,
so when it reads a convolution's output and nothing else reads that output, the pair is one convolution
with rescaled weights and a new bias (PyTorch's ``fuse_conv_bn_eval`` does the arithmetic). The folded
model computes the same function with one layer less per pair.

Pairs are found from the data flow, not from names: the model is traced and a ``Conv2d`` is folded
with the ``BatchNorm2d`` that is the only user of its output. A BatchNorm that reads anything else
(DenseNet's pre-activation ``norm -> relu -> conv``, a norm after a sum) stays. The tracers, in order:

1. ``torch.fx.symbolic_trace`` of the model; for a :class:`~cnnzoo.ZooModel`, whose ``forward`` checks
   the input shape in Python (symbolic tracing cannot follow that), of ``forward_features`` then
   ``forward_head``, which is what ``forward`` computes in eval mode;
2. ``torch.export`` on a probe input, for forwards with more Python shape logic (it sees real shapes);
3. a structural scan: adjacent ``Conv2d`` / ``BatchNorm2d`` children of a plain ``nn.Sequential``, and
   the named pairs the families use (``conv1``/``bn1``, ``conv``/``bn``) where a probe forward shows
   the BatchNorm reading exactly that convolution's output.

Only modules the eval forward runs are traced, so training-only branches (GoogLeNet's and Inception
v3's auxiliary classifiers) keep their BatchNorms; they are not part of an exported graph either.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch
import torch.fx
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ["FoldReport", "fold_batchnorm", "fold_batchnorm_report", "find_conv_bn_pairs"]


@dataclass
class FoldReport:
    """What :func:`fold_batchnorm_report` did.

    Attributes:
        pairs: ``(conv path, batchnorm path)`` of every folded pair, in graph order.
        method: ``"fx"`` (the whole forward traced), ``"fx-body"`` (traced through
            ``forward_features``/``forward_head``), ``"export"`` (``torch.export`` on a probe input)
            or ``"scan"`` (no trace worked; structural scan); ``"none"`` when the model has no
            BatchNorm2d with running statistics, so nothing was traced.
        trace_error: why the tracers before ``method`` failed.
    """

    pairs: List[Tuple[str, str]] = field(default_factory=list)
    method: str = "fx"
    trace_error: str = ""

    @property
    def folded(self) -> int:
        return len(self.pairs)


class _Body(nn.Module):
    """``forward_head(forward_features(x))`` of a model: its eval forward without the Python input check."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(x))


def _graph_pairs(graph: torch.fx.Graph, modules: Dict[str, nn.Module], prefix: str = "") -> List[Tuple[str, str]]:
    """Conv2d -> BatchNorm2d pairs where the BatchNorm is the only user of the convolution's output."""
    calls: Dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules.get(node.target), nn.Conv2d):
            continue
        users = list(node.users)
        if len(users) != 1:
            continue
        user = users[0]
        if user.op != "call_module" or not isinstance(modules.get(user.target), nn.BatchNorm2d):
            continue
        if user.args != (node,) or user.kwargs:
            continue
        # A module called at two places would be folded for both; keep only single-use pairs.
        if calls[node.target] != 1 or calls[user.target] != 1:
            continue
        pairs.append((node.target[len(prefix):], user.target[len(prefix):]))
    return pairs


def _fx_pairs(model: nn.Module) -> Tuple[List[Tuple[str, str]], str]:
    """Pairs from a ``torch.fx`` trace of the model, or else of its body; raises when neither traces."""
    try:
        gm = torch.fx.symbolic_trace(model)
        return _graph_pairs(gm.graph, dict(gm.named_modules())), "fx"
    except Exception as first:  # noqa: BLE001 - any tracing failure means "try another way"
        if not (hasattr(model, "forward_features") and hasattr(model, "forward_head")):
            raise
        try:
            body = _Body(model)
            graph = torch.fx.Tracer().trace(body)
        except Exception:  # noqa: BLE001
            raise first from None
        return _graph_pairs(graph, dict(body.named_modules()), prefix="model."), "fx-body"


def _export_pairs(model: nn.Module) -> List[Tuple[str, str]]:
    """Pairs from ``torch.export`` on a probe input: it follows Python code that reads static shapes.

    Each graph node records the module stack it was called from; a convolution node attributed to a
    ``Conv2d`` whose only user is a batch-norm node attributed to a ``BatchNorm2d`` is a pair.
    """
    x = _probe_input(model)
    if x is None:
        raise RuntimeError("no probe input: the model has no in_chans")
    graph = torch.export.export(model, (x,), strict=False).graph

    def owner(node: torch.fx.Node) -> Tuple[str, type]:
        stack = node.meta.get("nn_module_stack") or {}
        if not stack:
            return "", type(None)
        path = list(stack.values())[-1][0]
        return path, type(model.get_submodule(path)) if path else type(model)

    ops: Dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_function":
            path = owner(node)[0]
            ops[path] = ops.get(path, 0) + 1
    pairs = []
    for node in graph.nodes:
        if node.op != "call_function" or "conv" not in str(node.target):
            continue
        conv_path, conv_type = owner(node)
        users = list(node.users)
        if not issubclass(conv_type, nn.Conv2d) or len(users) != 1 or "batch_norm" not in str(users[0].target):
            continue
        bn_path, bn_type = owner(users[0])
        if issubclass(bn_type, nn.BatchNorm2d) and users[0].args[0] is node and ops[conv_path] == ops[bn_path] == 1:
            pairs.append((conv_path, bn_path))
    return pairs


def _probe_input(model: nn.Module) -> Optional[torch.Tensor]:
    """A small input the model accepts, for checking named pairs; ``None`` when its size is unknown."""
    chans = getattr(model, "in_chans", None)
    if not chans:
        return None
    from .builder import min_input_side

    size = max(min_input_side(model), 32)
    name = getattr(model, "model_name", "")
    if name:
        from .builder import model_info
        from .registry import is_model

        if is_model(name):
            size = max(size, min(model_info(name).input_size[-1], 64))
    param = next(model.parameters(), None)
    dtype = param.dtype if param is not None else torch.float32
    device = param.device if param is not None else "cpu"
    return torch.randn(1, chans, size, size, dtype=dtype, device=device)


def _fed_directly(model: nn.Module, candidates: List[Tuple[str, str]]) -> List[Tuple[str, str]]:
    """The candidate pairs whose BatchNorm, in a probe forward, reads the very tensor the convolution wrote."""
    x = _probe_input(model)
    if x is None or not candidates:
        return []
    # Hold the tensors themselves (not their ids, which Python reuses once a tensor is freed).
    outputs: Dict[str, torch.Tensor] = {}
    inputs: Dict[str, torch.Tensor] = {}

    def record(store: Dict[str, torch.Tensor], key: str, value: object) -> None:
        if key not in store and isinstance(value, torch.Tensor):
            store[key] = value

    handles = []
    for conv, bn in candidates:
        handles.append(model.get_submodule(conv).register_forward_hook(
            lambda m, a, out, key=conv: record(outputs, key, out)))
        handles.append(model.get_submodule(bn).register_forward_pre_hook(
            lambda m, a, key=bn: record(inputs, key, a[0] if a else None)))
    try:
        with torch.no_grad():
            model(x)
    except Exception:  # noqa: BLE001 - an unrunnable probe proves nothing: fold none of them
        return []
    finally:
        for h in handles:
            h.remove()
    return [(c, b) for c, b in candidates if c in outputs and inputs.get(b) is outputs[c]]


def _scan_pairs(model: nn.Module) -> List[Tuple[str, str]]:
    """Structural pairs for a model that does not trace.

    Adjacent children of a plain ``nn.Sequential`` are a pair by construction. Sibling submodules
    elsewhere (``conv1``/``bn1``, GoogLeNet's ``conv``/``bn``, DenseNet's ``conv1``/``norm2``) are only
    candidates: they are kept when a probe forward shows the BatchNorm reading the convolution's very
    output and folding them leaves the output of a copy with perturbed statistics unchanged (which
    rejects a convolution whose output also goes elsewhere).
    """
    pairs: List[Tuple[str, str]] = []
    siblings: List[Tuple[str, str]] = []
    for path, mod in model.named_modules():
        pre = f"{path}." if path else ""
        children = list(mod.named_children())
        if isinstance(mod, nn.Sequential) and type(mod).forward is nn.Sequential.forward:
            for (na, a), (nb, b) in zip(children, children[1:]):
                if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d) and b.running_var is not None:
                    pairs.append((pre + na, pre + nb))
            continue
        for na, a in children:
            for nb, b in children:
                if isinstance(a, nn.Conv2d) and isinstance(b, nn.BatchNorm2d) and a.out_channels == b.num_features \
                        and b.running_var is not None:
                    siblings.append((pre + na, pre + nb))
    return pairs + _exact_subset(model, pairs, _fed_directly(model, siblings))


def _exact_subset(model: nn.Module, fixed: List[Tuple[str, str]],
                  candidates: List[Tuple[str, str]]) -> List[Tuple[str, str]]:
    """The candidates that fold exactly alongside ``fixed``, found by halving: a few probe forwards per bad pair."""
    if not candidates or _folds_exactly(model, fixed + candidates):
        return candidates
    if len(candidates) == 1:
        return []
    half = len(candidates) // 2
    good = _exact_subset(model, fixed, candidates[:half])
    return good + _exact_subset(model, fixed + good, candidates[half:])


def _folds_exactly(model: nn.Module, pairs: List[Tuple[str, str]]) -> bool:
    """Whether folding ``pairs`` keeps the output, on a copy whose BatchNorm statistics are perturbed.

    With freshly initialised statistics (mean 0, variance 1) a BatchNorm is nearly the identity and
    a wrong pair would go unnoticed, hence the perturbation.
    """
    x = _probe_input(model)
    if x is None:
        return False
    ref = copy.deepcopy(model).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, nn.BatchNorm2d) and m.running_mean is not None:
                n = m.num_features
                m.running_mean.add_(0.1 * torch.randn(n, generator=gen).to(m.running_mean))
                m.running_var.mul_((0.5 + torch.rand(n, generator=gen)).to(m.running_var))
        folded = _apply(copy.deepcopy(ref), pairs)
        try:
            a, b = ref(x), folded(x)
        except Exception:  # noqa: BLE001
            return False
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.shape != b.shape:
        return False
    return bool(((a - b).abs().max() <= 1e-3 * max(1.0, float(a.abs().max()))).item())


def find_conv_bn_pairs(model: nn.Module) -> FoldReport:
    """The ``(conv, batchnorm)`` submodule paths that can be folded, and how they were found.

    Tries, in order: ``torch.fx`` on the model (or its body), ``torch.export`` on a probe input,
    and the structural scan; the report names the first that worked and why the traces failed.
    A model without BatchNorm2d is not traced at all.
    """
    if not any(isinstance(m, nn.BatchNorm2d) and m.running_var is not None for m in model.modules()):
        return FoldReport([], "none")
    errors = []
    try:
        pairs, method = _fx_pairs(model)
        return FoldReport(pairs, method)
    except Exception as e:  # noqa: BLE001
        errors.append(f"fx: {_first_line(e)}")
    try:
        return FoldReport(_export_pairs(model), "export", errors[0])
    except Exception as e:  # noqa: BLE001
        errors.append(f"export: {_first_line(e)}")
    return FoldReport(_scan_pairs(model), "scan", "; ".join(errors))


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:200]}" if text else type(e).__name__


def _set(model: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, name, module)


def _apply(model: nn.Module, pairs: List[Tuple[str, str]]) -> nn.Module:
    """Fold each pair in place (the model must be in eval mode); returns ``model``."""
    for conv_path, bn_path in pairs:
        _set(model, conv_path, fuse_conv_bn_eval(model.get_submodule(conv_path), model.get_submodule(bn_path)))
        _set(model, bn_path, nn.Identity())
    return model


def fold_batchnorm_report(model: nn.Module) -> Tuple[nn.Module, FoldReport]:
    """Like :func:`fold_batchnorm`, and also say which pairs were folded and how they were found."""
    folded = copy.deepcopy(model).eval()
    report = find_conv_bn_pairs(folded)
    # A BatchNorm without running statistics normalises by the batch even in eval: nothing fixed to fold.
    report.pairs = [(c, b) for c, b in report.pairs if folded.get_submodule(b).running_var is not None]
    _apply(folded, report.pairs)
    return folded, report


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` in eval mode with every foldable BatchNorm2d folded into its convolution.

    The input model is not changed. Each folded ``BatchNorm2d`` becomes ``nn.Identity`` and its
    convolution gains the scaled weights and a bias, so the copy's eval output equals the model's
    (up to float rounding). The copy is for inference: training it would not bring the BatchNorms back.

    Args:
        model: any ``nn.Module``; cnnzoo models and plain torchvision ones alike.

    Returns:
        The folded copy, in eval mode.
    """
    return fold_batchnorm_report(model)[0]
