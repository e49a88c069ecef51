"""Building models: ``create_model``, ``model_info``, ``count_params``, ``plan_input``, ``load_model``.

The one place a model is built from its registry entry (as timm's ``_builder.py``): it passes the caller's
arguments to the family's builder, records the name and arguments on the model, attaches the small-image
declaration the model's input check reads, re-initialises it when asked (``init=``, :func:`initialize`: the
initialisation policy's one home), and loads pretrained weights (:mod:`cnnzoo.pretrained`).

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

from .choices import INITS
from .errors import ParamError, UserError
from .io import is_weights_spec, load_weights, read_weights_meta, stored_meta, weights_path
from .layers.norm import NORM_LAYERS
from .registry import Paper, SmallInput, closest_models, get_entry, is_model

__all__ = ["ModelInfo", "InputPlan", "create_model", "model_info", "count_params", "plan_input", "load_model",
           "read_meta", "build_on_meta", "initialize", "check_init", "warm_start", "WarmStart", "min_input_side"]


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
    init: str = "paper",
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
        init: the initialisation, one of :data:`cnnzoo.choices.INITS` (:func:`initialize`): ``"paper"`` (the
            family's own, as its constructor does), ``"torchvision"`` (torchvision's scheme for a model with a
            torchvision twin), ``"xavier_uniform"``, ``"xavier_normal"``, ``"kaiming_fan_in"``, ``"kaiming_fan_out"``,
            ``"dirac"`` (the family's own, then identity filters first: airbench).
            Pretrained weights are loaded over it.
        **kwargs: architecture options of the family (``small_input=True``, ``drop_rate=0.2``...).

    Raises:
        ValueError: for an unknown name (closest names listed) or invalid arguments.
        ParamError: an ``init`` that is not one of the choices, or ``"torchvision"`` for a model without a twin.
    """
    entry = get_entry(name)
    check_init(init, name)
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
    if init != "paper":
        initialize(model, init)
    model.init_scheme = init
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


# ----------------------------------------------------------------------------------------- initialisation
#
# The policy's one home. Every scheme but "paper" re-draws the model after its constructor: the generic ones set
# every convolution and linear weight by the scheme and its bias to 0, and every normalisation layer's weight to 1
# and bias to 0 (a zero-initialised residual BatchNorm or head is undone: that is the caller's request). Other
# parameters (positional embeddings, layer scales) keep the family's values. "dirac" keeps the family's draw and
# overwrites only the first filters of each convolution (:func:`_dirac_first_filters`).

_CONV = nn.modules.conv._ConvNd


def _zero(t: Optional[torch.Tensor]) -> None:
    if t is not None:
        nn.init.zeros_(t)


def _unit_norm(m: nn.Module) -> None:
    if getattr(m, "weight", None) is not None:
        nn.init.ones_(m.weight)
    _zero(getattr(m, "bias", None))


def _dirac_first_filters(conv: nn.Module) -> None:
    """The first ``c`` filters of each group of ``conv`` (``c`` = its inputs per group) become identity taps
    (``nn.init.dirac_``); the rest keep their draw, and the bias is left as it is.

    airbench94 starts its 3x3 convolutions this way, so that at initialisation each of them passes its input on
    (plus random features in the extra filters). A convolution with fewer filters per group than inputs cannot
    pass them all on and is left alone. The tap is at the kernel's centre, ``k // 2``: for an even kernel (a 2x2
    stem) that is a one-pixel shift rather than the identity.
    """
    w = conv.weight
    per_out, per_in = w.shape[0] // conv.groups, w.shape[1]
    if per_out < per_in:
        return
    for g in range(conv.groups):
        nn.init.dirac_(w[g * per_out:g * per_out + per_in])


_GENERIC = {
    "xavier_uniform": nn.init.xavier_uniform_,  # U(+-sqrt(6 / (fan_in + fan_out))), Glorot & Bengio 2010
    "xavier_normal": nn.init.xavier_normal_,  # N(0, 2 / (fan_in + fan_out))
    "kaiming_fan_in": lambda w: nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu"),  # N(0, 2 / fan_in)
    "kaiming_fan_out": lambda w: nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu"),  # N(0, 2 / fan_out)
}


def _tv_trunc(std: float):
    return lambda w: nn.init.trunc_normal_(w, mean=0.0, std=std, a=-2, b=2)


