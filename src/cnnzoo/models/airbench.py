"""airbench: the small VGG-like networks built for time to accuracy.

Keller Jordan, "94% on CIFAR-10 in 3.29 Seconds on a Single GPU", 2024 (https://arxiv.org/abs/2404.00498),
which carries on David Page's "How to Train Your ResNet" (2018) DAWNBench work. The network is a 2x2
"whitening" convolution and three conv groups, each ``conv 3x3 -> max-pool 2 -> BN -> GELU -> conv 3x3
-> BN -> GELU``, then a global max-pool and a bias-free linear layer whose output is scaled by 1/9.

Decisions:

* The paper initialises the 2x2 stem from the eigenvectors of the training patches' second moments and
  freezes it. A cnnzoo model is built before it sees data, so the stem is built as an ordinary learnable
  2x2 convolution (bias, GELU, no BN) of the paper's width ``2 x in_chans x 2 x 2`` (24 for RGB, 8 for
  grey), and :meth:`AirNet.init_from_data` whitens and freezes it when a run asks for it
  (``model.data_init=true``: the trainer passes it normalised, unaugmented training images).
* The paper's BatchNorm has frozen scale and momentum 0.6 (in PyTorch's convention 0.4); the model's is
  PyTorch's default BatchNorm, so it trains with any cnnzoo recipe, and ``train.freeze_bn_scale=true``
  with ``train.bn_momentum=0.4`` make it the paper's.
* The rest of the paper's method belongs to its training script, and lives in the trainer, for any model:
  lookahead (``train.lookahead``, :class:`cnnzoo.train.optim.Lookahead`), freezing the stem's bias after 3
  epochs (``train.freeze_after``), normalisation biases at 64x the learning rate
  (``optim.norm_bias_lr_scale``) and the dirac start of every 3x3 convolution of the groups
  (``model.init=dirac``, :func:`cnnzoo.builder.initialize`; it also sets the 2x2 stem's first filters to a
  one-pixel shift, which ``model.data_init`` then overwrites). The recipe in
  ``configs/fast_fashion-mnist.yaml`` is cnnzoo's own.
* 28 x 28 and 32 x 32 images both run natively: 2x2 "valid" stem to 27 (31), then 13, 6, 3 (15, 7, 3).

Variants: ``airbench94`` is the paper's widths (64, 256, 256); ``airbench_cpu`` (16, 32, 64) is
cnnzoo's narrow one for training on a laptop-class CPU: on a 1x28x28 image 3.4M multiply-adds against
airbench94's 82.6M (and 7.7M for bn_convnet), chosen by measured time to accuracy (benchmarks/RESULTS.md);
``airbench_cpu_x2`` (32, 64, 128) doubles its widths, the middle width for ~94% on Fashion-MNIST in minutes on
two cores (widths that are multiples of 16 measured fastest per multiply-add with oneDNN's bf16 kernels).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ._spec import Paper, register_model
from ._base import ZooModel, linear_or_identity

__all__ = ["AirNet"]

AIRBENCH = Paper(
    "94% on CIFAR-10 in 3.29 Seconds on a Single GPU", "Jordan", 2024, "https://arxiv.org/abs/2404.00498",
)

# widths of the three conv groups: the paper's for airbench94, cnnzoo's narrow CPU variant
WIDTHS = {
    "airbench94": (64, 256, 256),
    "airbench_cpu": (16, 32, 64),
    "airbench_cpu_x2": (32, 64, 128),
}
LOGIT_SCALE = 1 / 9  # the paper's scaling of the logits
WHITEN_EPS = 5e-4  # added to each eigenvalue before the whitening divides by its square root (airbench's)


ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU}  # the paper's GELU; ReLU as an option (cheaper on a CPU)


class ConvGroup(nn.Sequential):
    """conv 3x3 -> max-pool 2 -> BN -> act -> conv 3x3 -> BN -> act (pooling halves H and W; act is GELU)."""

    def __init__(self, in_chs: int, out_chs: int, act: str = "gelu") -> None:
        super().__init__(
            nn.Conv2d(in_chs, out_chs, 3, padding=1, bias=False),
            nn.MaxPool2d(2),
            nn.BatchNorm2d(out_chs),
            ACTIVATIONS[act](),
            nn.Conv2d(out_chs, out_chs, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_chs),
            ACTIVATIONS[act](),
        )


class AirNet(ZooModel):
    """2x2 stem, three ConvGroups, global max-pool, linear (scaled by ``logit_scale``).

    Args:
        widths: output channels of the three conv groups.
        num_classes: outputs; 0 gives the pooled ``widths[-1]`` features.
        in_chans: input channels; the stem has ``8 * in_chans`` filters.
        logit_scale: multiplies the logits (1/9 in the paper).
        act: the activation after the stem and every BatchNorm: ``"gelu"`` (the paper's) or ``"relu"``.
    """

    def __init__(
        self, widths: Sequence[int] = WIDTHS["airbench94"], num_classes: int = 10, in_chans: int = 3,
        logit_scale: float = LOGIT_SCALE, act: str = "gelu",
    ) -> None:
        super().__init__()
        if len(widths) != 3:
            raise ValueError(f"airbench takes three group widths, got {tuple(widths)}")
        if act not in ACTIVATIONS:
            raise ValueError(f"airbench's act must be one of {', '.join(ACTIVATIONS)}, got {act!r}")
        self.num_classes, self.in_chans, self.logit_scale = num_classes, in_chans, logit_scale
        stem = 2 * in_chans * 2 * 2
        self.stem = nn.Sequential(nn.Conv2d(in_chans, stem, 2, padding=0, bias=True), ACTIVATIONS[act]())
        chs = [stem, *widths]
        self.layers = nn.Sequential(*(ConvGroup(chs[i], chs[i + 1], act) for i in range(3)))
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.num_features = widths[-1]
        self.fc = linear_or_identity(self.num_features, num_classes, bias=False)
        self.min_input_size = 9  # 2x2 valid stem, then three 2x pools down to 1
        self.stage_map = {"stem": ("stem",), **{f"group{i + 1}": (f"layers.{i}",) for i in range(3)},
                          "head": ("fc",)}

    @torch.no_grad()
    def init_from_data(self, images: torch.Tensor, eps: float = WHITEN_EPS) -> str:
        """Whiten the stem from ``images`` (N x C x H x W, normalised as in training) and freeze its weight.

        Every 2x2 patch (stride 1) is a vector p of d = 4 x in_chans numbers; S = E[p p^T] (uncentred) has
        eigenvalues l_i and eigenvectors v_i. The stem's first d filters become v_i / sqrt(l_i + eps), so their
        outputs on these images have second moments l_i / (l_i + eps), close to the identity; the next d are
        their negatives, so that the GELU after the stem keeps both signs of every direction. The bias starts at
        0 and stays trainable; the weight is frozen, as in the paper. Returns the line the trainer logs.
        """
        conv = self.stem[0]
        kh, kw = conv.kernel_size
        d = self.in_chans * kh * kw
        second = torch.zeros(d, d, dtype=torch.float64, device=images.device)
        n = 0
        for chunk in images.split(256):  # S summed by chunks: all the patches at once are 4x the images (float64: 8x)
            patches = chunk.float().unfold(2, kh, 1).unfold(3, kw, 1)  # N x C x H' x W' x kh x kw
            flat = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, d).double()  # (c, i, j) order, as the weight's
            second += flat.T @ flat
            n += flat.shape[0]
        eigenvalues, eigenvectors = torch.linalg.eigh(second / n)
        scale = 1 / torch.sqrt(eigenvalues.clamp_min(0) + eps)  # eigh may return a tiny negative for a null direction
        filters = (eigenvectors.T * scale[:, None]).reshape(d, self.in_chans, kh, kw)
        conv.weight.copy_(torch.cat([filters, -filters]).to(conv.weight.dtype))
        conv.bias.zero_()
        conv.weight.requires_grad_(False)
        return (f"stem whitened from {n:,} {kh}x{kw} patches of {len(images):,} training images (eigenvalues "
                f"{float(eigenvalues[-1]):.3g} .. {float(eigenvalues[0]):.3g}, eps {eps:g}); stem.0.weight frozen")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.pool(x), 1)
        if pre_logits or self.num_classes == 0:
            return x
        return self.fc(x) * self.logit_scale

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.fc = linear_or_identity(self.num_features, num_classes, bias=False)


@register_model(family="airbench", paper=AIRBENCH, input_size=32)
def airbench94(**kwargs) -> AirNet:
    """airbench94: 2x2 stem, conv groups 64-256-256, max-pool, linear; built for CIFAR-10 time to accuracy."""
    return AirNet(**dict(dict(widths=WIDTHS["airbench94"]), **kwargs))


@register_model(family="airbench", paper=AIRBENCH, input_size=32)
def airbench_cpu(**kwargs) -> AirNet:
    """airbench, narrow (16-32-64) for CPU training: cnnzoo's variant of airbench94 at a quarter of its widths."""
    return AirNet(**dict(dict(widths=WIDTHS["airbench_cpu"]), **kwargs))


@register_model(family="airbench", paper=AIRBENCH, input_size=32)
def airbench_cpu_x2(**kwargs) -> AirNet:
    """airbench at twice airbench_cpu's widths (32-64-128): cnnzoo's middle width between it and airbench94."""
    return AirNet(**dict(dict(widths=WIDTHS["airbench_cpu_x2"]), **kwargs))
