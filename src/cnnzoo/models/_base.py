"""The surface every cnnzoo model offers, whatever its family.

``forward(x) == forward_head(forward_features(x))`` after an input check that turns PyTorch's
"Output size is too small" into a message naming the model, its minimum size and the remedy.
"""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.norm import NORM_LAYERS
from ._spec import SmallInput

__all__ = ["ZooModel", "PooledFcModel", "SequentialHeadModel", "AuxHeadsModel", "AuxOutputs"]


class AuxOutputs(NamedTuple):
    """What a model with auxiliary classifiers returns in training mode.

    ``logits`` is the main head; ``aux`` the auxiliary heads' logits (deepest first). The
    trainer adds ``aux_weight`` x the loss of each auxiliary head (0.3 in GoogLeNet).
    """

    logits: torch.Tensor
    aux: List[torch.Tensor]


class ZooModel(nn.Module):
    """Base class for all models.

    Subclasses set, in ``__init__``:
      * ``num_classes``, ``in_chans``, ``num_features`` (channels entering the classifier);
      * ``min_input_size``: the smallest H and W the network computes on;
      * ``stage_map``: ordered ``{stage name: (submodule paths...)}`` from input to output,
        covering every parameter; freezing by stage and discriminative learning rates use it;
      * optionally ``aux_logits`` (bool) and ``aux_weight`` (float);
    and implement ``forward_features``, ``forward_head``, ``get_classifier``,
    ``reset_classifier``. A family whose paper initialises from the training images implements
    ``init_from_data(images) -> str`` (normalised, unaugmented training images in; the line to log out;
    parameters it fixes get ``requires_grad=False``), which the trainer calls with ``model.data_init``
    (airbench's whitening stem).
    """

    num_classes: int
    in_chans: int
    num_features: int
    min_input_size: int = 1
    stage_map: Dict[str, Tuple[str, ...]] = {}
    aux_logits: bool = False
    aux_weight: float = 0.0
    model_name: str = ""
    # How the registered variant takes small images; set by the builder (cnnzoo.builder.create_model).
    small_input_spec: Optional[SmallInput] = None

    @property
    def stage_names(self) -> Tuple[str, ...]:
        return tuple(self.stage_map)

    def stage_modules(self, stage: str) -> List[nn.Module]:
        """The submodules that make up one stage of ``stage_map``."""
        if stage not in self.stage_map:
            raise ValueError(f"{self._label()} has no stage {stage!r}; its stages are {', '.join(self.stage_map)}")
        return [self.get_submodule(p) for p in self.stage_map[stage]]

    def _label(self) -> str:
        return self.model_name or type(self).__name__

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` naming the model and the remedy for an input it cannot take."""
        if x.dim() != 4:
            raise ValueError(
                f"{self._label()} expects a batch of images N x C x H x W, got a tensor of shape "
                f"{tuple(x.shape)}; add a batch dimension with x.unsqueeze(0)."
            )
        if x.shape[1] != self.in_chans:
            raise ValueError(
                f"{self._label()} was built for {self.in_chans}-channel input but got {x.shape[1]} "
                f"channels; build it with in_chans={x.shape[1]} or convert the images."
            )
        h, w = int(x.shape[-2]), int(x.shape[-1])
        if min(h, w) < self.min_input_size:
            spec = self.small_input_spec
            hint = (spec.remedy(self, self.min_input_size) if spec is not None
                    else f"resize the images to at least {self.min_input_size}x{self.min_input_size}")
            raise ValueError(
                f"{self._label()} needs inputs of at least {self.min_input_size}x{self.min_input_size} "
                f"pixels, got {h}x{w}; {hint}."
            )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def get_classifier(self) -> nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def reset_classifier(self, num_classes: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def aux_heads(self) -> List[nn.Module]:
        """The auxiliary classifiers that are built (each with ``get_classifier`` and ``reset_classifier``)."""
        return []

    def aux_head_names(self) -> Tuple[str, ...]:
        """Attribute names of the auxiliary classifiers the architecture can have, built or not."""
        return ()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.forward_head(self.forward_features(x))


class PooledFcModel(ZooModel):
    """A model whose head is global average pooling -> dropout -> ``fc``.

    The head of most networks since NiN and GoogLeNet (ResNet, Inception, Xception...). Subclasses
    set ``self.avgpool`` (a global pool), ``self.fc`` (``linear_or_identity``) and ``self.drop_rate``.
    """

    drop_rate: float = 0.0

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)
        if self.drop_rate:
            x = F.dropout(x, self.drop_rate, self.training)
        return x if pre_logits else self.fc(x)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.fc = linear_or_identity(self.num_features, num_classes)


class SequentialHeadModel(ZooModel):
    """A model whose head is ``avgpool`` -> flatten -> ``classifier``, a Sequential ending in the Linear.

    torchvision's layout for AlexNet, VGG, MobileNet and EfficientNet (dropout and hidden FC layers
    before the last one), kept so their weights load by name. ``init_classifier`` initialises a new
    last layer as the family's paper does.
    """

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)
        *body, last = self.classifier
        for layer in body:
            x = layer(x)
        return x if pre_logits else last(x)

    def get_classifier(self) -> nn.Module:
        return self.classifier[-1]

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.classifier[-1] = linear_or_identity(self.num_features, num_classes)
        if num_classes > 0:
            self.init_classifier(self.classifier[-1])

    def init_classifier(self, layer: nn.Linear) -> None:
        """PyTorch's default initialisation unless a family says otherwise."""


class AuxHeadsModel(PooledFcModel):
    """A pooled-FC model with auxiliary classifiers that train with it (GoogLeNet, Inception-v3).

    Subclasses implement ``_features(x, with_aux) -> (features, [aux logits, deepest first])`` and
    ``aux_heads()`` (the built heads, each with ``reset_classifier``). In training mode with
    ``aux_logits`` the forward pass returns :class:`AuxOutputs`; in evaluation the plain logits.
    """

    def _features(self, x: torch.Tensor, with_aux: bool) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        raise NotImplementedError  # pragma: no cover - abstract

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._features(x, with_aux=False)[0]

    def forward(self, x: torch.Tensor):
        self.check_input(x)
        train_aux = self.training and self.aux_logits
        x, aux = self._features(x, with_aux=train_aux)
        logits = self.forward_head(x)
        return AuxOutputs(logits, aux) if train_aux else logits

    def reset_classifier(self, num_classes: int) -> None:
        super().reset_classifier(num_classes)
        for head in self.aux_heads():
            head.reset_classifier(num_classes)


def linear_or_identity(in_features: int, num_classes: int, bias: bool = True) -> nn.Module:
    """The usual final layer: ``Linear`` or, for ``num_classes=0``, ``Identity`` (features out)."""
    return nn.Linear(in_features, num_classes, bias=bias) if num_classes > 0 else nn.Identity()


def out_size(size: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1, ceil: bool = False) -> int:
    """(W - F + 2P) / S + 1 for one convolution or pooling, floor or ceil mode."""
    eff = dilation * (kernel - 1) + 1
    num = size + 2 * padding - eff
    if ceil:
        o = -(-num // stride) + 1
        # PyTorch: the last pooling window must start inside the input or left padding.
        if (o - 1) * stride >= size + padding:
            o -= 1
        return o
    return num // stride + 1


def min_size_for(layers: Sequence[tuple], start: int = 1, limit: int = 1024) -> int:
    """Smallest input size for which every layer in ``layers`` gives an output >= 1.

    ``layers`` is a list of ``(kernel, stride, padding[, dilation[, ceil]])`` in order, as in a
    layer table. Used by families to derive ``min_input_size`` from their own data.
    """
    for s in range(start, limit + 1):
        size = s
        ok = True
        for spec in layers:
            k, st, p = spec[:3]
            d = spec[3] if len(spec) > 3 else 1
            c = spec[4] if len(spec) > 4 else False
            size = out_size(size, k, st, p, d, c)
            if size < 1:
                ok = False
                break
        if ok:
            return s
    raise ValueError("no input size up to the limit fits these layers")


def init_weights_default(module: nn.Module, mode: str = "fan_out") -> None:
    """Kaiming-normal convolutions, unit BatchNorm, small-normal linear: He et al. 2015."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode=mode, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, NORM_LAYERS):
            if m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