def _tv_scheme(conv=None, linear=None, conv_bias0=True, linear_bias0=True, special=None):
    """A torchvision constructor's loop over its modules, after PyTorch's default initialisation of each layer.

    ``conv`` / ``linear`` draw a weight (None: PyTorch's default stays), ``*_bias0`` set the biases to 0 (False:
    PyTorch's default stays); ``special(model)`` maps a module to the draw that replaces the rule for it, bias 0
    (SqueezeNet's final convolution, Inception-v3's auxiliary FC).
    """
    def apply(model: nn.Module) -> None:
        overrides = special(model) if special else {}
        for m in model.modules():
            if isinstance(m, NORM_LAYERS):
                m.reset_parameters()
                _unit_norm(m)
            elif isinstance(m, (_CONV, nn.Linear)):
                m.reset_parameters()  # the layer as torchvision constructs it, before its loop
                draw, bias0 = (conv, conv_bias0) if isinstance(m, _CONV) else (linear, linear_bias0)
                draw, bias0 = (overrides[id(m)], True) if id(m) in overrides else (draw, bias0)
                if draw is not None:
                    draw(m.weight)
                if bias0:
                    _zero(m.bias)
    return apply


def _squeezenet_final(model: nn.Module) -> Dict[int, Any]:
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    return {id(head): lambda w: nn.init.normal_(w, 0.0, 0.01)} if isinstance(head, _CONV) else {}


def _inception_aux_fc(model: nn.Module) -> Dict[int, Any]:
    # torchvision reads a ``stddev`` attribute only from Conv2d and Linear modules: of the two it sets in
    # InceptionAux (0.01 on the BasicConv2d wrapper, 0.001 on the FC) only the FC's takes effect.
    aux = getattr(model, "AuxLogits", None)
    fc = getattr(aux, "fc", None) if aux is not None else None
    return {id(fc): _tv_trunc(0.001)} if isinstance(fc, nn.Linear) else {}


_FAN_OUT = lambda w: nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")  # noqa: E731
# torchvision's own loops (torchvision/models/<family>.py), by the name of the twin: the first prefix that matches.
_TORCHVISION_SCHEMES: Tuple[Tuple[str, Any], ...] = (
    ("alexnet", _tv_scheme(conv_bias0=False, linear_bias0=False)),  # no loop: PyTorch's defaults
    ("shufflenet_v2", _tv_scheme(conv_bias0=False, linear_bias0=False)),
    ("vgg", _tv_scheme(_FAN_OUT, lambda w: nn.init.normal_(w, 0, 0.01))),
    # ResNet, ResNeXt, Wide ResNet: the linear keeps PyTorch's default, convolutions have no bias.
    ("resnet", _tv_scheme(_FAN_OUT, None, linear_bias0=False)),
    ("resnext", _tv_scheme(_FAN_OUT, None, linear_bias0=False)),
    ("wide_resnet", _tv_scheme(_FAN_OUT, None, linear_bias0=False)),
    ("densenet", _tv_scheme(nn.init.kaiming_normal_, None)),  # fan-in; the linear's bias 0, its weight default
    ("googlenet", _tv_scheme(_tv_trunc(0.01), _tv_trunc(0.01), conv_bias0=False, linear_bias0=False)),
    ("inception_v3", _tv_scheme(_tv_trunc(0.1), _tv_trunc(0.1), conv_bias0=False, linear_bias0=False,
                                special=_inception_aux_fc)),
    ("mobilenet_v2", _tv_scheme(_FAN_OUT, lambda w: nn.init.normal_(w, 0, 0.01))),
    ("mobilenet_v3", _tv_scheme(_FAN_OUT, lambda w: nn.init.normal_(w, 0, 0.01))),
    ("efficientnet", _tv_scheme(_FAN_OUT, lambda w: nn.init.uniform_(w, -w.shape[0] ** -0.5, w.shape[0] ** -0.5))),
    ("squeezenet", _tv_scheme(nn.init.kaiming_uniform_, None, special=_squeezenet_final)),
)


def _torchvision_scheme(twin: Optional[str]):
    if not twin:
        return None
    return next((apply for prefix, apply in _TORCHVISION_SCHEMES if twin.startswith(prefix)), None)


def check_init(init: str, name: Optional[str] = None) -> None:
    """Raise :class:`ParamError` unless ``init`` is one of :data:`cnnzoo.choices.INITS` that model ``name`` takes."""
    if init not in INITS:
        raise ParamError("init", init, f"is not an initialisation; choose one of {', '.join(INITS)}")
    if init == "torchvision" and name is not None:
        twin = get_entry(name).torchvision
        if _torchvision_scheme(twin) is None:
            others = ", ".join(i for i in INITS if i != "torchvision")
            why = (f"{name} has no torchvision twin" if not twin else
                   f"torchvision's scheme for {twin} is not known to cnnzoo")
            raise ParamError("init", init, f"needs a model with a torchvision twin: {why}; choose one of {others}")


