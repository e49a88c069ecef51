"""LeNet-5: LeCun, Bottou, Bengio, Haffner, "Gradient-Based Learning Applied to Document Recognition",
Proceedings of the IEEE, 1998 (https://doi.org/10.1109/5.726791; no arXiv version).

Two models:

* ``lenet5`` -- LeNet-5 as it is usually taught today (the network of PyTorch's own "Neural Networks"
  tutorial): conv 6@5x5 -> ReLU -> 2x2 max-pool -> conv 16@5x5 -> ReLU -> 2x2 max-pool -> FC 120 -> FC 84 ->
  FC classes, fully connected C3, no RBF output; 61,706 parameters for 1x32x32 input and 10 classes.
  ``act_layer=nn.Tanh, pool_layer=nn.AvgPool2d`` gives the other common teaching version.
* ``lenet5_paper`` -- the network of section II-B and Appendix A: trainable subsampling layers
  S2/S4, the partial C3 connection table (Table I), the scaled tanh squashing function
  ``f(a) = 1.7159 tanh(2a/3)`` on every unit up to F6, and Euclidean RBF output units with fixed
  +-1 codes. Its trainable parameters through F6 total exactly the paper's 60,000
  (``params_through_f6()``).

Both read a fixed 32x32 field. Section III-A puts MNIST's 28x28 digits in the centre of that field,
so inputs of 28 to 32 pixels are zero-padded to 32x32 in ``forward_features`` (for a 28x28 image this
is exactly the "first conv padded by 2" of the common 28x28 version); larger inputs must be resized.
"""

from __future__ import annotations

from typing import Callable, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ._spec import Paper, register_model
from ._base import ZooModel, linear_or_identity

__all__ = ["LeNet5", "LeNet5Paper", "ScaledTanh", "Subsampling", "PartialConv2d", "EuclideanRBF"]

LENET = Paper(
    "Gradient-Based Learning Applied to Document Recognition",
    "LeCun, Bottou, Bengio, Haffner", 1998, "https://doi.org/10.1109/5.726791",
)

FIELD = 32  # section II-B: "The input is a 32x32 pixel image"
MIN_INPUT = 28  # MNIST's 28x28 field, centred in the 32x32 input as in section III-A

# Figure 2, the teaching version: (out channels, kernel) of C1 and C3, each followed by 2x2 pooling.
CONVS = ((6, 5), (16, 5))
FCS = (120, 84)  # C5 (a linear layer on the 16x5x5 map) and F6

# Appendix A: the squashing function f(a) = A tanh(S a).
SQUASH_A = 1.7159
SQUASH_S = 2.0 / 3.0

# Table I: the S2 feature maps each of the 16 C3 maps is connected to. Six maps read 3 contiguous
# maps, nine read 4 (six contiguous, three discontinuous) and the last reads all six: 1,516 parameters.
C3_TABLE: Tuple[Tuple[int, ...], ...] = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)
# Section II-B, layer by layer: (name, maps, kernel) of C1, S2, C3, S4, C5 and F6's width.
PAPER_LAYERS = (("c1", 6, 5), ("s2", 6, 2), ("c3", 16, 5), ("s4", 16, 2), ("c5", 120, 5))
F6_WIDTH = 84  # F6 matches the 7x12 bitmaps of the RBF codes
PAPER_PARAMS_THROUGH_F6 = 60_000  # "the network has ... 60,000 trainable parameters"


def _centre_in_field(x: torch.Tensor, field: int, label: str) -> torch.Tensor:
    """Zero-pad a 28..32 px input to the 32x32 field, centred (section III-A)."""
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if h > field or w > field:
        raise ValueError(
            f"{label} reads a fixed {field}x{field} field (its last layers are fully connected), got {h}x{w}; "
            f"resize the images to {field}x{field}."
        )
    if h == field and w == field:
        return x
    top, left = (field - h) // 2, (field - w) // 2
    return F.pad(x, (left, field - w - left, top, field - h - top))


