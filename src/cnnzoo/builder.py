"""Building models: ``create_model``, ``model_info``, ``count_params``, ``plan_input``, ``load_model``.

The one place a model is built from its registry entry (as timm's ``_builder.py``): it passes the caller's
arguments to the family's builder, records the name and arguments on the model, attaches the small-image
declaration the model's input check reads, and loads pretrained weights (:mod:`cnnzoo.pretrained`).

``plan_input`` is the small-image policy's one home: how images of a given size are fed to a model (its
small-input option, the resize it declares, or a resize up to its minimum). The trainer, the benchmark, the
summary and compare commands all ask it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .errors import UserError
from .io import is_weights_spec, load_weights, read_weights_meta, stored_meta, weights_path
from .registry import Paper, SmallInput, closest_models, get_entry, is_model

__all__ = ["ModelInfo", "InputPlan", "create_model", "model_info", "count_params", "plan_input", "load_model",
           "read_meta", "build_on_meta"]


@dataclass(frozen=True)
class ModelInfo:
    """What a registered model is. ``min_input_size``, ``aux_logits`` and ``stages`` are read from the built model."""

    name: str
    family: str
    paper: Paper
    input_size: Tuple[int, int, int]
    min_input_size: int
    small_input: SmallInput
    torchvision: Optional[str]
    aux_logits: bool
    stages: Tuple[str, ...]
    description: str

    def as_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["small_input"] = self.small_input.describe()
        return d


_INFO_CACHE: Dict[str, ModelInfo] = {}


def create_model(
    name: str,
    num_classes: int = 1000,
    in_chans: int = 3,
    pretrained: Union[None, bool, str] = None,
    features_only: bool = False,
    out_indices: Optional[Sequence[int]] = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model.

    Args:
        name: a name from :func:`cnnzoo.list_models`.
        num_classes: classifier outputs; ``0`` gives pooled features (no classifier).
        in_chans: input channels.
        pretrained: ``True`` (the model's ``imagenet`` weights from the catalogue, :mod:`cnnzoo.hub`), a weights tag
            (``"tv1"``; ``cnnzoo weights MODEL`` lists them), or a path (our ``.safetensors``, a run directory, or a
            torchvision/timm state dict); downloads go to the torch hub cache. The head and first convolution are
            adapted when the shapes differ (:func:`cnnzoo.pretrained.load_adapting`).
        features_only: return a :class:`cnnzoo.features.FeatureExtractor`: the stages' feature maps as a list,
            with ``model.feature_info`` (channels, reduction, module of each), as timm's ``features_only``.
        out_indices: with ``features_only``, which feature maps (default all; negative counts from the deepest).
        **kwargs: architecture options of the family (``small_input=True``, ``drop_rate=0.2``...).

    Raises:
        ValueError: for an unknown name (closest names listed) or invalid arguments.
    """
    entry = get_entry(name)
    if num_classes < 0:
        raise ValueError(f"num_classes must be >= 0, got {num_classes}")
    if in_chans < 1:
        raise ValueError(f"in_chans must be >= 1, got {in_chans}")
    try:
        model = entry.fn(num_classes=num_classes, in_chans=in_chans, **kwargs)
    except TypeError as e:
        raise ValueError(f"{name}: {e}") from None
    model.model_name = name
    model.model_args = dict(num_classes=num_classes, in_chans=in_chans, **kwargs)
    model.small_input_spec = entry.small_input
    if pretrained:
        from .hub import resolve_pretrained
        from .pretrained import load_pretrained

        load_pretrained(model, resolve_pretrained(name, pretrained))
    if features_only:
        from .features import FeatureExtractor

        twin = _build_on_meta_device(name, num_classes=num_classes, in_chans=in_chans, **kwargs).eval()
        return FeatureExtractor(model, out_indices, (in_chans, *entry.input_size[1:]), meta_twin=twin)
    if out_indices is not None:
        raise ValueError(f"{name}: out_indices needs features_only=True")
    return model


def _build_on_meta_device(name: str, **kwargs: Any) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, **kwargs)