def initialize(model: nn.Module, init: str) -> nn.Module:
    """Re-initialise ``model`` in place by scheme ``init`` (:data:`cnnzoo.choices.INITS`); returns it.

    ``"paper"`` leaves the model as its family's constructor initialised it. ``"torchvision"`` replays the loop of
    torchvision's constructor for the model's twin (``model_info(name).torchvision``; module names and types match
    by design). ``"dirac"`` keeps the constructor's values except the first filters of each convolution, which pass
    its inputs through (:func:`_dirac_first_filters`). The others draw every convolution and linear weight by the
    scheme, with biases 0 and normalisation layers at weight 1, bias 0. A model on the meta device is left alone
    (nothing to draw).
    """
    name = getattr(model, "model_name", None) or None
    check_init(init, name)
    if init == "paper" or any(p.is_meta for p in model.parameters()):
        return model
    with torch.no_grad():
        if init == "torchvision":
            if name is None:
                raise ParamError("init", init, "needs a model built by create_model (its torchvision twin)")
            _torchvision_scheme(get_entry(name).torchvision)(model)
            return model
        if init == "dirac":
            for m in model.modules():
                if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):  # not transposed: their weight is in x out
                    _dirac_first_filters(m)
            return model
        draw = _GENERIC[init]
        for m in model.modules():
            if isinstance(m, (_CONV, nn.Linear)):
                draw(m.weight)
                _zero(m.bias)
            elif isinstance(m, NORM_LAYERS):
                _unit_norm(m)
    return model


def min_input_side(model: nn.Module) -> int:
    """The smallest H and W ``model`` computes on: its ``min_input_size``, 1 for a module that declares none
    (a torchvision or hand-built network)."""
    return int(getattr(model, "min_input_size", 1) or 1)


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
            min_input_size=min_input_side(m),
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


LARGEST_INPUT = 4096  # px: the largest image side a run may ask for (8x the largest paper input, EfficientNet-B7's)


@dataclass
class InputPlan:
    """How to feed images to a model: the ``create_model`` arguments, the image size, what was decided, and where
    the size came from (``source``, as the run's header says it: "data.image_size", "the images' size", ...)."""

    kwargs: Dict[str, Any]
    image_size: int
    note: str
    source: str = "the images' size"


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
    if image_size is not None and not 1 <= image_size <= LARGEST_INPUT:
        raise UserError(f"data.image_size={image_size} is outside 1..{LARGEST_INPUT} px; {name}'s own input is "
                        f"{info.input_size[-1]} px: choose a size near it")
    si = info.small_input
    chans = info.input_size[0]
    source = "data.image_size" if image_size is not None else "the images' size"
    m = None  # the model as planned, on the meta device: built once kwargs are settled
    if pretrained:
        meta = stored_meta(pretrained)
        if meta is not None:
            stored = _architecture_args(meta)
            kwargs = {**{k: v for k, v in stored.items() if k not in ("num_classes", "in_chans")}, **kwargs}
            trained = meta.get("image_size")
            if image_size is None and trained and int(trained[0]) != data_size:
                image_size = int(trained[0])
                source = "planned for the pretrained weights"
                notes.append(f"{name} weights trained at {image_size}px: resizing {data_size}px images to it")
        elif (image_size is None and si.has_option and not si.chosen_in(kwargs)
              and si.is_small(data_size, info.input_size[-1])):
            kwargs.update({k: not v if isinstance(v, bool) else v for k, v in si.kwargs.items()})
            m = _build_on_meta_device(name, num_classes=10, in_chans=chans, **kwargs)
            image_size = max(min(info.input_size[-1], 4 * data_size), min_input_side(m))
            source = "planned for the pretrained weights"
            notes.append(f"pretrained weights of {name}'s own configuration: keeping it (no {si.args_text()}) and "
                         f"resizing {data_size}px images to {image_size}px (data.image_size sets another size)")
    if image_size is None and data_size > info.input_size[-1]:
        # Photos of any size train at the model's own input size, never at the size of the first file found.
        image_size = info.input_size[-1]
        source = "the model's input"
        notes.append(f"{data_size}px images: training at {name}'s input size, {image_size}px "
                     "(data.image_size sets another size)")
    if image_size is None and si.is_small(data_size, info.input_size[-1]):
        if si.has_option and not si.chosen_in(kwargs):
            kwargs.update(si.kwargs)
            notes.append(f"small images: building {name} with " + ", ".join(f"{k}={v}" for k, v in si.kwargs.items()))
        elif si.resizes:
            image_size = si.size
            source = "the model's input" if si.size == info.input_size[-1] else "the small-image plan"
            notes.append(f"{name} needs a large input: resizing {data_size}px images to {si.size}px")
    size = image_size or data_size
    if m is None:
        m = _build_on_meta_device(name, num_classes=10, in_chans=chans, **kwargs)
    min_size = min_input_side(m)
    if image_size is not None:
        m.check_input(torch.empty(1, chans, size, size, device="meta"))
    if size < min_size:
        new = info.input_size[-1] if info.input_size[-1] >= min_size else min_size
        if si.applied_in(kwargs):
            new = max(min_size, 32)
        notes.append(f"{size}px is below {name}'s minimum of {min_size}px: resizing to {new}px")
        size = new
        source = "the model's input" if new == info.input_size[-1] else "the small-image plan"
    return InputPlan(kwargs, int(size), "; ".join(notes), source)


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


