"""ResMLP: Touvron, Bojanowski, Caron, Cord, El-Nouby, Grave, Izacard, Joulin, Synnaeve, Verbeek, Jégou,
"ResMLP: Feedforward networks for image classification with data-efficient training", IEEE TPAMI 2022
(arXiv 2021).

https://arxiv.org/abs/2105.03404

An all-MLP network with no normalisation statistics: after a P x P patch embedding (a conv with kernel =
stride = P), each residual block applies (Eqs. 1-2)

    Z = X + Aff((A Aff(X)^T)^T)            cross-patch sublayer: one linear layer A (S x S) across the patches
    Y = Z + Aff(C GELU(B Aff(Z)))          cross-channel sublayer: an MLP of width 4d, as a Transformer's

where ``Aff(x) = alpha * x + beta`` is a learned per-channel affine map (``Affine``), which replaces LayerNorm
(no statistics over the tokens or the batch). The outer Aff of each sublayer is LayerScale (Touvron et al.
2021, CaiT): its beta merges with the linear layer's bias, leaving a per-channel scale (``ls1``, ``ls2``)
initialised to a small epsilon: 0.1 at depth 12, 1e-5 at depth 24, 1e-6 deeper (the official code's values).
A final Aff, average pooling over the patches and a linear head classify.

Follows the official code (facebookresearch/deit, ``resmlp_models.py``): configurations, LayerScale epsilons,
truncated-normal (std 0.02) linear weights with zero biases, PyTorch's default for the patch convolution, the
same stochastic-depth rate in every block. Module names are timm's (``stem.proj``, ``blocks.N.norm1.alpha``,
``blocks.N.linear_tokens``, ``blocks.N.mlp_channels.fc1``, ``blocks.N.ls1``, ``norm``, ``head``), with its
1 x 1 x d shape of alpha and beta, so timm's port of the official weights loads unchanged.

Decisions:
  * The cross-patch layer fixes the number of patches, so a ResMLP is built for one image size
    (:class:`~cnnzoo.models.mixer.PatchGridModel`, as the Mixer); the 224-px models take small images by
    resizing to 224 (the paper transfers to CIFAR by fine-tuning at 224).
  * timm initialises resmlp_12's LayerScale at 1e-4; the official code and paper use 0.1, kept here.
  * ``resmlp_12_p4_32`` is not in the paper: ResMLP-S12 with 4-px patches for 32-px images (8x8 = 64 patches,
    so A is 64 x 64); 28-px images are zero-padded to 32.
"""

from __future__ import annotations

from typing import Callable, Dict, NamedTuple

import torch
from torch import nn

from ..layers import DropPath
from ._spec import Paper, register_model
from .mixer import RESIZE_224, MlpBlock, PatchMlpModel

__all__ = ["ResMlp", "ResBlock", "Affine", "ResMlpConfig", "RESMLP_CONFIGS"]

RESMLP = Paper(
    "ResMLP: Feedforward networks for image classification with data-efficient training",
    "Touvron, Bojanowski, Caron, Cord, El-Nouby, Grave, Izacard, Joulin, Synnaeve, Verbeek, Jégou", 2021,
    "https://arxiv.org/abs/2105.03404",
)


class ResMlpConfig(NamedTuple):
    """A ResMLP variant of the paper (Table 1 and Section 3)."""

    patch: int  # patch resolution P x P
    width: int  # d, channels per patch
    depth: int  # residual blocks
    layerscale: float  # LayerScale initialisation epsilon


MLP_RATIO = 4  # the cross-channel MLP's hidden width is 4d, as in a Transformer

RESMLP_CONFIGS: Dict[str, ResMlpConfig] = {
    #                     P    d   depth  epsilon
    "S12": ResMlpConfig(16, 384, 12, 0.1),
    "S24": ResMlpConfig(16, 384, 24, 1e-5),
    "S36": ResMlpConfig(16, 384, 36, 1e-6),
    "B24": ResMlpConfig(8, 768, 24, 1e-6),
    # Not in the paper: S12 with 4-px patches for 28-32 px images.
    "S12/4-32": ResMlpConfig(4, 384, 12, 0.1),
}


