"""Vision Transformer: Dosovitskiy, Beyer, Kolesnikov, Weissenborn, Zhai, Unterthiner, Dehghani, Minderer,
Heigold, Gelly, Uszkoreit, Houlsby, "An Image is Worth 16x16 Words: Transformers for Image Recognition at
Scale", ICLR 2021.

https://arxiv.org/abs/2010.11929

The image is cut into non-overlapping P x P patches, each linearly projected to D channels (a conv with
kernel = stride = P); a learned class token is put in front of the S = (H/P)(W/P) patch tokens and learned 1-D
position embeddings (S + 1 of them) are added (Eq. 1). L pre-norm Transformer encoder layers follow, each
LN -> multi-head self-attention -> + and LN -> MLP (D -> MLP size -> D, GELU) -> + (Eqs. 2-3); a final LN and a
linear head classify the class token (Eq. 4).

Follows torchvision's ``VisionTransformer`` module for module: its names (``conv_proj``, ``class_token``,
``encoder.pos_embedding``, ``encoder.layers.encoder_layer_N.{ln_1, self_attention, ln_2, mlp}``, ``encoder.ln``,
``heads.head``), ``torch.nn.MultiheadAttention`` for the attention, LayerNorm epsilon 1e-6 and its
initialisation (that of the reference JAX code: LeCun-normal patch projection, position embeddings N(0, 0.02),
Xavier-uniform MLP weights with N(0, 1e-6) biases, zero class token and zero head), so its ``state_dict`` loads
unchanged (``cnnzoo.load_torchvision_weights``) and gives the same logits.

Decisions:
  * The position embeddings fix the number of tokens, so **a ViT is built for one image size** (``img_size``,
    as torchvision's ``image_size``), like the Mixer (``mixer.py``, whose :class:`PatchGridModel` it shares):
    other sizes raise a ValueError that says which ``img_size`` to build with; ``max_pad`` zero-pads slightly
    smaller inputs (centred). The paper's 2-D interpolation of the embeddings for fine-tuning at another
    resolution is not done here.
  * ``forward_features`` returns the final LN's tokens laid out as an N x D x 1 x (1 + S) map, class token first,
    then the patches row by row: the class token is what the head reads (``forward_head`` takes position 0),
    so the patch grid alone (as the Mixer returns it) would lose it.
  * No pre-logits layer: the paper's hidden tanh layer serves pre-training only, and torchvision's ImageNet
    models, as the paper's fine-tuned ones, have none.
  * The 224-px models take small images by resizing to 224 (the paper transfers to CIFAR by fine-tuning at
    higher resolution). ``vit_tiny_p4_32`` is not in the paper: the ViT-Ti width of DeiT (Touvron et al. 2021;
    D=192, 3 heads, MLP 768, 12 layers) with 4-px patches for 32-px images (8x8 + 1 = 65 tokens); 28-px images
    are zero-padded to 32 (2 px a side), as LeNet-5's digits.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Dict, List, NamedTuple

import torch
from torch import nn

from ._spec import Paper, register_model
from ._base import linear_or_identity
from .mixer import LN_EPS, RESIZE_224, PatchGridModel, lecun_normal_, to_map, to_tokens

__all__ = ["VisionTransformer", "EncoderBlock", "Encoder", "ViTConfig", "VIT_CONFIGS"]

VIT = Paper(
    "An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale",
    "Dosovitskiy, Beyer, Kolesnikov, Weissenborn, Zhai, Unterthiner, Dehghani, Minderer, Heigold, Gelly, "
    "Uszkoreit, Houlsby", 2021, "https://arxiv.org/abs/2010.11929",
)


class ViTConfig(NamedTuple):
    """A row of Table 1 of the paper, with the patch size of the variant's name (ViT-B/16: P = 16)."""

    patch: int  # patch resolution P x P
    layers: int  # L, encoder layers
    hidden: int  # D, hidden size
    mlp: int  # MLP size
    heads: int  # attention heads


# Table 1: details of the Vision Transformer variants.
VIT_CONFIGS: Dict[str, ViTConfig] = {
    #               P   L     D     MLP  heads
    "B/16": ViTConfig(16, 12, 768, 3072, 12),
    "B/32": ViTConfig(32, 12, 768, 3072, 12),
    "L/16": ViTConfig(16, 24, 1024, 4096, 16),
    "L/32": ViTConfig(32, 24, 1024, 4096, 16),
    "H/14": ViTConfig(14, 32, 1280, 5120, 16),
    # Not in the paper: DeiT's ViT-Ti (D = 192, 3 heads of 64, MLP 4D) with 4-px patches for 32-px images.
    "Ti/4-32": ViTConfig(4, 12, 192, 768, 3),
}

