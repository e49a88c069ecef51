"""ViT, ResMLP and gMLP (and the Mixer code they share): published sizes and what each paper specifies.

The registry-wide tests (tests/test_models.py) cover forward, backward and the eval surface; these check the
families' own claims on the small 32-px variants, or on the meta device for the 224-px ones.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnzoo import count_params, create_model, model_info
from cnnzoo.models.gmlp import SpatialGatingUnit
from cnnzoo.models.mixer import to_tokens
from cnnzoo.models.resmlp import Affine
from cnnzoo.transfer import freeze

# The exact published counts are in tests/test_models.py (PUBLISHED), with every family's.


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _meta(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, **kwargs)


def _linear(i: int, o: int) -> int:
    return i * o + o


@pytest.mark.parametrize("name,p,depth,d,mlp,heads", [("vit_b_16", 16, 12, 768, 3072, 12),
                                                     ("vit_b_32", 32, 12, 768, 3072, 12)])
def test_vit_count_by_construction(name, p, depth, d, mlp, heads):
    """Table 1's layers add up to the count: patch projection, class token, 1 + S positions, L layers, LN, head."""
    s = (224 // p) ** 2
    layer = 2 * 2 * d + _linear(d, 3 * d) + _linear(d, d) + _linear(d, mlp) + _linear(mlp, d)
    expected = _linear(3 * p * p, d) + d + (1 + s) * d + depth * layer + 2 * d + _linear(d, 1000)
    assert count_params(name) == expected
    assert _meta(name).encoder.layers[0].self_attention.num_heads == heads


def test_resmlp_and_gmlp_counts_by_construction():
    s, d = 196, 384  # ResMLP-S12: Aff, S x S cross-patch linear, Aff, MLP 4d, two LayerScales per block
    block = 2 * d + _linear(s, s) + 2 * d + _linear(d, 4 * d) + _linear(4 * d, d) + 2 * d
    assert count_params("resmlp_12_224") == _linear(3 * 16 * 16, d) + 12 * block + 2 * d + _linear(d, 1000)
    d, f = 256, 1536  # gMLP-S: LN, d -> d_ffn, LN(d_ffn / 2), n x n gate, d_ffn / 2 -> d
    block = 2 * d + _linear(d, f) + f + _linear(s, s) + _linear(f // 2, d)
    assert count_params("gmlp_s16_224") == _linear(3 * 16 * 16, d) + 30 * block + 2 * d + _linear(d, 1000)


# --------------------------------------------------------------------------------------- ViT


def _encoder_input(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    seen = []
    h = model.encoder.register_forward_pre_hook(lambda mod, args: seen.append(args[0]))
    try:
        with torch.no_grad():
            model(x)
    finally:
        h.remove()
    return seen[0]


@pytest.mark.parametrize("name,tokens", [("vit_b_16", 14 * 14 + 1), ("vit_b_32", 7 * 7 + 1), ("vit_tiny_p4_32", 65)])
def test_vit_learned_position_embedding_per_token(name, tokens):
    m = _meta(name)
    d = m.num_features
    assert isinstance(m.encoder.pos_embedding, nn.Parameter) and m.encoder.pos_embedding.shape == (1, tokens, d)
    assert m.class_token.shape == (1, 1, d)
    assert _meta(name, img_size=2 * m.img_size).encoder.pos_embedding.shape[1] == 4 * (tokens - 1) + 1


def test_vit_class_token_first_then_patches_row_by_row():
    m = create_model("vit_tiny_p4_32", num_classes=10).eval()
    with torch.no_grad():
        m.class_token.normal_()
    x = torch.randn(2, 3, 32, 32)
    seq = _encoder_input(m, x)
    assert seq.shape == (2, (32 // 4) * (32 // 4) + 1, 192)
    torch.testing.assert_close(seq[:, 0], m.class_token[0].expand(2, -1))
    with torch.no_grad():
        patches = to_tokens(m.conv_proj(x))
    torch.testing.assert_close(seq[:, 1:], patches)
    # The patch of row 1, column 0 is token 1 + 8: the grid is read row by row.
    with torch.no_grad():
        one = m.conv_proj(x[:, :, 4:8, 0:4])[:, :, 0, 0]
    torch.testing.assert_close(seq[:, 1 + 8], one)


def test_vit_head_reads_the_class_token():
    m = create_model("vit_tiny_p4_32", num_classes=10).eval()
    nn.init.normal_(m.heads.head.weight)  # the zero head would hide what it reads
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        feats = m.forward_features(x)
        assert feats.shape == (2, 192, 1, 65)
        logits = m.forward_head(feats)
        other = feats.clone()
        other[:, :, :, 1:] = 0  # the patch tokens do not reach the head directly
        torch.testing.assert_close(m.forward_head(other), logits)
        other[:, :, 0, 0] += 1
        assert not torch.allclose(m.forward_head(other), logits)


def test_vit_position_embeddings_and_class_token_learn_and_freeze_with_the_stem():
    m = create_model("vit_tiny_p4_32", num_classes=10)
    F.cross_entropy(m(torch.randn(2, 3, 32, 32)), torch.tensor([1, 2])).backward()
    # The zero head passes no gradient to the body on the first step; the head's own gradient must be there.
    assert m.heads.head.weight.grad.abs().sum() > 0 and m.encoder.pos_embedding.grad is not None
    frozen = freeze(m, until="stem")
    assert {"class_token", "encoder.pos_embedding", "conv_proj.weight", "conv_proj.bias"} == set(frozen)


def test_vit_matches_torchvision_with_a_trained_head():
    """The registry test compares zero heads (torchvision's init); here a random head, and a 28-px input padded."""
    tvvit = pytest.importorskip("torchvision.models.vision_transformer")
    tv = tvvit.VisionTransformer(image_size=32, patch_size=4, num_layers=12, num_heads=3, hidden_dim=192,
                                 mlp_dim=768, num_classes=10).eval()
    nn.init.normal_(tv.heads.head.weight)
    nn.init.normal_(tv.heads.head.bias)
    ours = create_model("vit_tiny_p4_32", num_classes=10).eval()
    ours.load_state_dict(tv.state_dict())  # the same names and shapes, nothing converted
    x = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        ref = tv(F.pad(x, (2, 2, 2, 2)))
        assert ref.abs().max() > 1
        assert (ours(x) - ref).abs().max() <= 1e-5


def test_vit_built_for_one_size_says_how_to_rebuild():
    m = create_model("vit_tiny_p4_32", num_classes=10, in_chans=1)
    with pytest.raises(ValueError, match=r"built for 32x32 inputs, got 40x40.*position embeddings.*img_size=40"):
        m(torch.randn(1, 1, 40, 40))
    with pytest.raises(ValueError, match=r"needs inputs of at least 28x28.*img_size=24"):
        m(torch.randn(1, 1, 24, 24))
    assert create_model("vit_tiny_p4_32", num_classes=10, img_size=24)(torch.randn(1, 3, 24, 24)).shape == (1, 10)


# --------------------------------------------------------------------------------------- ResMLP


def test_resmlp_affine_replaces_every_norm():
    m = create_model("resmlp_12_p4_32", num_classes=10)
    norms = [n for n, mod in m.named_modules() if isinstance(mod, (nn.LayerNorm, nn.BatchNorm2d, nn.GroupNorm))]
    assert not norms, "ResMLP has no normalisation statistics"
    affines = [mod for mod in m.modules() if isinstance(mod, Affine)]
    assert len(affines) == 2 * 12 + 1  # two per block and the final one
    for a in affines:
        assert a.alpha.shape == a.beta.shape == (1, 1, 384)
        assert torch.equal(a.alpha, torch.ones_like(a.alpha)) and torch.equal(a.beta, torch.zeros_like(a.beta))
    aff = Affine(4)
    with torch.no_grad():
        aff.alpha.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 4))
        aff.beta.fill_(0.5)
    x = torch.randn(2, 3, 4)
    torch.testing.assert_close(aff(x), x * torch.tensor([1.0, 2.0, 3.0, 4.0]) + 0.5)


@pytest.mark.parametrize("name,depth,eps", [("resmlp_12_p4_32", 12, 0.1), ("resmlp_12_224", 12, 0.1),
                                            ("resmlp_24_224", 24, 1e-5)])
def test_resmlp_layerscale_init(name, depth, eps):
    m = create_model(name, num_classes=10)
    assert len(m.blocks) == depth
    for blk in m.blocks:
        for ls in (blk.ls1, blk.ls2):
            assert ls.shape == (m.num_features,)
            torch.testing.assert_close(ls.detach(), torch.full_like(ls, eps))


def test_resmlp_cross_patch_layer_is_one_linear_map_over_the_patches():
    m = create_model("resmlp_12_p4_32", num_classes=10).eval()
    blk = m.blocks[0]
    assert blk.linear_tokens.weight.shape == (64, 64)  # 8 x 8 patches of 4 px at 32 px
    assert _meta("resmlp_12_224").blocks[0].linear_tokens.weight.shape == (196, 196)
    x = torch.randn(2, 64, 384)
    with torch.no_grad():
        blk.ls2.zero_()  # only the cross-patch sublayer: x + ls1 * (A Aff(x)^T)^T
        want = x + blk.ls1 * (blk.linear_tokens.weight @ x + blk.linear_tokens.bias[:, None])
        torch.testing.assert_close(blk(x), want, atol=1e-5, rtol=1e-5)
    assert 0.015 < m.blocks[0].mlp_channels.fc1.weight.std() < 0.025  # the official trunc-normal std 0.02


# --------------------------------------------------------------------------------------- gMLP


def test_gmlp_spatial_gating_splits_channels_in_half():
    m = create_model("gmlp_ti4_32", num_classes=10).eval()
    mlp = m.blocks[0].mlp_channels
    assert mlp.fc1.out_features == 768 and mlp.gate.norm.normalized_shape == (384,) and mlp.fc2.in_features == 384
    assert mlp.gate.proj.weight.shape == (64, 64)
    sgu = SpatialGatingUnit(8, num_tokens=5)
    nn.init.normal_(sgu.proj.weight)
    z = torch.randn(2, 5, 8)
    u, v = z[..., :4], z[..., 4:]
    want = u * (sgu.proj.weight @ F.layer_norm(v, (4,)) + sgu.proj.bias[:, None])
    torch.testing.assert_close(sgu(z), want)
    with pytest.raises(ValueError, match="in half"):
        SpatialGatingUnit(7, num_tokens=5)


@pytest.mark.parametrize("name", ["gmlp_ti4_32", "gmlp_ti16_224"])
def test_gmlp_gate_starts_near_zero_with_unit_bias(name):
    """The paper's initialisation, after the model's own: each block starts as a plain FFN (s(Z) ~ Z1)."""
    m = create_model(name, num_classes=10).eval()
    gates = [mod for mod in m.modules() if isinstance(mod, SpatialGatingUnit)]
    assert len(gates) == 30
    for g in gates:
        assert g.proj.weight.abs().max() < 1e-4 and g.proj.weight.abs().max() > 0
        assert torch.equal(g.proj.bias, torch.ones_like(g.proj.bias))
    z = torch.randn(2, gates[0].proj.in_features, 768)
    with torch.no_grad():
        torch.testing.assert_close(gates[0](z), z[..., :384], atol=1e-3, rtol=1e-3)


# --------------------------------------------------------------------------------------- shared


@pytest.mark.parametrize("name", ["vit_tiny_p4_32", "resmlp_12_p4_32", "gmlp_ti4_32"])
def test_small_variants_pad_28_px_to_their_32_px_grid(name):
    info = model_info(name)
    assert info.input_size == (3, 32, 32) and info.min_input_size == 28 and info.small_input.mode == "native"
    m = create_model(name, num_classes=10, in_chans=1).eval()
    nn.init.normal_(m.get_classifier().weight)
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(m(x), m(F.pad(x, (2, 2, 2, 2))))


@pytest.mark.parametrize("name", ["vit_b_16", "vit_b_32", "resmlp_12_224", "resmlp_24_224", "gmlp_ti16_224",
                                  "gmlp_s16_224"])
def test_224_models_resize_small_images(name):
    info = model_info(name)
    assert info.small_input.mode == "resize" and info.small_input.size == 224 == info.min_input_size


@pytest.mark.parametrize("name,keys", [
    ("mixer_s4_32", ["stem.proj.weight", "blocks.0.norm1.weight", "blocks.0.mlp_tokens.fc1.weight",
                     "blocks.7.mlp_channels.fc2.bias", "norm.weight", "head.weight"]),
    ("resmlp_12_p4_32", ["stem.proj.weight", "blocks.0.norm1.alpha", "blocks.0.linear_tokens.weight",
                         "blocks.0.mlp_channels.fc1.weight", "blocks.0.ls1", "blocks.11.ls2", "norm.beta",
                         "head.weight"]),
    ("gmlp_ti4_32", ["stem.proj.weight", "blocks.0.norm.weight", "blocks.0.mlp_channels.fc1.weight",
                     "blocks.0.mlp_channels.gate.norm.weight", "blocks.29.mlp_channels.gate.proj.bias",
                     "blocks.0.mlp_channels.fc2.weight", "norm.weight", "head.bias"]),
])
def test_timm_module_names(name, keys):
    sd = _meta(name).state_dict()
    assert [k for k in keys if k not in sd] == []
