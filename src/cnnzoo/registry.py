"""The model registry: ``register_model``, ``create_model``, ``list_models``, ``model_info``.

A family file registers one small builder function per variant::

    @register_model(family="ResNet", paper=RESNET, input_size=224, torchvision="resnet18")
    def resnet18(**kwargs):
        return _create_resnet(BasicBlock, (2, 2, 2, 2), **kwargs)

Everything the rest of the package needs to know about a model (input size, minimum size, how
to use it on 28x28/32x32 images, auxiliary heads, the matching torchvision builder) is data on
the registration or an attribute of the built model, so nothing downstream special-cases an
architecture.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

__all__ = [
    "Paper",
    "SmallInput",
    "ModelInfo",
    "register_model",
    "create_model",
    "list_models",
    "model_info",
    "is_model",
    "closest_models",
]


@dataclass(frozen=True)
class Paper:
    """The publication an architecture follows."""

    title: str
    authors: str
    year: int
    url: str

    def cite(self) -> str:
        return f"{self.authors} ({self.year}). {self.title}. {self.url}"


@dataclass(frozen=True)
class SmallInput:
    """How a model is used on small images (28x28 grey, 32x32 colour).

    ``mode`` is one of
      * ``"native"``: the default configuration is built for small images;
      * ``"option"``: pass ``kwargs`` (e.g. ``{"small_input": True}``) to the same class;
      * ``"resize"``: the architecture really needs a large input; resize images to ``size``.
    """

    mode: str = "native"
    kwargs: Dict[str, Any] = field(default_factory=dict)
    size: Optional[int] = None

    def describe(self) -> str:
        if self.mode == "native":
            return "native"
        if self.mode == "option":
            args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
            return f"option: {args}"
        return f"resize to {self.size}x{self.size}"


NATIVE = SmallInput("native")


@dataclass(frozen=True)
class ModelInfo:
    """What a registered model is. ``min_input_size`` is read from the built model."""

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


@dataclass
class _Entry:
    fn: Callable[..., nn.Module]
    family: str
    paper: Paper
    input_size: Tuple[int, int, int]
    small_input: SmallInput
    torchvision: Optional[str]


_REGISTRY: Dict[str, _Entry] = {}
_INFO_CACHE: Dict[str, ModelInfo] = {}


def register_model(
    *,
    family: str,
    paper: Paper,
    input_size: int | Tuple[int, int, int] = 224,
    small_input: SmallInput = NATIVE,
    torchvision: Optional[str] = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a builder under its function name.

    Args:
        family: architecture family shown by ``cnnzoo list`` (e.g. ``"ResNet"``).
        paper: the publication the variant follows.
        input_size: default input, an int (3 x N x N) or a (C, H, W) tuple.
        small_input: how the model is used on 28/32-pixel images.
        torchvision: name of the torchvision builder with the identical architecture, if any.
    """
    if isinstance(input_size, int):
        input_size = (3, input_size, input_size)

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = fn.__name__
        if name in _REGISTRY:
            raise RuntimeError(f"model {name!r} is registered twice")
        _REGISTRY[name] = _Entry(fn, family, paper, tuple(input_size), small_input, torchvision)
        return fn

    return wrap


def _ensure_loaded() -> None:
    # Importing the models package runs every family file's registrations.
    from . import models  # noqa: F401


def closest_models(name: str, n: int = 5) -> List[str]:
    _ensure_loaded()
    names = list(_REGISTRY)
    close = difflib.get_close_matches(name.lower(), names, n=n, cutoff=0.5)
    if not close:
        close = [m for m in names if name.lower()[:3] in m][:n]
    return close


def _unknown(name: str) -> ValueError:
    close = closest_models(name)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return ValueError(f"unknown model {name!r}.{hint} Run `cnnzoo list` to see every model.")


def is_model(name: str) -> bool:
    _ensure_loaded()
    return name in _REGISTRY


def _natural(name: str) -> list:
    # resnet18 before resnet101, as a person sorts them.
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def list_models(pattern: str = "*") -> List[str]:
    """Registered model names matching a shell wildcard (``"resnet*"``), in natural order."""
    _ensure_loaded()
    pats = [pattern] if isinstance(pattern, str) else list(pattern)
    return sorted((n for n in _REGISTRY if any(fnmatch.fnmatchcase(n, p.lower()) for p in pats)), key=_natural)


def create_model(
    name: str,
    num_classes: int = 1000,
    in_chans: int = 3,
    pretrained: Optional[str] = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered model.

    Args:
        name: a name from :func:`list_models`.
        num_classes: classifier outputs; ``0`` gives pooled features (no classifier).
        in_chans: input channels.
        pretrained: path to weights (our ``.safetensors``, a run directory, or a torchvision/timm
            state dict); the head and first convolution are adapted when the shapes differ.
        **kwargs: architecture options of the family (``small_input=True``, ``drop_rate=0.2``...).

    Raises:
        ValueError: for an unknown name (closest names listed) or invalid arguments.
    """
    _ensure_loaded()
    if name not in _REGISTRY:
        raise _unknown(name)
    if num_classes < 0:
        raise ValueError(f"num_classes must be >= 0, got {num_classes}")
    if in_chans < 1:
        raise ValueError(f"in_chans must be >= 1, got {in_chans}")
    entry = _REGISTRY[name]
    try:
        model = entry.fn(num_classes=num_classes, in_chans=in_chans, **kwargs)
    except TypeError as e:
        raise ValueError(f"{name}: {e}") from None
    model.model_name = name
    model.model_args = dict(num_classes=num_classes, in_chans=in_chans, **kwargs)
    if pretrained:
        from .transfer import load_pretrained

        load_pretrained(model, pretrained)
    return model


def model_info(name: str) -> ModelInfo:
    """Describe a registered model: family, paper, input sizes, small-image use, stages."""
    _ensure_loaded()
    if name not in _REGISTRY:
        raise _unknown(name)
    if name not in _INFO_CACHE:
        e = _REGISTRY[name]
        with torch.device("meta"):
            m = e.fn(num_classes=1000, in_chans=e.input_size[0])
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
            description=(e.fn.__doc__ or "").strip().splitlines()[0] if e.fn.__doc__ else "",
        )
    return _INFO_CACHE[name]


def count_params(name: str, **kwargs: Any) -> int:
    """Trainable parameters of a model, built on the meta device (no memory, no init cost)."""
    _ensure_loaded()
    if name not in _REGISTRY:
        raise _unknown(name)
    e = _REGISTRY[name]
    kwargs.setdefault("num_classes", 1000)
    kwargs.setdefault("in_chans", e.input_size[0])
    with torch.device("meta"):
        m = e.fn(**kwargs)
    return sum(p.numel() for p in m.parameters() if p.requires_grad)