def model_info(name: str) -> ModelInfo:
    """Describe a registered model: family, paper, input sizes, small-image use, stages."""
    if name not in _INFO_CACHE:
        e = get_entry(name)
        m = _build_on_meta_device(name, num_classes=1000, in_chans=e.input_size[0])
        _INFO_CACHE[name] = ModelInfo(
            name=name,
            family=e.family,
            paper=e.paper,
            input_size=e.input_size,
            min_input_size=int(m.min_input_size),
            small_input=e.small_input,
            torchvision=e.torchvision,
            aux_logits=bool(getattr(m, "aux_logits", False)),
            stages=tuple(getattr(m, "stage_names", ())),
            description=e.description,
        )
    return _INFO_CACHE[name]


def count_params(name: str, **kwargs: Any) -> int:
    """Trainable parameters of a model, built on the meta device (no memory, no init cost)."""
    e = get_entry(name)
    kwargs.setdefault("num_classes", 1000)
    kwargs.setdefault("in_chans", e.input_size[0])
    m = _build_on_meta_device(name, **kwargs)
    return sum(p.numel() for p in m.parameters() if p.requires_grad)


# ----------------------------------------------------------------------------------------- input planning


@dataclass
class InputPlan:
    """How to feed images to a model: the ``create_model`` arguments, the image size, and what was decided."""

    kwargs: Dict[str, Any]
    image_size: int
    note: str


def plan_input(name: str, data_size: int, kwargs: Optional[Dict[str, Any]] = None,
               image_size: Optional[int] = None, pretrained: Union[None, bool, str] = None) -> InputPlan:
    """How to feed ``data_size``-pixel images to model ``name``, as its registration declares.

    Small images (:meth:`SmallInput.is_small`) switch on a model's small-input option unless the caller decided
    it; models that need a large input get the resize they declare; anything still below the model's minimum is
    resized up to its default input size. An explicit ``image_size`` is the caller's choice: the model's own error
    if it cannot take it.

    Pretrained weights win over the small-input default: weights of the paper's configuration (a torchvision or
    timm file, a catalogue tag) keep the model as they were trained, and small images are resized up instead, to
    the model's input size or 4x their own, whichever is smaller (28 px -> 112 px for a ResNet); weights of a
    cnnzoo run keep that run's architecture options.
    """
    info = model_info(name)
    kwargs = dict(kwargs or {})
    notes = []
    si = info.small_input
    chans = info.input_size[0]
    m = None  # the model as planned, on the meta device: built once kwargs are settled
    if pretrained:
        meta = stored_meta(pretrained)
        if meta is not None:
            stored = _architecture_args(meta)
            kwargs = {**{k: v for k, v in stored.items() if k not in ("num_classes", "in_chans")}, **kwargs}
            trained = meta.get("image_size")
            if image_size is None and trained and int(trained[0]) != data_size:
                image_size = int(trained[0])
                notes.append(f"{name} weights trained at {image_size}px: resizing {data_size}px images to it")
        elif (image_size is None and si.has_option and not si.chosen_in(kwargs)
              and si.is_small(data_size, info.input_size[-1])):
            kwargs.update({k: not v if isinstance(v, bool) else v for k, v in si.kwargs.items()})
            m = _build_on_meta_device(name, num_classes=10, in_chans=chans, **kwargs)
            image_size = max(min(info.input_size[-1], 4 * data_size), int(m.min_input_size))
            notes.append(f"pretrained weights of {name}'s own configuration: keeping it (no {si.args_text()}) and "
                         f"resizing {data_size}px images to {image_size}px (data.image_size sets another size)")
    if image_size is None and si.is_small(data_size, info.input_size[-1]):
        if si.has_option and not si.chosen_in(kwargs):
            kwargs.update(si.kwargs)
            notes.append(f"small images: building {name} with " + ", ".join(f"{k}={v}" for k, v in si.kwargs.items()))
        elif si.resizes:
            image_size = si.size
            notes.append(f"{name} needs a large input: resizing {data_size}px images to {si.size}px")
    size = image_size or data_size
    if m is None:
        m = _build_on_meta_device(name, num_classes=10, in_chans=chans, **kwargs)
    min_size = int(m.min_input_size)
    if image_size is not None:
        m.check_input(torch.empty(1, chans, size, size, device="meta"))
    if size < min_size:
        new = info.input_size[-1] if info.input_size[-1] >= min_size else min_size
        if si.applied_in(kwargs):
            new = max(min_size, 32)
        notes.append(f"{size}px is below {name}'s minimum of {min_size}px: resizing to {new}px")
        size = new
    return InputPlan(kwargs, int(size), "; ".join(notes))


