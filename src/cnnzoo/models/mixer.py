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
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable, Dict, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import DropPath
from ._spec import Paper, SmallInput, register_model
from ._base import ZooModel, linear_or_identity

__all__ = ["MlpMixer", "MixerBlock", "MixerConfig", "MIXER_CONFIGS"]

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


def _lecun_normal_(w: torch.Tensor) -> None:
    # Flax's default kernel init in the official code: truncated normal, variance 1/fan_in (the
    # divisor corrects the standard deviation lost to truncation at two sigmas).
    fan_in = w[0].numel()
    std = math.sqrt(1.0 / fan_in) / 0.87962566103423978
    nn.init.trunc_normal_(w, std=std, a=-2 * std, b=2 * std)


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


class MlpMixer(ZooModel):
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

    def __init__(
        self, patch_size: int = 16, embed_dim: int = 512, depth: int = 8, tokens_mlp: int = 256,
        channels_mlp: int = 2048, num_classes: int = 1000, in_chans: int = 3, img_size: int = 224,
        max_pad: int = 0, drop_rate: float = 0.0, drop_path_rate: float = 0.0,
        act_layer: Callable[..., nn.Module] = nn.GELU,
    ) -> None:
        super().__init__()
        if img_size % patch_size:
            n = -(-img_size // patch_size) * patch_size
            raise ValueError(
                f"img_size ({img_size}) must be a multiple of patch_size ({patch_size}); for {img_size}-px images "
                f"use img_size={n}, max_pad={n - img_size} (zero-padded to {n})"
            )
        if not 0 <= max_pad < img_size:
            raise ValueError(f"max_pad must be in [0, img_size), got {max_pad}")
        self.num_classes, self.in_chans, self.num_features = num_classes, in_chans, embed_dim
        self.img_size, self.patch_size, self.max_pad = img_size, patch_size, max_pad
        self.grid = img_size // patch_size
        self.min_input_size = img_size - max_pad
        self.drop_rate = drop_rate
        norm_layer = partial(nn.LayerNorm, eps=LN_EPS)

        self.stem = PatchEmbed(patch_size, in_chans, embed_dim)
        rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.Sequential(*[
            MixerBlock(embed_dim, self.grid ** 2, tokens_mlp, channels_mlp, act_layer, norm_layer, drop_rate, r)
            for r in rates
        ])
        self.norm = norm_layer(embed_dim)
        self.head = linear_or_identity(embed_dim, num_classes)

        self.stage_map = {"stem": ("stem",)}
        self.stage_map.update({f"block{i + 1}": (f"blocks.{i}",) for i in range(depth)})
        self.stage_map["head"] = ("norm", "head")
        self._init_weights()

    def _init_weights(self) -> None:
        # The official JAX code: Flax defaults (LeCun normal, zero bias) and a zero-initialised head.
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                _lecun_normal_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        self._zero_head()

    def _zero_head(self) -> None:
        if isinstance(self.head, nn.Linear):
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

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
            f"A Mixer's token-mixing MLPs take a fixed number of patches ({self.grid}x{self.grid} of "
            f"{self.patch_size} px here): build it with img_size={n}{pad} for {size}x{size} images."
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        h, w = x.shape[-2:]
        if h < self.img_size or w < self.img_size:
            top, left = (self.img_size - h) // 2, (self.img_size - w) // 2
            x = F.pad(x, (left, self.img_size - w - left, top, self.img_size - h - top))
        x = self.stem(x)  # N x C x H/P x W/P
        n, c, gh, gw = x.shape
        x = self.norm(self.blocks(x.flatten(2).transpose(1, 2)))  # tokens N x S x C
        return x.transpose(1, 2).reshape(n, c, gh, gw)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean(dim=(2, 3))  # global average pooling over the tokens
        x = F.dropout(x, self.drop_rate, self.training) if self.drop_rate else x
        return x if pre_logits else self.head(x)

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.head = linear_or_identity(self.num_features, num_classes)
        self._zero_head()


def _create_mixer(config: str, **kwargs) -> MlpMixer:
    c = MIXER_CONFIGS[config]
    defaults = dict(patch_size=c.patch, embed_dim=c.hidden, depth=c.depth, tokens_mlp=c.tokens_mlp,
                    channels_mlp=c.channels_mlp)
    return MlpMixer(**dict(defaults, **kwargs))


# The paper fine-tunes on CIFAR at 224 px; from scratch on small images, mixer_s4_32 fits better.
_RESIZE = SmallInput("resize", size=224)


@register_model(family="MLP-Mixer", paper=MIXER, input_size=224, small_input=_RESIZE)
def mixer_s16_224(**kwargs) -> MlpMixer:
    """Mixer-S/16: 8 layers, C=512, D_S=256, D_C=2048, 16-px patches at 224 px (18.5M parameters)."""
    return _create_mixer("S/16", **dict(dict(img_size=224), **kwargs))


@register_model(family="MLP-Mixer", paper=MIXER, input_size=224, small_input=_RESIZE)
def mixer_b16_224(**kwargs) -> MlpMixer:
    """Mixer-B/16: 12 layers, C=768, D_S=384, D_C=3072, 16-px patches at 224 px (59.9M parameters)."""
    return _create_mixer("B/16", **dict(dict(img_size=224), **kwargs))


@register_model(family="MLP-Mixer", paper=MIXER, input_size=32)
def mixer_s4_32(**kwargs) -> MlpMixer:
    """Mixer-S/4 at half width for 32-px images: 8 layers, C=256, 4-px patches; 28 px zero-padded to 32."""
    return _create_mixer("S/4-32", **dict(dict(img_size=32, max_pad=4), **kwargs))
