"""gMLP: Liu, Dai, So, Le, "Pay Attention to MLPs", NeurIPS 2021.

https://arxiv.org/abs/2105.08050

An all-MLP network whose only cross-token operation is a *spatial gating unit* (SGU). After a P x P patch
embedding, L identical blocks each compute, on the n tokens X (n x d) and inside a residual connection,

    Z = GELU(LN(X) U)                       channel projection d -> d_ffn
    s(Z) = Z1 * (W LN(Z2) + b)              Z split in half along the channels; W is n x n, across the tokens
    Y = s(Z) V                              channel projection d_ffn / 2 -> d

The gate's spatial projection is initialised near zero with a bias of one, so that s(Z) ~ Z1 and each block
starts as a plain feed-forward network, taking in spatial information only as training proceeds (the paper
finds this "critical" for stable training). A final LN, average pooling over the tokens and a linear head classify.

Configurations are the paper's Table 1 for ImageNet (L = 30, d_ffn = 6d; 6M, 20M, 73M parameters).
Module names are timm's (``stem.proj``, ``blocks.N.norm``, ``blocks.N.mlp_channels.{fc1, gate.norm, gate.proj,
fc2}``, ``norm``, ``head``), so its weights load unchanged.

Decisions:
  * The SGU's projection fixes the number of tokens, so a gMLP is built for one image size
    (:class:`~cnnzoo.models.mixer.PatchGridModel`, as the Mixer); the 224-px models take small images by
    resizing to 224.
  * The paper states only the SGU's initialisation (here W ~ N(0, 1e-6), b = 1, as timm). Elsewhere the
    Mixer's is used (the Flax defaults of the JAX reference code: LeCun-normal weights, zero biases, zero head);
    timm uses Xavier-uniform instead.
  * LayerNorm epsilons as timm: 1e-6 for the block and final norms, PyTorch's 1e-5 inside the SGU.
  * Stochastic depth (the paper's survival probabilities 1.00 / 0.95 / 0.80 for Ti / S / B) rises linearly
    over the blocks, Huang et al.'s rule and DeiT's, whose recipe the paper follows; it defaults to off.
  * ``gmlp_ti4_32`` is not in the paper: gMLP-Ti with 4-px patches for 32-px images (8x8 = 64 tokens, so W is
    64 x 64); 28-px images are zero-padded to 32.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, Dict, NamedTuple

import torch
from torch import nn

from ..layers import DropPath
from ._spec import Paper, register_model
from .mixer import LN_EPS, RESIZE_224, PatchMlpModel, init_flax_defaults, linear_drop_path

__all__ = ["GMlp", "SpatialGatingBlock", "SpatialGatingUnit", "GatedMlp", "GMlpConfig", "GMLP_CONFIGS"]

GMLP = Paper("Pay Attention to MLPs", "Liu, Dai, So, Le", 2021, "https://arxiv.org/abs/2105.08050")


class GMlpConfig(NamedTuple):
    """A row of Table 1 of the paper (ImageNet models)."""

    patch: int  # patch resolution P x P
    depth: int  # L, blocks
    d_model: int  # d, channels per token
    d_ffn: int  # channels after the first projection (the SGU halves them)


GMLP_CONFIGS: Dict[str, GMlpConfig] = {
    #                  P    L  d_model d_ffn
    "Ti": GMlpConfig(16, 30, 128, 768),
    "S": GMlpConfig(16, 30, 256, 1536),
    "B": GMlpConfig(16, 30, 512, 3072),
    # Not in the paper: gMLP-Ti with 4-px patches for 28-32 px images.
    "Ti/4-32": GMlpConfig(4, 30, 128, 768),
}


class SpatialGatingUnit(nn.Module):
    """s(Z) = Z1 * (W LN(Z2) + b): half the channels gate the other half, W mixing across the n tokens."""

    def __init__(self, dim: int, num_tokens: int) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"the spatial gating unit splits the channels in half; got an odd number, {dim}")
        self.norm = nn.LayerNorm(dim // 2)
        self.proj = nn.Linear(num_tokens, num_tokens)
        self.init_gate()

    def init_gate(self) -> None:
        """W near zero and b one: the unit starts as the identity on Z1 (the paper's initialisation)."""
        nn.init.normal_(self.proj.weight, std=1e-6)
        nn.init.ones_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, v = x.chunk(2, dim=-1)  # Z1 (passes through), Z2 (the gate)
        v = self.proj(self.norm(v).transpose(1, 2)).transpose(1, 2)
        return u * v


class GatedMlp(nn.Module):
    """Channel projection d -> d_ffn, GELU, spatial gating (-> d_ffn / 2), projection back to d."""

    def __init__(self, dim: int, hidden: int, num_tokens: int, act_layer: Callable[..., nn.Module] = nn.GELU,
                 drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = act_layer()
        self.drop = nn.Dropout(drop)
        self.gate = SpatialGatingUnit(hidden, num_tokens)
        self.fc2 = nn.Linear(hidden // 2, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.gate(self.drop(self.act(self.fc1(x))))))


class SpatialGatingBlock(nn.Module):
    """One gMLP block: x + GatedMlp(LN(x)). Tokens N x n x d in and out."""

    def __init__(self, dim: int, hidden: int, num_tokens: int, act_layer: Callable[..., nn.Module] = nn.GELU,
                 drop: float = 0.0, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp_channels = GatedMlp(dim, hidden, num_tokens, act_layer, drop)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.mlp_channels(self.norm(x)))


class GMlp(PatchMlpModel):
    """gMLP for ``img_size`` x ``img_size`` images.

    Args:
        patch_size: P; ``img_size`` must be a multiple of it.
        embed_dim: d_model.
        depth: blocks L.
        mlp_dim: d_ffn, the width the spatial gating unit halves.
        img_size: the input size the model is built for (it fixes the spatial projections' size).
        max_pad: inputs from ``img_size - max_pad`` to ``img_size`` px are zero-padded (centred) to ``img_size``.
        drop_rate: dropout inside the blocks and before the head.
        drop_path_rate: stochastic depth (1 - survival probability) of the last block, rising linearly to it.
        act_layer: activation after the first projection (GELU).
    """

    fixed_by = "A gMLP's spatial gating units"

    def __init__(
        self, patch_size: int = 16, embed_dim: int = 256, depth: int = 30, mlp_dim: int = 1536,
        num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, max_pad: int = 0, drop_rate: float = 0.0,
        drop_path_rate: float = 0.0, act_layer: Callable[..., nn.Module] = nn.GELU,
    ) -> None:
        def block(num_tokens: int, drop_path: float) -> SpatialGatingBlock:
            return SpatialGatingBlock(embed_dim, mlp_dim, num_tokens, act_layer, drop_rate, drop_path)

        super().__init__(block, linear_drop_path(drop_path_rate, depth), partial(nn.LayerNorm, eps=LN_EPS),
                         patch_size=patch_size, embed_dim=embed_dim, num_classes=num_classes, in_chans=in_chans,
                         img_size=img_size, max_pad=max_pad, drop_rate=drop_rate)

    def _init_weights(self) -> None:
        init_flax_defaults(self)
        for m in self.modules():
            if isinstance(m, SpatialGatingUnit):
                m.init_gate()


def _create_gmlp(config: str, **kwargs) -> GMlp:
    c = GMLP_CONFIGS[config]
    defaults = dict(patch_size=c.patch, embed_dim=c.d_model, depth=c.depth, mlp_dim=c.d_ffn)
    return GMlp(**dict(defaults, **kwargs))


@register_model(family="gMLP", paper=GMLP, input_size=224, small_input=RESIZE_224)
def gmlp_ti16_224(**kwargs) -> GMlp:
    """gMLP-Ti: 30 blocks, d_model=128, d_ffn=768, 16-px patches at 224 px (5.9M parameters)."""
    return _create_gmlp("Ti", **kwargs)


@register_model(family="gMLP", paper=GMLP, input_size=224, small_input=RESIZE_224)
def gmlp_s16_224(**kwargs) -> GMlp:
    """gMLP-S: 30 blocks, d_model=256, d_ffn=1536, 16-px patches at 224 px (19.4M parameters)."""
    return _create_gmlp("S", **kwargs)


@register_model(family="gMLP", paper=GMLP, input_size=32)
def gmlp_ti4_32(**kwargs) -> GMlp:
    """gMLP-Ti with 4-px patches for 32-px images: 30 blocks, d_model=128, d_ffn=768; 28 px zero-padded to 32."""
    return _create_gmlp("Ti/4-32", **dict(dict(img_size=32, max_pad=4), **kwargs))