# ----------------------------------------------------------------------------------------- models from files


Spec = Union[str, Path]


# Arguments that name files or change what create_model returns: never taken from a file's metadata, so weights
# cannot make cnnzoo open another file (a crafted model_args.pretrained) or return something else.
_NOT_FROM_METADATA = ("pretrained", "features_only", "out_indices")


def _architecture_args(meta: Dict[str, Any]) -> Dict[str, Any]:
    args = meta.get("model_args") or {}
    if not isinstance(args, dict):
        raise UserError("the weights' metadata has model_args that are not a mapping; was the file written by cnnzoo?")
    return {k: v for k, v in args.items() if k not in _NOT_FROM_METADATA}


def read_meta(spec: Spec) -> Dict[str, Any]:
    """The metadata of a registry name, a ``.safetensors`` file or a run directory, without loading weights."""
    s = str(spec)
    if is_model(s) and not Path(s).exists():
        return {"model": s, "model_args": {}}
    if not is_weights_spec(s):
        close = closest_models(s)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UserError(f"{s!r} is neither a registered model nor a run directory or .safetensors file.{hint}")
    meta = read_weights_meta(weights_path(s))
    if not meta.get("model"):
        raise UserError(f"{s} has no model name in its metadata; was it written by cnnzoo?")
    return meta


def build_on_meta(spec: Spec, **create_kwargs: Any) -> Tuple[nn.Module, Dict[str, Any]]:
    """The model of ``spec`` built on the meta device (shapes only: no memory, no initialisation)."""
    meta = read_meta(spec)
    args = _architecture_args(meta)
    args.update(create_kwargs)
    return _build_on_meta_device(meta["model"], **args).eval(), meta


def load_model(spec: Spec, device: Union[str, torch.device] = "cpu",
               **create_kwargs: Any) -> Tuple[nn.Module, Dict[str, Any]]:
    """A model in eval mode and its metadata, from a registry name, a ``.safetensors`` file or a run directory.

    Args:
        spec: a registry name (random initial weights), a ``.safetensors`` file or a run directory (the model
            named in the weights' metadata, built with ``create_model(name, **model_args)`` and loaded with its
            weights).
        device: where to put the model.
        **create_kwargs: ``create_model`` arguments; they override the stored ``model_args``.

    Returns:
        ``(model, meta)``: ``meta`` has ``"model"`` and ``"model_args"``, and for trained weights ``"classes"``,
        ``"mean"``, ``"std"``, ``"image_size"``, ``"in_chans"``.

    Raises:
        UserError: a missing file, a file that is not safetensors, weights without a model name, or weights
            that do not fit the model.
    """
    spec_s = str(spec)
    if is_model(spec_s) and not Path(spec_s).exists():
        model = create_model(spec_s, **create_kwargs)
        return model.to(device).eval(), {"model": spec_s, "model_args": getattr(model, "model_args", {})}
    state, meta = load_weights(weights_path(spec_s))
    name = meta.get("model")
    if not name:
        raise UserError(f"{spec_s} has no model name in its metadata; load it with create_model(name, pretrained=...)")
    args = _architecture_args(meta)
    args.update(create_kwargs)
    model = create_model(name, **args)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise UserError(f"{spec_s} does not fit {name}: missing {missing[:3]}, unexpected {unexpected[:3]}")
    return model.to(device).eval(), meta
