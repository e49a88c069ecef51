"""MLP-Mixer: Tolstikhin, Houlsby, Kolesnikov, Beyer, Zhai, Unterthiner, Yung, Steiner, Keysers, Uszkoreit,
Lucic, Dosovitskiy, "MLP-Mixer: An all-MLP Architecture for Vision", NeurIPS 2021.

https://arxiv.org/abs/2105.01601

No convolutions beyond the patch embedding and no attention: the image is cut into non-overlapping
P x P patches, each linearly projected to C channels (a conv with kernel = stride = P), and N Mixer
layers alternate a *token-mixing* MLP (applied to every channel, across the S patches, hidden D_S)
and a *channel-mixing* MLP (applied to every patch, across channels, hidden D_C), each after a
LayerNorm and inside a residual connection, with GELU. A final LayerNorm, global average pooling
over the tokens and a zero-initialised linear head classify.

The token-mixing MLP has S inputs, so **a Mixer is built for one image size**: ``img_size`` (default:
the registration's input size) fixes S = (img_size / P)^2 and ``min_input_size`` is ``img_size``.
Other sizes raise a ValueError that says to build with ``img_size=...`` (or to resize).
``max_pad`` relaxes this by letting inputs up to ``max_pad`` pixels smaller be zero-padded (centred)
to ``img_size``: ``mixer_s4_32`` uses ``max_pad=4``, so a 28x28 MNIST digit is placed in the middle
of a 32x32 field (2 px each side) — LeNet-5's convention — and sees the same 8x8 = 64 patches as a
32x32 CIFAR image; build it with ``img_size=28`` instead for 7x7 = 49 patches and no padding.

The 224-px models take small images by resizing to 224, as the paper does when it transfers to
CIFAR-10/100 (fine-tuning at 224); to train from scratch on 32-px images use ``mixer_s4_32`` (or
build with ``img_size=32, patch_size=4``).

Module names are timm's (``stem.proj``, ``blocks.N.mlp_tokens.fc1``, ``norm``, ``head``), so its
ported weights load unchanged. ``forward_features`` returns the tokens as an N x C x H/P x W/P map.

This file also holds what the patch-token families share: :class:`PatchGridModel` (a model built for one
grid of P x P patches: the size checks, the rebuild hint, the centred zero-padding), :class:`PatchMlpModel`
(the all-MLP body: patch embedding, residual blocks over the tokens, norm, average, head), which ResMLP
(``resmlp.py``) and gMLP (``gmlp.py``) build on, and the token <-> map helpers the ViT (``vit.py``) uses too.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable, Dict, List, NamedTuple, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import DropPath
from ._spec import Paper, SmallInput, register_model
from ._base import ZooModel, linear_or_identity

__all__ = ["MlpMixer", "MixerBlock", "MixerConfig", "MIXER_CONFIGS", "PatchGridModel", "PatchMlpModel", "PatchEmbed",
           "MlpBlock", "RESIZE_224", "LN_EPS", "lecun_normal_", "init_flax_defaults", "linear_drop_path", "to_tokens",
           "to_map"]

MIXER = Paper(
    "MLP-Mixer: An all-MLP Architecture for Vision",
    "Tolstikhin, Houlsby, Kolesnikov, Beyer, Zhai, Unterthiner, Yung, Steiner, Keysers, Uszkoreit, Lucic, "
    "Dosovitskiy", 2021, "https://arxiv.org/abs/2105.01601",
)


class MixerConfig(NamedTuple):
    """A row of Table 1 of the paper."""

    patch: int  # patch resolution P x P
    hidden: int  # hidden size C (channels per token)
    depth: int  # number of Mixer layers
    tokens_mlp: int  # D_S, hidden width of the token-mixing MLP
    channels_mlp: int  # D_C, hidden width of the channel-mixing MLP


# Table 1: the specifications of the Mixer architectures (input 224 x 224).
MIXER_CONFIGS: Dict[str, MixerConfig] = {
    #               P     C   N   D_S    D_C
    "S/32": MixerConfig(32, 512, 8, 256, 2048),
    "S/16": MixerConfig(16, 512, 8, 256, 2048),
    "B/32": MixerConfig(32, 768, 12, 384, 3072),
    "B/16": MixerConfig(16, 768, 12, 384, 3072),
    "L/32": MixerConfig(32, 1024, 24, 512, 4096),
    "L/16": MixerConfig(16, 1024, 24, 512, 4096),
    "H/14": MixerConfig(14, 1280, 32, 640, 5120),
    # Not in the paper: S's depth and MLP ratios (D_S = C/2, D_C = 4C) at half its width, with 4-px
    # patches for 28-32 px images (8x8 = 64 tokens at 32 px).
    "S/4-32": MixerConfig(4, 256, 8, 128, 1024),
}

LN_EPS = 1e-6  # the JAX reference's LayerNorm epsilon (Flax default)

# The papers fine-tune on CIFAR at 224 px or more; from scratch on small images the 4-px-patch variants fit better.
RESIZE_224 = SmallInput("resize", size=224)


def lecun_normal_(w: torch.Tensor) -> None:
    """Flax's default kernel init: truncated normal of variance 1/fan_in.

    The divisor corrects the standard deviation lost to truncation at two sigmas.
    """
    fan_in = w[0].numel()
    std = math.sqrt(1.0 / fan_in) / 0.87962566103423978
    nn.init.trunc_normal_(w, std=std, a=-2 * std, b=2 * std)


def init_flax_defaults(module: nn.Module) -> None:
    """The JAX reference code's initialisation: LeCun normal kernels, zero biases, unit LayerNorm."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            lecun_normal_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def linear_drop_path(rate: float, depth: int) -> List[float]:
    """Stochastic depth rising linearly from 0 at the first block to ``rate`` at the last (Huang et al. 2016)."""
    return [rate * i / max(depth - 1, 1) for i in range(depth)]


