"""What a family file declares about each variant: the paper, the input, how it takes small images.

A family file registers one small builder function per variant::

    @register_model(family="ResNet", paper=RESNET, input_size=224, torchvision="resnet18")
    def resnet18(**kwargs):
        return _create_resnet(BasicBlock, (2, 2, 2, 2), **kwargs)

``register_model`` only records the declaration (:class:`ModelEntry`) in :data:`ENTRIES`; looking models up is
:mod:`cnnzoo.registry`'s job and building them :mod:`cnnzoo.builder`'s, both above this layer, so a model file
never imports either.

The small-image policy lives here, in :class:`SmallInput`, and every caller (the builder's ``plan_input``, the
models' input check, the summary and compare commands) asks it instead of reading ``mode`` itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from torch import nn

__all__ = ["Paper", "SmallInput", "NATIVE", "ModelEntry", "ENTRIES", "register_model", "SMALL_IMAGE_MAX"]

# Images up to this size (28x28 grey, 32x32 colour, 64x64 Tiny-ImageNet) are "small": a model that has a
# small-input option is built with it, a model that needs a large input is resized.
SMALL_IMAGE_MAX = 64


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
    """How a model is used on small images (at most :data:`SMALL_IMAGE_MAX` pixels).

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
            return f"option: {self.args_text()}"
        return f"resize to {self.size}x{self.size}"

    def args_text(self, sep: str = ", ") -> str:
        """The option's arguments as Python keywords: ``small_input=True``."""
        return sep.join(f"{k}={v!r}" for k, v in self.kwargs.items())

    def option_kwargs(self) -> Dict[str, Any]:
        """The ``create_model`` arguments that build the model for small images (``{}`` without an option)."""
        return dict(self.kwargs) if self.has_option else {}

    def input_for_small_images(self) -> Optional[int]:
        """The input size a small image (CIFAR's 32 px) is fed at: its resize, 32 with the option, None if native."""
        if self.resizes:
            return self.size
        return 32 if self.has_option else None

    def command_line_hint(self) -> str:
        """What to add to a command line when a model rejects a small input."""
        if self.has_option:
            args = " ".join(f"--kw {k}={str(v).lower()}" for k, v in self.kwargs.items())
            return f"add --small (or {args})"
        if self.resizes:
            return f"--input {self.size}x{self.size} (this model needs a large input)"
        return ""

    @property
    def has_option(self) -> bool:
        return self.mode == "option"

    @property
    def resizes(self) -> bool:
        return self.mode == "resize"

    @staticmethod
    def is_small(size: int, default_size: int) -> bool:
        """Whether ``size``-pixel images are small for a model whose paper input is ``default_size``."""
        return size <= SMALL_IMAGE_MAX and size < default_size

    def chosen_in(self, kwargs: Mapping[str, Any]) -> bool:
        """Whether ``kwargs`` already decide the option (set it either way): the caller's choice stands."""
        return any(k in kwargs for k in self.kwargs)

    def applied_in(self, kwargs: Mapping[str, Any]) -> bool:
        """Whether ``kwargs`` switch the small-input option on."""
        return self.has_option and all(kwargs.get(k) == v for k, v in self.kwargs.items())

    def applied_to(self, model: nn.Module) -> bool:
        """Whether ``model`` was built with the small-input option."""
        return self.has_option and all(getattr(model, k, None) == v for k, v in self.kwargs.items())

    def remedy(self, model: nn.Module, min_size: int) -> str:
        """What to do about an input below ``min_size`` for ``model``: the resize, or the option that takes it."""
        if self.resizes:
            return f"resize the images to {self.size}x{self.size} (at least {min_size})"
        hint = f"resize the images to at least {min_size}x{min_size}"
        if self.has_option and not self.applied_to(model):
            hint += f", or build it with {self.args_text()} for small images"
        return hint


NATIVE = SmallInput("native")


@dataclass(frozen=True)
class ModelEntry:
    """One registered variant, as its family file declares it."""

    name: str
    fn: Callable[..., nn.Module]
    family: str
    paper: Paper
    input_size: Tuple[int, int, int]
    small_input: SmallInput
    torchvision: Optional[str]

    @property
    def description(self) -> str:
        doc = (self.fn.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


# name -> entry, in registration order; read through cnnzoo.registry.
ENTRIES: Dict[str, ModelEntry] = {}


def register_model(
    *,
    family: str,
    paper: Paper,
    input_size: int | Tuple[int, int, int] = 224,
    small_input: SmallInput = NATIVE,
    torchvision: Optional[str] = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Declare a builder under its function name.

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
        if name in ENTRIES:
            raise RuntimeError(f"model {name!r} is registered twice")
        ENTRIES[name] = ModelEntry(name, fn, family, paper, tuple(input_size), small_input, torchvision)
        return fn

    return wrap