# ----------------------------------------------------------------------------------------- warm start


@dataclass
class WarmStart:
    """What :func:`warm_start` did: the layers copied from the source, by the paper's names, and those kept."""

    source: str
    source_model: str
    model: str
    copied: Tuple[str, ...]
    kept: Tuple[str, ...]

    def summary(self) -> str:
        return (f"warm start from {self.source} ({self.source_model}): copied {', '.join(self.copied)}; "
                f"{len(self.kept)} layers of {self.model} keep their initialisation ({', '.join(self.kept)})")


def warm_start(model: nn.Module, source: Union[Spec, nn.Module]) -> WarmStart:
    """Start ``model`` from the layers of a trained shallower net, as Simonyan & Zisserman section 3.1 (VGG).

    The model names the layers (``model.warm_start_layers(source)``: for VGG the source's first four
    convolutional layers and its three FC layers, each into the layer of the same name: ``conv1_1``, ``conv2_1``,
    ``conv3_1``, ``conv3_2``, ``fc6``-``fc8`` from VGG-11); those are copied, every other parameter and buffer is
    left as it is. Nothing is copied unless every pair fits. ``cnnzoo.transfer.warm_start`` is this function.

    Args:
        model: the net to start (a VGG built by :func:`create_model`).
        source: a run directory or ``.safetensors`` file of cnnzoo (its metadata names the model), or a model.

    Returns:
        a :class:`WarmStart` report (``summary()`` is the line the trainer prints).

    Raises:
        ParamError (``warm_start``): a source that is no VGG or not a cnnzoo file, a model that takes no warm start,
            BatchNorm on one side only, a layer missing or of another shape.
    """
    label = str(source) if not isinstance(source, nn.Module) else (getattr(source, "model_name", "") or
                                                                   type(source).__name__)
    bad = lambda text: ParamError("warm_start", label, text)  # noqa: E731
    mine = getattr(model, "model_name", "") or type(model).__name__
    if not hasattr(model, "warm_start_layers"):
        raise bad(f"cannot start {mine}: warm start maps the layers of VGG's configurations (section 3.1 of "
                  f"Simonyan & Zisserman) and {mine} is not one; start it from weights with model.pretrained")
    if isinstance(source, nn.Module):
        src_model, state = source, source.state_dict()
    else:
        if is_model(str(source)) and not Path(str(source)).exists():
            raise bad("is a model name, not trained weights: pass the run directory of a trained model")
        try:
            src_model, _ = build_on_meta(source)
        except UserError as e:
            raise bad(f"cannot be read: {e}") from None
        state, _ = load_weights(weights_path(str(source)))
    try:
        names = model.warm_start_layers(src_model)
    except ValueError as e:
        raise bad(str(e)) from None
    own = model.state_dict()
    pairs = []  # (target key, source key)
    for n in names:
        for mine_path, src_path in zip(model.layer_table[n], src_model.layer_table[n]):
            keys = [k for k in own if k.startswith(mine_path + ".")]
            for k in keys:
                sk = src_path + k[len(mine_path):]
                if sk not in state:
                    raise bad(f"has no {sk} for {mine}'s {n} ({k}); was it saved by cnnzoo?")
                if tuple(state[sk].shape) != tuple(own[k].shape):
                    shape = lambda t: "x".join(map(str, t.shape)) or "a scalar"  # noqa: E731
                    raise bad(f"does not fit {mine}: its {n} ({sk}) is {shape(state[sk])}, {mine}'s is "
                              f"{shape(own[k])}; train the source on the same data (classes, channels) and with "
                              "the same small_input")
            pairs += [(k, src_path + k[len(mine_path):]) for k in keys]
    with torch.no_grad():
        for k, sk in pairs:
            own[k].copy_(state[sk].to(own[k].dtype))
    kept = tuple(n for n in model.layer_table if n not in names)
    return WarmStart(label, getattr(src_model, "model_name", "") or type(src_model).__name__, mine, tuple(names), kept)