def to_tokens(x: torch.Tensor) -> torch.Tensor:
    """An N x C x H x W map as N x (H*W) x C tokens, row by row (the patch order of the papers)."""
    return x.flatten(2).transpose(1, 2)


def to_map(tokens: torch.Tensor, grid: Tuple[int, int]) -> torch.Tensor:
    """N x (H*W) x C tokens as an N x C x H x W map: the 4-D output ``forward_features`` gives."""
    n, _, c = tokens.shape
    return tokens.transpose(1, 2).reshape(n, c, *grid)


class PatchEmbed(nn.Module):
    """The per-patch fully connected layer: a conv with kernel = stride = P, no overlap."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class MlpBlock(nn.Module):
    """Two fully connected layers with a GELU between them (the paper's ``MlpBlock``)."""

    def __init__(self, dim: int, hidden: int, act_layer: Callable[..., nn.Module] = nn.GELU, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = act_layer()
        self.drop = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class MixerBlock(nn.Module):
    """One Mixer layer: LN -> token-mixing MLP (across patches) -> +; LN -> channel-mixing MLP -> +.

    Input and output are tokens, N x S x C.
    """

    def __init__(
        self, dim: int, num_tokens: int, tokens_mlp: int, channels_mlp: int,
        act_layer: Callable[..., nn.Module] = nn.GELU, norm_layer: Callable[..., nn.Module] = nn.LayerNorm,
        drop: float = 0.0, drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.mlp_tokens = MlpBlock(num_tokens, tokens_mlp, act_layer, drop)
        self.norm2 = norm_layer(dim)
        self.mlp_channels = MlpBlock(dim, channels_mlp, act_layer, drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Token mixing: the same MLP, shared by all channels, mixes the S patches of each channel.
        x = x + self.drop_path(self.mlp_tokens(self.norm1(x).transpose(1, 2)).transpose(1, 2))
        return x + self.drop_path(self.mlp_channels(self.norm2(x)))


class PatchGridModel(ZooModel):
    """A model of P x P patch tokens built for one image size: its layers across the tokens fix their number.

    A subclass calls ``_set_grid`` in ``__init__``, feeds ``fit_to_grid(x)`` to its patch embedding and
    initialises a new classifier with ``_init_head`` (zero unless ``init_classifier`` says otherwise). Inputs
    from ``img_size - max_pad`` to ``img_size`` px are zero-padded (centred) to ``img_size``; others raise a
    ValueError that says which ``img_size`` (and ``max_pad``) to build the model with.
    """

    # What fixes the number of patches, as the error message names it.
    fixed_by = "Its layers across the patches"
    img_size: int
    patch_size: int
    max_pad: int
    grid: int  # patches per side

    def _set_grid(self, img_size: int, patch_size: int, max_pad: int) -> None:
        if img_size % patch_size:
            n = -(-img_size // patch_size) * patch_size
            raise ValueError(
                f"img_size ({img_size}) must be a multiple of patch_size ({patch_size}); for {img_size}-px images "
                f"use img_size={n}, max_pad={n - img_size} (zero-padded to {n})"
            )
        if not 0 <= max_pad < img_size:
            raise ValueError(f"max_pad must be in [0, img_size), got {max_pad}")
        self.img_size, self.patch_size, self.max_pad = img_size, patch_size, max_pad
        self.grid = img_size // patch_size
        self.min_input_size = img_size - max_pad

    @property
    def num_patches(self) -> int:
        return self.grid ** 2

    def check_input(self, x: torch.Tensor) -> None:
        """Also require the size the model was built for (or at most ``max_pad`` px smaller)."""
        try:
            super().check_input(x)
        except ValueError as e:
            if x.dim() == 4 and x.shape[1] == self.in_chans:  # too small: say how to build for that size
                raise ValueError(f"{e} {self._rebuild_hint(x)}") from None
            raise
        h, w = int(x.shape[-2]), int(x.shape[-1])
        if max(h, w) > self.img_size:
            sizes = f"{self.min_input_size}-{self.img_size}" if self.max_pad else f"{self.img_size}"
            raise ValueError(
                f"{self._label()} was built for {self.img_size}x{self.img_size} inputs, got {h}x{w}. "
                f"{self._rebuild_hint(x)} Or resize the images to {sizes} px square."
            )

    def _rebuild_hint(self, x: torch.Tensor) -> str:
        size = max(int(x.shape[-2]), int(x.shape[-1]))
        n = -(-size // self.patch_size) * self.patch_size  # the next multiple of the patch size
        if n == self.img_size:  # a non-square image of the right size: nothing to rebuild
            return f"Pad or resize the images to {n}x{n}."
        pad = f", max_pad={n - size}" if n != size else ""
        return (
            f"{self.fixed_by} take a fixed number of patches ({self.grid}x{self.grid} of "
            f"{self.patch_size} px here): build it with img_size={n}{pad} for {size}x{size} images."
        )

    def init_classifier(self, layer: nn.Linear) -> None:
        """A zero-initialised head, as the JAX reference code of ViT and Mixer."""
        nn.init.zeros_(layer.weight)
        nn.init.zeros_(layer.bias)

    def _init_head(self) -> None:
        head = self.get_classifier()
        if isinstance(head, nn.Linear):  # not the Identity of num_classes=0
            self.init_classifier(head)

    def fit_to_grid(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` checked and zero-padded, centred, to ``img_size`` x ``img_size``."""
        self.check_input(x)
        h, w = x.shape[-2:]
        if h < self.img_size or w < self.img_size:
            top, left = (self.img_size - h) // 2, (self.img_size - w) // 2
            x = F.pad(x, (left, self.img_size - w - left, top, self.img_size - h - top))
        return x


class PatchMlpModel(PatchGridModel):
    """The all-MLP body (Mixer, ResMLP, gMLP): patch embedding -> residual blocks over the tokens -> norm ->
    average over the tokens -> linear head, with timm's module names (``stem.proj``, ``blocks.N``, ``norm``, ``head``).

    Args:
        make_block: ``(number of patches, drop-path rate) -> block``, one call per block.
        drop_path_rates: one stochastic-depth rate per block; their number is the depth.
        norm_layer: ``(channels) -> module``, the norm after the last block.
        drop_rate: dropout before the head (the blocks take theirs from ``make_block``).

    A subclass sets its initialisation in ``_init_weights`` (and the classifier's in ``init_classifier``).
    """

    def __init__(
        self, make_block: Callable[[int, float], nn.Module], drop_path_rates: Sequence[float],
        norm_layer: Callable[[int], nn.Module], *, patch_size: int, embed_dim: int, num_classes: int, in_chans: int,
        img_size: int, max_pad: int, drop_rate: float,
    ) -> None:
        super().__init__()
        self._set_grid(img_size, patch_size, max_pad)
        self.num_classes, self.in_chans, self.num_features = num_classes, in_chans, embed_dim
        self.drop_rate = drop_rate

        self.stem = PatchEmbed(patch_size, in_chans, embed_dim)
        self.blocks = nn.Sequential(*[make_block(self.num_patches, r) for r in drop_path_rates])
        self.norm = norm_layer(embed_dim)
        self.head = linear_or_identity(embed_dim, num_classes)

        self.stage_map = {"stem": ("stem",)}
        self.stage_map.update({f"block{i + 1}": (f"blocks.{i}",) for i in range(len(self.blocks))})
        self.stage_map["head"] = ("norm", "head")
        self._init_weights()
        self._init_head()

    def _init_weights(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(self.fit_to_grid(x))  # N x C x H/P x W/P
        return to_map(self.norm(self.blocks(to_tokens(x))), x.shape[-2:])

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean(dim=(2, 3))  # global average pooling over the tokens
        x = F.dropout(x, self.drop_rate, self.training) if self.drop_rate else x
        return x if pre_logits else self.head(x)

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.head = linear_or_identity(self.num_features, num_classes)
        self._init_head()


class MlpMixer(PatchMlpModel):
    """MLP-Mixer for ``img_size`` x ``img_size`` images.

    Args:
        patch_size: P; ``img_size`` must be a multiple of it.
        embed_dim: hidden size C.
        depth: number of Mixer layers.
        tokens_mlp: D_S, hidden width of the token-mixing MLPs.
        channels_mlp: D_C, hidden width of the channel-mixing MLPs.
        img_size: the input size the model is built for (it fixes the number of tokens).
        max_pad: inputs from ``img_size - max_pad`` to ``img_size`` px are zero-padded (centred) to
            ``img_size``; 0 accepts ``img_size`` only.
        drop_rate: dropout inside the MLPs and before the head.
        drop_path_rate: stochastic depth, rising linearly to this rate over the layers.
        act_layer: activation of the MLPs (GELU).
    """

    fixed_by = "A Mixer's token-mixing MLPs"

    def __init__(
        self, patch_size: int = 16, embed_dim: int = 512, depth: int = 8, tokens_mlp: int = 256,
        channels_mlp: int = 2048, num_classes: int = 1000, in_chans: int = 3, img_size: int = 224,
        max_pad: int = 0, drop_rate: float = 0.0, drop_path_rate: float = 0.0,
        act_layer: Callable[..., nn.Module] = nn.GELU,
    ) -> None:
        norm_layer = partial(nn.LayerNorm, eps=LN_EPS)

        def block(num_patches: int, drop_path: float) -> MixerBlock:
            return MixerBlock(embed_dim, num_patches, tokens_mlp, channels_mlp, act_layer, norm_layer, drop_rate,
                              drop_path)

        super().__init__(block, linear_drop_path(drop_path_rate, depth), norm_layer, patch_size=patch_size,
                         embed_dim=embed_dim, num_classes=num_classes, in_chans=in_chans, img_size=img_size,
                         max_pad=max_pad, drop_rate=drop_rate)

    def _init_weights(self) -> None:
        init_flax_defaults(self)  # the official JAX code's (its zero head: init_classifier)


def _create_mixer(config: str, **kwargs) -> MlpMixer:
    c = MIXER_CONFIGS[config]
    defaults = dict(patch_size=c.patch, embed_dim=c.hidden, depth=c.depth, tokens_mlp=c.tokens_mlp,
                    channels_mlp=c.channels_mlp)
    return MlpMixer(**dict(defaults, **kwargs))


@register_model(family="MLP-Mixer", paper=MIXER, input_size=224, small_input=RESIZE_224)
def mixer_s16_224(**kwargs) -> MlpMixer:
    """Mixer-S/16: 8 layers, C=512, D_S=256, D_C=2048, 16-px patches at 224 px (18.5M parameters)."""
    return _create_mixer("S/16", **dict(dict(img_size=224), **kwargs))


@register_model(family="MLP-Mixer", paper=MIXER, input_size=224, small_input=RESIZE_224)
def mixer_b16_224(**kwargs) -> MlpMixer:
    """Mixer-B/16: 12 layers, C=768, D_S=384, D_C=3072, 16-px patches at 224 px (59.9M parameters)."""
    return _create_mixer("B/16", **dict(dict(img_size=224), **kwargs))


@register_model(family="MLP-Mixer", paper=MIXER, input_size=32)
def mixer_s4_32(**kwargs) -> MlpMixer:
    """Mixer-S/4 at half width for 32-px images: 8 layers, C=256, 4-px patches; 28 px zero-padded to 32."""
    return _create_mixer("S/4-32", **dict(dict(img_size=32, max_pad=4), **kwargs))