class Affine(nn.Module):
    """``Aff(x) = alpha * x + beta`` per channel: ResMLP's replacement for LayerNorm, identity at initialisation."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.beta, self.alpha, x)


class ResBlock(nn.Module):
    """One ResMLP block (Eqs. 1-2): a linear layer across the patches, then an MLP across the channels.

    Each sublayer is Aff -> layer -> LayerScale inside a residual connection. Tokens N x S x d in and out.
    """

    def __init__(self, dim: int, num_patches: int, layerscale: float, act_layer: Callable[..., nn.Module] = nn.GELU,
                 drop: float = 0.0, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = Affine(dim)
        self.linear_tokens = nn.Linear(num_patches, num_patches)
        self.norm2 = Affine(dim)
        self.mlp_channels = MlpBlock(dim, MLP_RATIO * dim, act_layer, drop)
        self.ls1 = nn.Parameter(torch.full((dim,), layerscale))
        self.ls2 = nn.Parameter(torch.full((dim,), layerscale))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Cross-patch: the same S x S linear map, shared by all channels, mixes the patches of each channel.
        x = x + self.drop_path(self.ls1 * self.linear_tokens(self.norm1(x).transpose(1, 2)).transpose(1, 2))
        return x + self.drop_path(self.ls2 * self.mlp_channels(self.norm2(x)))


def _trunc_normal_linear(layer: nn.Linear) -> None:
    # The official code's: truncated normal, std 0.02 (cut at +-2, as timm's trunc_normal_), zero bias.
    nn.init.trunc_normal_(layer.weight, std=0.02)
    nn.init.zeros_(layer.bias)


class ResMlp(PatchMlpModel):
    """ResMLP for ``img_size`` x ``img_size`` images.

    Args:
        patch_size: P; ``img_size`` must be a multiple of it.
        embed_dim: channels d per patch.
        depth: residual blocks.
        layerscale: LayerScale's initial value (the paper's epsilon).
        img_size: the input size the model is built for (it fixes the cross-patch layers' size).
        max_pad: inputs from ``img_size - max_pad`` to ``img_size`` px are zero-padded (centred) to ``img_size``.
        drop_rate: dropout inside the MLPs and before the head.
        drop_path_rate: stochastic depth, the same rate in every block (the official code).
        act_layer: activation of the MLPs (GELU).
    """

    fixed_by = "A ResMLP's cross-patch linear layers"

    def __init__(
        self, patch_size: int = 16, embed_dim: int = 384, depth: int = 12, layerscale: float = 0.1,
        num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, max_pad: int = 0, drop_rate: float = 0.0,
        drop_path_rate: float = 0.0, act_layer: Callable[..., nn.Module] = nn.GELU,
    ) -> None:
        def block(num_patches: int, drop_path: float) -> ResBlock:
            return ResBlock(embed_dim, num_patches, layerscale, act_layer, drop_rate, drop_path)

        super().__init__(block, [drop_path_rate] * depth, Affine, patch_size=patch_size, embed_dim=embed_dim,
                         num_classes=num_classes, in_chans=in_chans, img_size=img_size, max_pad=max_pad,
                         drop_rate=drop_rate)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                _trunc_normal_linear(m)

    def init_classifier(self, layer: nn.Linear) -> None:
        _trunc_normal_linear(layer)  # the official code initialises the head as every linear layer


def _create_resmlp(config: str, **kwargs) -> ResMlp:
    c = RESMLP_CONFIGS[config]
    defaults = dict(patch_size=c.patch, embed_dim=c.width, depth=c.depth, layerscale=c.layerscale)
    return ResMlp(**dict(defaults, **kwargs))


@register_model(family="ResMLP", paper=RESMLP, input_size=224, small_input=RESIZE_224)
def resmlp_12_224(**kwargs) -> ResMlp:
    """ResMLP-S12: 12 blocks, d=384, 16-px patches at 224 px, LayerScale 0.1 (15.4M parameters)."""
    return _create_resmlp("S12", **kwargs)


@register_model(family="ResMLP", paper=RESMLP, input_size=224, small_input=RESIZE_224)
def resmlp_24_224(**kwargs) -> ResMlp:
    """ResMLP-S24: 24 blocks, d=384, 16-px patches at 224 px, LayerScale 1e-5 (30.0M parameters)."""
    return _create_resmlp("S24", **kwargs)


@register_model(family="ResMLP", paper=RESMLP, input_size=32)
def resmlp_12_p4_32(**kwargs) -> ResMlp:
    """ResMLP-S12 with 4-px patches for 32-px images: 12 blocks, d=384, 8x8 patches; 28 px zero-padded to 32."""
    return _create_resmlp("S12/4-32", **dict(dict(img_size=32, max_pad=4), **kwargs))