class LeNet5(ZooModel):
    """LeNet-5 as usually taught: two conv/pool stages and three fully connected layers.

    Args:
        num_classes: outputs of the last layer; 0 gives the 84 F6 features.
        in_chans: input channels.
        act_layer: activation after every layer but the last (ReLU in PyTorch's tutorial, tanh in
            the original).
        pool_layer: 2x2 stride-2 pooling (max in the tutorial, average-like subsampling originally).
    """

    def __init__(
        self, num_classes: int = 10, in_chans: int = 1,
        act_layer: Callable[..., nn.Module] = nn.ReLU, pool_layer: Callable[..., nn.Module] = nn.MaxPool2d,
    ) -> None:
        super().__init__()
        self.num_classes, self.in_chans = num_classes, in_chans
        (c1, k1), (c2, k2) = CONVS
        self.conv1 = nn.Conv2d(in_chans, c1, k1)
        self.conv2 = nn.Conv2d(c1, c2, k2)
        self.pool = pool_layer(kernel_size=2, stride=2)
        self.act = act_layer()
        side = ((FIELD - k1 + 1) // 2 - k2 + 1) // 2  # 32 -> 28 -> 14 -> 10 -> 5
        self.fc1 = nn.Linear(c2 * side * side, FCS[0])
        self.fc2 = nn.Linear(FCS[0], FCS[1])
        self.num_features = FCS[1]
        self.fc3 = linear_or_identity(self.num_features, num_classes)
        self.min_input_size = MIN_INPUT
        self.stage_map = {"conv1": ("conv1",), "conv2": ("conv2",), "fc": ("fc1", "fc2"), "head": ("fc3",)}
        # PyTorch's default initialisation, as in the tutorial this version comes from.

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = _centre_in_field(x, FIELD, self._label())
        x = self.pool(self.act(self.conv1(x)))
        return self.pool(self.act(self.conv2(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.act(self.fc1(torch.flatten(x, 1)))
        x = self.act(self.fc2(x))
        return x if pre_logits else self.fc3(x)

    def get_classifier(self) -> nn.Module:
        return self.fc3

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.fc3 = linear_or_identity(self.num_features, num_classes)


class ScaledTanh(nn.Module):
    """Appendix A's squashing function ``f(a) = A tanh(S a)``, A = 1.7159, S = 2/3, so f(+-1) = +-1."""

    def __init__(self, amplitude: float = SQUASH_A, slope: float = SQUASH_S) -> None:
        super().__init__()
        self.amplitude, self.slope = amplitude, slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.amplitude * torch.tanh(self.slope * x)

    def extra_repr(self) -> str:
        return f"amplitude={self.amplitude}, slope={self.slope:.4f}"


def _uniform_fan_in(tensor: torch.Tensor, fan_in: int) -> None:
    # Appendix A: weights uniform in [-2.4/F, 2.4/F], F the fan-in of the unit the connection goes to.
    bound = 2.4 / fan_in
    nn.init.uniform_(tensor, -bound, bound)


class Subsampling(nn.Module):
    """S2/S4: each unit adds its 2x2 inputs, multiplies by a trainable coefficient and adds a trainable bias.

    One coefficient and one bias per feature map (2 parameters a map: S2 has 12, S4 32).
    """

    def __init__(self, channels: int, kernel_size: int = 2) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.weight = nn.Parameter(torch.empty(channels))
        self.bias = nn.Parameter(torch.empty(channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        fan_in = self.kernel_size * self.kernel_size
        _uniform_fan_in(self.weight, fan_in)
        _uniform_fan_in(self.bias, fan_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.kernel_size
        total = F.avg_pool2d(x, k) * (k * k)  # the sum of the k x k receptive field
        return total * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return f"{self.weight.numel()}, kernel_size={self.kernel_size}"


class PartialConv2d(nn.Module):
    """A convolution whose output maps each see only a listed subset of the input maps (Table I).

    Output maps with the same number of inputs are computed by one grouped convolution over the
    gathered input maps, so the parameters are exactly the table's: ``sum(len(t) * k * k + 1)``.

    Args:
        table: for each output map, the input maps it is connected to.
        kernel_size: square kernel size.
    """

    def __init__(self, table: Sequence[Sequence[int]], kernel_size: int) -> None:
        super().__init__()
        self.table = tuple(tuple(t) for t in table)
        fan_ins = sorted({len(t) for t in self.table}, key=lambda n: [len(t) for t in self.table].index(n))
        self.convs = nn.ModuleList()
        order = []
        for j, n in enumerate(fan_ins):
            maps = [i for i, t in enumerate(self.table) if len(t) == n]
            order += maps
            inputs = [c for i in maps for c in self.table[i]]
            self.convs.append(nn.Conv2d(n * len(maps), len(maps), kernel_size, groups=len(maps)))
            self.register_buffer(f"index{j}", torch.tensor(inputs, dtype=torch.long), persistent=False)
        # Where each output map lands after concatenating the groups; the identity for Table I.
        self.inverse = None if order == sorted(order) else [order.index(i) for i in range(len(order))]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [conv(x.index_select(1, getattr(self, f"index{j}"))) for j, conv in enumerate(self.convs)]
        out = torch.cat(outs, 1)
        return out if self.inverse is None else out[:, self.inverse]


class EuclideanRBF(nn.Module):
    """The output layer of section II-B: ``y_i = sum_j (x_j - w_ij)^2`` for each class i.

    The paper fixes the codes ``w_i`` to +-1 vectors (stylised 7x12 bitmaps of the characters; it
    notes random +-1 codes would do as well, which is what is used here since the bitmaps are not
    published as data). The forward pass returns ``-y``, so the largest output is the closest code
    and cross-entropy on it is the paper's discriminative criterion (eq. 9) without the "rubbish
    class" constant j.

    Args:
        in_features: width of F6 (84).
        num_classes: number of RBF units.
        trainable: learn the codes instead of keeping them fixed.
    """

    def __init__(self, in_features: int, num_classes: int, trainable: bool = False) -> None:
        super().__init__()
        codes = torch.randint(0, 2, (num_classes, in_features)).float() * 2 - 1
        if trainable:
            self.centres = nn.Parameter(codes)
        else:
            self.register_buffer("centres", codes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -(x.unsqueeze(1) - self.centres).pow(2).sum(-1)

    def extra_repr(self) -> str:
        n, d = self.centres.shape
        return f"in_features={d}, num_classes={n}, trainable={isinstance(self.centres, nn.Parameter)}"


class LeNet5Paper(ZooModel):
    """LeNet-5 as described in the paper: C1, S2, C3 (Table I), S4, C5, F6, Euclidean RBF output.

    Args:
        num_classes: RBF (or linear) output units; 0 gives the 84 F6 states.
        in_chans: input channels (1 in the paper; C1's fan-in grows with it).
        output: ``"rbf"`` (the paper's Euclidean RBF units with fixed +-1 codes) or ``"linear"``.
        rbf_trainable: learn the RBF codes (the paper keeps them fixed).
    """

    def __init__(
        self, num_classes: int = 10, in_chans: int = 1, output: str = "rbf", rbf_trainable: bool = False,
    ) -> None:
        super().__init__()
        if output not in ("rbf", "linear"):
            raise ValueError(f"output must be 'rbf' or 'linear', got {output!r}")
        self.num_classes, self.in_chans = num_classes, in_chans
        self.output_kind, self.rbf_trainable = output, rbf_trainable
        (_, c1, k1), (_, _, s2), (_, c3, k3), (_, _, s4), (_, c5, k5) = PAPER_LAYERS
        self.c1 = nn.Conv2d(in_chans, c1, k1)  # 32 -> 28
        self.s2 = Subsampling(c1, s2)  # 28 -> 14
        self.c3 = PartialConv2d(C3_TABLE, k3)  # 14 -> 10
        self.s4 = Subsampling(c3, s4)  # 10 -> 5
        self.c5 = nn.Conv2d(c3, c5, k5)  # 5 -> 1: a convolution that is fully connected on the 32 field
        self.f6 = nn.Linear(c5, F6_WIDTH)
        self.act = ScaledTanh()
        self.num_features = F6_WIDTH
        self.output = self._make_output(num_classes)
        self.min_input_size = MIN_INPUT
        self.stage_map = {
            "c1": ("c1",), "s2": ("s2",), "c3": ("c3",), "s4": ("s4",), "c5": ("c5",), "f6": ("f6",),
            "head": ("output",),
        }
        for m in (self.c1, *self.c3.convs, self.c5):
            fan_in = m.weight[0].numel()
            _uniform_fan_in(m.weight, fan_in)
            _uniform_fan_in(m.bias, fan_in)
        _uniform_fan_in(self.f6.weight, c5)
        _uniform_fan_in(self.f6.bias, c5)

    def _make_output(self, num_classes: int) -> nn.Module:
        if num_classes == 0:
            return nn.Identity()
        if self.output_kind == "rbf":
            return EuclideanRBF(self.num_features, num_classes, self.rbf_trainable)
        return nn.Linear(self.num_features, num_classes)

    def params_through_f6(self) -> int:
        """Trainable parameters of C1..F6: the paper's 60,000 at ``in_chans=1``."""
        layers = (self.c1, self.s2, self.c3, self.s4, self.c5, self.f6)
        return sum(p.numel() for m in layers for p in m.parameters() if p.requires_grad)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = _centre_in_field(x, FIELD, self._label())
        # Section II-B: every unit up to F6 passes its weighted sum through the squashing function.
        for layer in (self.c1, self.s2, self.c3, self.s4, self.c5):
            x = self.act(layer(x))
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.act(self.f6(torch.flatten(x, 1)))
        return x if pre_logits else self.output(x)

    def get_classifier(self) -> nn.Module:
        return self.output

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.output = self._make_output(num_classes)


@register_model(family="LeNet", paper=LENET, input_size=(1, FIELD, FIELD))
def lenet5(**kwargs) -> LeNet5:
    """LeNet-5 as taught (ReLU, max-pooling, full C3, linear output): 61,706 parameters for 10 classes."""
    return LeNet5(**kwargs)


@register_model(family="LeNet", paper=LENET, input_size=(1, FIELD, FIELD))
def lenet5_paper(**kwargs) -> LeNet5Paper:
    """LeNet-5 as in the paper: trainable subsampling, Table I C3, scaled tanh, RBF output (60,000 through F6)."""
    return LeNet5Paper(**kwargs)

