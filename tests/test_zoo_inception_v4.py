"""Inception-v4 and Inception-ResNet-v2: published sizes, the paper's grids, the residual scaling of section 3.3.

Whole networks are built on the meta device (shapes only); the residual blocks are built alone, so the file runs
in seconds although the networks have 42.7M and 55.8M parameters.
"""

from __future__ import annotations

from typing import List, Tuple

import pytest
import torch
from torch import nn

from cnnzoo import count_params, create_model, model_info
from cnnzoo.models.inception_v4 import BLOCK8, BLOCK8_LAST, BLOCK17, BLOCK35, Residual, ResidualBlock

NAMES = ["inception_v4", "inception_resnet_v2"]


def _meta(name: str) -> nn.Module:
    with torch.device("meta"):
        return create_model(name).eval()


def _stage_shapes(model: nn.Module, size: int) -> List[Tuple[int, int, int]]:
    """(channels, height, width) after each stage but the head, for a size x size input."""
    x = torch.zeros(1, 3, size, size, device="meta")
    shapes = []
    for stage in model.stage_names[:-1]:
        for module in model.stage_modules(stage):
            x = module(x)
        shapes.append(tuple(x.shape[1:]))
    return shapes


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ------------------------------------------------------------------------------------------ published figures


def test_inception_v4_stem_grids_are_figure_3s():
    """Figure 3's annotations: 149x149x32, 147x147x32, 147x147x64, 73x73x160, 71x71x192, 35x35x384."""
    m = _meta("inception_v4")
    x = torch.zeros(1, 3, 299, 299, device="meta")
    seen = []
    for module in m.stage_modules("stem"):
        x = module(x)
        seen.append(tuple(x.shape[1:]))
    assert seen == [(32, 149, 149), (32, 147, 147), (64, 147, 147), (160, 73, 73), (192, 71, 71), (384, 35, 35)]


@pytest.mark.parametrize("name,grids", [
    # Figure 9: stem 35x35x384, Inception-A 35x35x384, Reduction-A + B 17x17x1024, Reduction-B + C 8x8x1536.
    ("inception_v4", [(384, 35, 35), (384, 35, 35), (1024, 17, 17), (1536, 8, 8)]),
    # The released Inception-ResNet-v2: 320 / 1088 / 2080 wide blocks, Conv2d_7b to 1536 before the pool.
    ("inception_resnet_v2", [(320, 35, 35), (320, 35, 35), (1088, 17, 17), (1536, 8, 8)]),
])
def test_stage_grids_at_299(name, grids):
    m = _meta(name)
    assert _stage_shapes(m, 299) == grids
    assert m.num_features == 1536


@pytest.mark.parametrize("name", NAMES)
def test_smallest_input_and_the_small_image_resize(name):
    """75 px is the least input the valid-padded layers take; 139 px the least that keeps the grids 15/7/3."""
    info = model_info(name)
    assert info.min_input_size == 75 and info.small_input.size == 139
    m = _meta(name)
    assert [s[-1] for s in _stage_shapes(m, 75)] == [7, 7, 3, 1]
    with pytest.raises(RuntimeError):  # PyTorch's own error below it: the minimum is exact
        m.forward_features(torch.zeros(1, 3, 74, 74, device="meta"))
    assert [s[-1] for s in _stage_shapes(m, 139)] == [15, 15, 7, 3]
    assert [s[-1] for s in _stage_shapes(m, 138)] == [14, 14, 6, 2]


def test_average_pools_exclude_padding():
    """TF's "SAME" average pooling divides by the in-image window: a constant map stays constant at its border."""
    m = _meta("inception_v4")
    pools = [p for p in m.modules() if isinstance(p, nn.AvgPool2d)]
    assert len(pools) == 4 + 7 + 3  # one per Inception-A, -B, -C block
    assert not any(p.count_include_pad for p in pools)
    torch.testing.assert_close(pools[0](torch.ones(1, 1, 5, 5)), torch.ones(1, 1, 5, 5))  # no weights: any device


def test_paper_dropout_before_the_classifier():
    """Figures 9 and 15: dropout with keep probability 0.8."""
    assert all(_meta(n).drop_rate == 0.2 for n in NAMES)


# ------------------------------------------------------------------------------------------ residual scaling


def test_released_residual_scales():
    """0.17 / 0.10 / 0.20 for the 10 A, 20 B and 10 C blocks; the last C block adds unscaled, without ReLU."""
    blocks = [b for b in _meta("inception_resnet_v2").modules() if isinstance(b, ResidualBlock)]
    assert [b.scale for b in blocks] == [0.17] * 10 + [0.10] * 20 + [0.20] * 9 + [1.0]
    assert [b.relu for b in blocks] == [True] * 39 + [False]
    assert [b.out_channels for b in blocks] == [320] * 10 + [1088] * 20 + [2080] * 10


def _block(spec: Residual, chans: int) -> ResidualBlock:
    block = ResidualBlock(chans, spec).eval()
    for bn in block.modules():  # non-trivial BatchNorm statistics, so the branches do not sit at zero
        if isinstance(bn, nn.BatchNorm2d):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
    return block


@pytest.mark.parametrize("spec,chans,scale", [(BLOCK35, 320, 0.17), (BLOCK17, 1088, 0.10), (BLOCK8, 2080, 0.20)],
                         ids=["block35", "block17", "block8"])
def test_residual_block_adds_the_scaled_expansion(spec, chans, scale):
    """Figures 16, 17, 19 with section 3.3: relu(x + scale * linear 1x1(concat(branches)))."""
    block = _block(spec, chans)
    assert isinstance(block.up, nn.Conv2d) and block.up.bias is not None and block.up.kernel_size == (1, 1)
    x = torch.randn(2, chans, 5, 5)
    with torch.no_grad():
        residual = block.up(block.branches(x))
        assert residual.abs().mean() > 0.1  # the check below would pass for a vanishing branch
        torch.testing.assert_close(block(x), torch.relu(x + scale * residual))


@pytest.mark.parametrize("spec,chans,activation", [(BLOCK35, 320, torch.relu), (BLOCK8_LAST, 2080, lambda t: t)],
                         ids=["block35", "block8_last"])
def test_residual_block_with_a_silent_branch_is_the_identity(spec, chans, activation):
    """With the expansion's weights at zero only the shortcut is left: ReLU(x), or x itself for the last block."""
    block = _block(spec, chans)
    nn.init.zeros_(block.up.weight)
    nn.init.zeros_(block.up.bias)
    x = torch.randn(2, chans, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(block(x), activation(x))