class TransformerMlp(nn.Sequential):
    """Linear (D -> MLP size) -> GELU -> dropout -> Linear (-> D) -> dropout: torchvision's ``MLP`` children 0-4."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(drop), nn.Linear(hidden, dim), nn.Dropout(drop))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.normal_(m.bias, std=1e-6)


class EncoderBlock(nn.Module):
    """One pre-norm encoder layer (Eqs. 2-3): x + MSA(LN(x)), then that + MLP(LN(that)). Tokens N x L x D."""

    def __init__(self, dim: int, num_heads: int, mlp_dim: int, drop: float = 0.0, attn_drop: float = 0.0) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim, eps=LN_EPS)
        self.self_attention = nn.MultiheadAttention(dim, num_heads, dropout=attn_drop, batch_first=True)
        self.dropout = nn.Dropout(drop)
        self.ln_2 = nn.LayerNorm(dim, eps=LN_EPS)
        self.mlp = TransformerMlp(dim, mlp_dim, drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.ln_1(x)
        x = x + self.dropout(self.self_attention(y, y, y, need_weights=False)[0])
        return x + self.mlp(self.ln_2(x))


class Encoder(nn.Module):
    """Position embeddings (learned, 1-D, one per token) -> dropout -> L encoder layers -> LN."""

    def __init__(self, seq_length: int, depth: int, dim: int, num_heads: int, mlp_dim: int, drop: float = 0.0,
                 attn_drop: float = 0.0) -> None:
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.empty(1, seq_length, dim).normal_(std=0.02))  # as BERT
        self.dropout = nn.Dropout(drop)
        self.layers = nn.Sequential(OrderedDict(
            (f"encoder_layer_{i}", EncoderBlock(dim, num_heads, mlp_dim, drop, attn_drop)) for i in range(depth)
        ))
        self.ln = nn.LayerNorm(dim, eps=LN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln(self.layers(self.dropout(x + self.pos_embedding)))


class _ParameterView(nn.Module):
    """A module holding a parameter that lies outside any submodule of its own (it is not registered in the model).

    ``stage_modules`` returns it so that freezing and the stage tables, which read ``module.parameters()``, see
    the class token and the position embeddings.
    """

    def __init__(self, param: nn.Parameter) -> None:
        super().__init__()
        self.param = param


class VisionTransformer(PatchGridModel):
    """ViT for ``img_size`` x ``img_size`` images.

    Args:
        patch_size: P; ``img_size`` must be a multiple of it.
        embed_dim: hidden size D.
        depth: encoder layers L.
        num_heads: attention heads (D must be a multiple).
        mlp_dim: hidden width of the MLPs.
        img_size: the input size the model is built for (it fixes the number of position embeddings).
        max_pad: inputs from ``img_size - max_pad`` to ``img_size`` px are zero-padded (centred) to ``img_size``.
        drop_rate: dropout after the position embeddings, the attention and in the MLPs (torchvision's ``dropout``).
        attn_drop_rate: dropout on the attention weights (torchvision's ``attention_dropout``).
    """

    fixed_by = "A ViT's learned position embeddings"

    def __init__(
        self, patch_size: int = 16, embed_dim: int = 768, depth: int = 12, num_heads: int = 12, mlp_dim: int = 3072,
        num_classes: int = 1000, in_chans: int = 3, img_size: int = 224, max_pad: int = 0, drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self._set_grid(img_size, patch_size, max_pad)
        self.num_classes, self.in_chans, self.num_features = num_classes, in_chans, embed_dim

        self.conv_proj = nn.Conv2d(in_chans, embed_dim, patch_size, patch_size)
        self.class_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.encoder = Encoder(self.num_patches + 1, depth, embed_dim, num_heads, mlp_dim, drop_rate, attn_drop_rate)
        self.heads = nn.Sequential(OrderedDict(head=linear_or_identity(embed_dim, num_classes)))

        # The embedding parameters sit outside any submodule of their own (torchvision's names); conv_proj comes
        # last, as the stage's module whose output is a map (viz shows the last module of each stage).
        self.stage_map = {"stem": ("class_token", "encoder.pos_embedding", "conv_proj")}
        self.stage_map.update({f"block{i + 1}": (f"encoder.layers.encoder_layer_{i}",) for i in range(depth)})
        self.stage_map["head"] = ("encoder.ln", "heads")

        lecun_normal_(self.conv_proj.weight)
        nn.init.zeros_(self.conv_proj.bias)
        self._init_head()

    def stage_modules(self, stage: str) -> List[nn.Module]:
        """The submodules of one stage; the class token and the position embeddings each in a view of its own."""
        if stage not in self.stage_map:
            return super().stage_modules(stage)  # raises, naming the stages
        params = dict(self.named_parameters())
        return [_ParameterView(params[p]) if p in params else self.get_submodule(p) for p in self.stage_map[stage]]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = to_tokens(self.conv_proj(self.fit_to_grid(x)))  # N x S x D, the patches row by row
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.encoder(x)  # N x (1 + S) x D
        return to_map(x, (1, x.shape[1]))  # N x D x 1 x (1 + S), the class token first

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x[:, :, 0, 0]  # the class token
        return x if pre_logits else self.heads(x)

    def get_classifier(self) -> nn.Module:
        return self.heads.head

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.heads.head = linear_or_identity(self.num_features, num_classes)
        self._init_head()


def _create_vit(config: str, **kwargs) -> VisionTransformer:
    c = VIT_CONFIGS[config]
    defaults = dict(patch_size=c.patch, embed_dim=c.hidden, depth=c.layers, num_heads=c.heads, mlp_dim=c.mlp)
    return VisionTransformer(**dict(defaults, **kwargs))


@register_model(family="ViT", paper=VIT, input_size=224, small_input=RESIZE_224, torchvision="vit_b_16")
def vit_b_16(**kwargs) -> VisionTransformer:
    """ViT-B/16: 12 layers, D=768, 12 heads, MLP 3072, 16-px patches at 224 px (86.6M parameters)."""
    return _create_vit("B/16", **kwargs)


@register_model(family="ViT", paper=VIT, input_size=224, small_input=RESIZE_224, torchvision="vit_b_32")
def vit_b_32(**kwargs) -> VisionTransformer:
    """ViT-B/32: 12 layers, D=768, 12 heads, MLP 3072, 32-px patches at 224 px (88.2M parameters)."""
    return _create_vit("B/32", **kwargs)


@register_model(family="ViT", paper=VIT, input_size=32)
def vit_tiny_p4_32(**kwargs) -> VisionTransformer:
    """ViT-Ti/4 for 32-px images: 12 layers, D=192, 3 heads, MLP 768, 4-px patches; 28 px zero-padded to 32."""
    return _create_vit("Ti/4-32", **dict(dict(img_size=32, max_pad=4), **kwargs))
