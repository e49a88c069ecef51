"""GoogLeNet (Inception-v1): Szegedy, Liu, Jia, Sermanet, Reed, Anguelov, Erhan, Vanhoucke, Rabinovich,
"Going Deeper with Convolutions", CVPR 2015. https://arxiv.org/abs/1409.4842

Nine Inception modules (Table 1: 3a ... 5b), each four parallel branches concatenated along the
channels: a 1x1 convolution, a 1x1 reduction then 3x3, a 1x1 reduction then "5x5", and a 3x3 max
pool then a 1x1 projection (Figure 2b). Two auxiliary classifiers on top of 4a and 4d (section 5)
add 0.3 x their loss during training and are discarded at inference.

**Layout: torchvision's, not exactly the paper's.** ``googlenet`` is weight-compatible with
``torchvision.models.googlenet`` (6,624,904 parameters without the auxiliary heads), which differs
from the paper in ways inherited from the TF-slim port its weights come from:

* every convolution is followed by BatchNorm (eps 0.001) and has no bias, and the paper's local
  response normalisation is gone;
* the "5x5" branch uses a **3x3** kernel (torchvision issue #906). ``five_by_five=True`` restores
  the paper's 5x5 kernels (7,005,832 parameters without auxiliary heads: the Caffe reference
  model's 6,998,552 plus one more per channel, BatchNorm's scale and shift replacing a bias;
  torchvision weights then no longer fit);
* the auxiliary heads pool adaptively to 4x4 where the paper has a 5x5/3 average pool. At 224 px
  both turn the 14x14 map into 4x4 (with slightly different windows); adaptive pooling also works
  at any other size, which ``small_input=True`` needs;
* the pool before 5a is 2x2/2 (the paper: 3x3/2); both give 7x7 at 224 px and have no weights.

``naive=True`` builds the paper's Figure 2a instead: the 1x1, 3x3, 5x5 convolutions and the 3x3
max pool side by side with no 1x1 reductions and no pool projection, so every module's output
grows by its whole input width. It illustrates why the reductions exist: 5b ends 4,944 channels wide
and the network has 70.3M parameters (97.5M with ``five_by_five=True``, the figure exactly) instead
of 6.6M.

Small images: ``small_input=True`` replaces the 7x7/2 stem convolution with a 3x3/1 one and drops the
two early max pools (as the CIFAR GoogLeNets do), so 32x32 images reach the 4x modules at 16x16
and the 5x modules at 8x8 instead of 2x2 and 1x1.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..layers.inception import BasicConv2d, tf_input_from_imagenet
from ._spec import Paper, SmallInput, register_model
from ._base import AuxHeadsModel, linear_or_identity, min_size_for

__all__ = ["GoogLeNet", "Inception", "NaiveInception", "InceptionAux", "INCEPTION_MODULES"]

GOOGLENET = Paper(
    "Going Deeper with Convolutions",
    "Szegedy, Liu, Jia, Sermanet, Reed, Anguelov, Erhan, Vanhoucke, Rabinovich", 2015,
    "https://arxiv.org/abs/1409.4842",
)

# Table 1 of the paper, one row per Inception module, in order.
INCEPTION_MODULES: Dict[str, Tuple[int, int, int, int, int, int]] = {
    #      #1x1  #3x3 reduce  #3x3  #5x5 reduce  #5x5  pool proj
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}
# Max pools between the module groups: module after which it sits -> (attribute name, kernel); stride 2.
POOLS_AFTER = {"3b": ("maxpool3", 3), "4e": ("maxpool4", 2)}
# Section 5: auxiliary classifiers on top of 4a and 4d; the paper weights their losses by 0.3.
AUX_AFTER = {"4a": "aux1", "4d": "aux2"}
AUX_WEIGHT = 0.3
STEM_WIDTHS = (64, 64, 192)  # conv1 7x7/2, conv2 1x1 (3x3 reduce), conv3 3x3


class Inception(nn.Module):
    """Figure 2b: 1x1 | 1x1 -> 3x3 | 1x1 -> "5x5" | 3x3 max pool -> 1x1 projection, concatenated.

    ``branch_kernel`` is the kernel of the "5x5" branch: 3 in torchvision's layout, 5 in the paper.
    """

    def __init__(
        self, in_chs: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int, ch5x5: int, pool_proj: int,
        branch_kernel: int = 3,
    ) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(in_chs, ch1x1, 1)
        self.branch2 = nn.Sequential(BasicConv2d(in_chs, ch3x3red, 1), BasicConv2d(ch3x3red, ch3x3, 3, padding=1))
        self.branch3 = nn.Sequential(
            BasicConv2d(in_chs, ch5x5red, 1),
            BasicConv2d(ch5x5red, ch5x5, branch_kernel, padding=branch_kernel // 2),
        )
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), BasicConv2d(in_chs, pool_proj, 1))
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class NaiveInception(nn.Module):
    """Figure 2a: 1x1, 3x3 and 5x5 convolutions and a 3x3 max pool on the same input, no reductions.

    The pool branch passes all ``in_chs`` channels through, so the output is wider than the input
    by ``ch1x1 + ch3x3 + ch5x5``: the blow-up that motivates the 1x1 reductions of Figure 2b.
    """

    def __init__(self, in_chs: int, ch1x1: int, ch3x3: int, ch5x5: int, branch_kernel: int = 5) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(in_chs, ch1x1, 1)
        self.branch2 = BasicConv2d(in_chs, ch3x3, 3, padding=1)
        self.branch3 = BasicConv2d(in_chs, ch5x5, branch_kernel, padding=branch_kernel // 2)
        self.branch4 = nn.MaxPool2d(3, 1, 1, ceil_mode=True)
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + in_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    """Section 5's side classifier: pool to 4x4, 1x1 conv (128), FC 1024 + ReLU, dropout 0.7, FC.

    torchvision's adaptive 4x4 average pool stands in for the paper's 5x5/3 one (the same 4x4 grid
    at 224 px), so the head also runs on the small maps of ``small_input=True``.
    """

    def __init__(self, in_chs: int, num_classes: int, drop_rate: float = 0.7) -> None:
        super().__init__()
        self.conv = BasicConv2d(in_chs, 128, 1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.fc2 = linear_or_identity(1024, num_classes)
        self.dropout = nn.Dropout(drop_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.conv(F.adaptive_avg_pool2d(x, (4, 4))), 1)
        return self.fc2(self.dropout(F.relu(self.fc1(x), inplace=True)))

    def get_classifier(self) -> nn.Module:
        return self.fc2

    def reset_classifier(self, num_classes: int) -> None:
        self.fc2 = linear_or_identity(self.fc1.out_features, num_classes)


class GoogLeNet(AuxHeadsModel):
    """GoogLeNet / Inception-v1 in torchvision's layout (see the module docstring for the differences).

    Args:
        num_classes: classifier outputs; 0 gives pooled features.
        in_chans: input channels.
        aux_logits: build the two auxiliary classifiers; in training mode ``forward`` then returns
            ``AuxOutputs(logits, [aux2, aux1])``.
        five_by_five: the paper's 5x5 kernels in the "5x5" branch instead of torchvision's 3x3.
        naive: the naive Inception module of Figure 2a (no 1x1 reductions, no pool projection).
        small_input: 3x3/1 stem convolution and no early max pools, for 28-32 px images.
        drop_rate: dropout before the classifier (the paper's 40%; torchvision uses 20%).
        aux_drop_rate: dropout in the auxiliary heads (70%, the paper's).
        transform_input: re-normalise ImageNet-normalised input to [-1, 1] as torchvision's
            pretrained weights expect (3-channel input only).
    """

    def __init__(
        self, num_classes: int = 1000, in_chans: int = 3, aux_logits: bool = True, five_by_five: bool = False,
        naive: bool = False, small_input: bool = False, drop_rate: float = 0.4, aux_drop_rate: float = 0.7,
        transform_input: bool = False,
    ) -> None:
        super().__init__()
        if transform_input and in_chans != 3:
            raise ValueError(f"transform_input=True re-normalises RGB images and needs in_chans=3, got {in_chans}")
        self.num_classes, self.in_chans = num_classes, in_chans
        self.aux_logits, self.aux_weight = aux_logits, AUX_WEIGHT
        self.small_input, self.naive, self.transform_input = small_input, naive, transform_input
        branch_kernel = 5 if five_by_five else 3

        c1, c2, c3 = STEM_WIDTHS
        if small_input:
            self.conv1 = BasicConv2d(in_chans, c1, 3, 1, 1)
            self.maxpool1: nn.Module = nn.Identity()
        else:
            self.conv1 = BasicConv2d(in_chans, c1, 7, 2, 3)
            self.maxpool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = BasicConv2d(c1, c2, 1)
        self.conv3 = BasicConv2d(c2, c3, 3, padding=1)
        self.maxpool2: nn.Module = nn.Identity() if small_input else nn.MaxPool2d(3, 2, ceil_mode=True)

        # The body is built from the table; ``_body`` keeps the order, ``_aux_at`` where each side head taps in.
        chs, self._body, self._aux_at = c3, [], {}
        pool_specs = [(3, 1, 1)] if small_input else [(7, 2, 3), (3, 2, 0, 1, True), (3, 2, 0, 1, True)]
        for name, (n1, n3r, n3, n5r, n5, proj) in INCEPTION_MODULES.items():
            if naive:
                block: nn.Module = NaiveInception(chs, n1, n3, n5, branch_kernel)
            else:
                block = Inception(chs, n1, n3r, n3, n5r, n5, proj, branch_kernel)
            setattr(self, f"inception{name}", block)
            self._body.append(f"inception{name}")
            chs = block.out_channels
            if name in AUX_AFTER:
                head = AUX_AFTER[name]
                setattr(self, head, InceptionAux(chs, num_classes, aux_drop_rate) if aux_logits else None)
                self._aux_at[f"inception{name}"] = head
            if name in POOLS_AFTER:
                pool_name, k = POOLS_AFTER[name]
                setattr(self, pool_name, nn.MaxPool2d(k, 2, ceil_mode=True))
                self._body.append(pool_name)
                pool_specs.append((k, 2, 0, 1, True))
        # The stem and the ceil-mode max pools are the only layers that can shrink a map to nothing.
        self.min_input_size = min_size_for(pool_specs)

        self.num_features = chs
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.drop_rate = drop_rate
        self.fc = linear_or_identity(chs, num_classes)
        groups: Dict[str, List[str]] = {"inception3": [], "inception4": [], "inception5": []}
        for name in INCEPTION_MODULES:
            groups[f"inception{name[0]}"].append(f"inception{name}")
        self.stage_map = {"stem": ("conv1", "conv2", "conv3"), **{k: tuple(v) for k, v in groups.items()},
                          "head": self._head_modules()}
        self._init_weights()

    def _head_modules(self) -> Tuple[str, ...]:
        return tuple(h for h in AUX_AFTER.values() if getattr(self, h) is not None) + ("fc",)

    def _init_weights(self) -> None:
        # torchvision's init: truncated normal, std 0.01, for every convolution and linear layer.
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _features(self, x: torch.Tensor, with_aux: bool) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        if self.transform_input:
            x = tf_input_from_imagenet(x)
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        aux = []
        for name in self._body:
            x = getattr(self, name)(x)
            head = self._aux_at.get(name)
            if with_aux and head is not None and getattr(self, head) is not None:
                aux.append(getattr(self, head)(x))
        return x, aux[::-1]  # deepest first: [aux2, aux1]

    def aux_heads(self) -> List[nn.Module]:
        return [h for h in (getattr(self, n) for n in AUX_AFTER.values()) if h is not None]

    def aux_head_names(self) -> Tuple[str, ...]:
        return tuple(AUX_AFTER.values())


def _create_googlenet(**kwargs) -> GoogLeNet:
    return GoogLeNet(**kwargs)


@register_model(family="GoogLeNet", paper=GOOGLENET, small_input=SmallInput("option", {"small_input": True}),
                torchvision="googlenet")
def googlenet(**kwargs) -> GoogLeNet:
    """GoogLeNet (Inception-v1), torchvision's BatchNorm layout: 6.6M parameters without auxiliary heads."""
    return _create_googlenet(**dict(dict(aux_logits=True), **kwargs))
