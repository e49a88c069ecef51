"""Registry-wide model tests: every registered model, parametrised, inputs capped so the zoo runs in CI."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import cnnzoo
from cnnzoo import AuxOutputs, count_params, create_model, list_models, model_info

ALL = list_models()


def test_zoo_is_complete():
    required = """lenet5 lenet5_paper alexnet alexnet_owt zfnet vgg11 vgg13 vgg16 vgg19 vgg11_bn vgg13_bn vgg16_bn
    vgg19_bn nin googlenet bn_inception inception_v3 xception resnet18 resnet34 resnet50 resnet101 resnet152 resnet20
    resnet32 resnet44 resnet56 resnet110 densenet121 densenet169 densenet201 densenet_bc_100_12 seresnet18 seresnet50
    squeezenet1_0 squeezenet1_1 mobilenet_v1 mobilenet_v2 efficientnet_b0 efficientnet_b1 efficientnet_b2
    efficientnet_b3 efficientnet_b4 efficientnet_b5 efficientnet_b6 efficientnet_b7 mixer_s16_224 mixer_b16_224
    simple_convnet bn_convnet
    resnext50_32x4d resnext101_32x8d resnext101_64x4d resnext29_8x64d resnext29_16x64d wide_resnet50_2
    wide_resnet101_2 wrn28_10 wrn16_8 wrn40_4 se_resnext50_32x4d preact_resnet18 preact_resnet34 preact_resnet50
    preact_resnet110 preact_resnet164 darknet53 shufflenet_g1 shufflenet_g2 shufflenet_g3 shufflenet_g4
    shufflenet_g8 shufflenet_v2_x0_5 shufflenet_v2_x1_0 shufflenet_v2_x1_5 shufflenet_v2_x2_0 mobilenet_v3_small
    mobilenet_v3_large inception_v4 inception_resnet_v2 efficientnet_v2_s efficientnet_v2_m efficientnet_v2_l
    vit_b_16 vit_b_32 vit_tiny_p4_32 resmlp_12_224 resmlp_24_224 resmlp_12_p4_32 gmlp_ti16_224 gmlp_s16_224
    gmlp_ti4_32""".split()
    missing = [n for n in required if n not in ALL]
    assert not missing, f"not registered: {missing}"
    for family in ("mixer_", "vit_", "resmlp_", "gmlp_"):
        assert any(n.startswith(family) and model_info(n).input_size[-1] <= 32 for n in ALL), f"no small-patch {family}"


def test_size(name: str) -> int:
    """The capped test input size: the default, shrunk towards 64 but never below the minimum."""
    info = model_info(name)
    return min(info.input_size[-1], max(info.min_input_size, 64))


test_size.__test__ = False  # a helper, not a test


def _x(name: str, batch: int = 2, size: int | None = None, chans: int | None = None) -> torch.Tensor:
    info = model_info(name)
    s = size or test_size(name)
    return torch.randn(batch, chans or info.input_size[0], s, s)


def _logits(out):
    return out.logits if isinstance(out, AuxOutputs) else out


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# --------------------------------------------------------------------------------------- every model


@pytest.mark.parametrize("name", ALL)
def test_train_forward_backward(name):
    info = model_info(name)
    m = create_model(name, num_classes=10, in_chans=info.input_size[0]).train()
    out = m(_x(name))
    assert isinstance(out, AuxOutputs) == (info.aux_logits and m.aux_logits)
    logits = _logits(out)
    assert logits.shape == (2, 10)
    assert torch.isfinite(logits).all()
    y = torch.tensor([1, 2])
    loss = F.cross_entropy(logits, y)
    if isinstance(out, AuxOutputs):
        assert len(out.aux) >= 1 and all(a.shape == (2, 10) for a in out.aux)
        loss = loss + m.aux_weight * sum(F.cross_entropy(a, y) for a in out.aux)
    loss.backward()
    no_grad = [n for n, p in m.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, f"parameters without gradient: {no_grad[:5]}"


@pytest.mark.parametrize("name", ALL)
def test_eval_surface(name):
    """forward == forward_head(forward_features); channels_last; num_classes=0; reset_classifier."""
    info = model_info(name)
    m = create_model(name, num_classes=10, in_chans=info.input_size[0]).eval()
    x = _x(name)
    with torch.no_grad():
        out = m(x)
        feats = m.forward_features(x)
        assert feats.dim() == 4, "forward_features must keep the spatial maps"
        torch.testing.assert_close(m.forward_head(feats), out)
        pre = m.forward_head(feats, pre_logits=True)
        assert pre.shape == (2, m.num_features)
        cl = m.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
        torch.testing.assert_close(cl, out, atol=1e-4, rtol=1e-4)
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    assert m.get_classifier() is not None

    m.reset_classifier(7)
    assert m.num_classes == 7
    with torch.no_grad():
        assert m(x).shape == (2, 7)

    with torch.device("meta"):  # shapes only: no weights to initialise
        headless = create_model(name, num_classes=0, in_chans=info.input_size[0]).eval()
    with torch.no_grad():
        assert headless(x.to("meta")).shape == (2, headless.num_features)


@pytest.mark.parametrize("name", ALL)
def test_stage_map_covers_every_parameter(name):
    info = model_info(name)
    with torch.device("meta"):
        m = create_model(name, num_classes=10, in_chans=info.input_size[0])
    assert m.stage_names and m.stage_names[-1] == "head"
    covered = set()
    for stage in m.stage_names:
        for mod in m.stage_modules(stage):
            covered |= {id(p) for p in mod.parameters()}
    missing = [n for n, p in m.named_parameters() if id(p) not in covered]
    assert not missing, f"parameters in no stage: {missing[:5]}"
    assert set(info.stages) == set(m.stage_names)


@pytest.mark.parametrize("name", ALL)
def test_input_errors(name):
    """The input checks look at shapes only, so the model and its inputs live on the meta device (no weights)."""
    info = model_info(name)
    with torch.device("meta"):
        m = create_model(name, num_classes=10, in_chans=1).eval()
        s = test_size(name)
        with torch.no_grad():
            assert m(torch.randn(1, 1, s, s)).shape == (1, 10)
            with pytest.raises(ValueError, match=r"in_chans=3"):
                m(torch.randn(1, 3, s, s))
            if info.min_input_size > 1:
                small = info.min_input_size - 1
                with pytest.raises(ValueError, match=rf"{name} needs inputs of at least {info.min_input_size}x"):
                    m(torch.randn(1, 1, small, small))


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("shape", [(1, 28), (3, 32)], ids=["gray28", "rgb32"])
def test_small_images(name, shape):
    """Every model takes 28x28 grey and 32x32 colour images in the way model_info declares."""
    chans, size = shape
    info = model_info(name)
    si = info.small_input
    kwargs = dict(si.kwargs) if si.mode == "option" else {}
    if si.mode == "resize":
        assert si.size and si.size >= info.min_input_size
        size = si.size
    m = create_model(name, num_classes=10, in_chans=chans, **kwargs).eval()
    with torch.no_grad():
        out = m(torch.randn(2, chans, size, size))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


# --------------------------------------------------------------------------------------- published figures

# Trainable parameters, 1000 classes, 3x224x224 (Inception-v3 299), from the papers and torchvision's model cards.
PUBLISHED = {
    "alexnet_owt": 61_100_840,
    "vgg11": 132_863_336,
    "vgg16": 138_357_544,
    "vgg19": 143_667_240,
    "vgg16_bn": 138_365_992,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "densenet121": 7_978_856,
    "densenet169": 14_149_480,
    "densenet201": 20_013_928,
    "squeezenet1_0": 1_248_424,
    "squeezenet1_1": 1_235_496,
    "mobilenet_v1": 4_231_976,
    "mobilenet_v2": 3_504_872,
    "efficientnet_b0": 5_288_548,
    "efficientnet_b7": 66_347_960,
    "seresnet18": 11_778_592,
    "seresnet50": 28_088_024,
    "inception_v3": 27_161_264,
    "xception": 22_855_952,
    "mixer_s16_224": 18_528_264,
    "mixer_b16_224": 59_880_472,
    # second round (issue: model zoo): torchvision's model cards, timm's exact counts
    "resnext50_32x4d": 25_028_904,
    "resnext101_32x8d": 88_791_336,
    "resnext101_64x4d": 83_455_272,
    "wide_resnet50_2": 68_883_240,
    "wide_resnet101_2": 126_886_696,
    "se_resnext50_32x4d": 27_559_896,
    "preact_resnet18": 11_687_720,
    "preact_resnet34": 21_795_880,
    "preact_resnet50": 25_549_352,
    "darknet53": 41_609_928,
    "shufflenet_v2_x0_5": 1_366_792,
    "shufflenet_v2_x1_0": 2_278_604,
    "shufflenet_v2_x1_5": 3_503_624,
    "shufflenet_v2_x2_0": 7_393_996,
    "mobilenet_v3_small": 2_542_856,
    "mobilenet_v3_large": 5_483_032,
    "inception_v4": 42_679_816,
    "inception_resnet_v2": 55_843_464,
    "efficientnet_v2_s": 21_458_488,
    "efficientnet_v2_m": 54_139_356,
    "efficientnet_v2_l": 118_515_272,
    "vit_b_16": 86_567_656,
    "vit_b_32": 88_224_232,
    "resmlp_12_224": 15_350_872,
    "resmlp_24_224": 30_020_680,
    "gmlp_ti16_224": 5_867_328,
    "gmlp_s16_224": 19_422_656,
}
WITH_KWARGS = [
    ("googlenet", dict(aux_logits=False), 6_624_904),
    ("inception_v3", dict(aux_logits=False), 23_834_568),
    ("lenet5", dict(num_classes=10, in_chans=1), 61_706),
]
# The papers' figures for the CIFAR nets are rounded (millions, 10 classes): compare at their precision.
CIFAR_PUBLISHED = [("resnet20", "0.27"), ("resnet32", "0.46"), ("resnet44", "0.66"), ("resnet56", "0.85"),
                   ("resnet110", "1.7"), ("densenet_bc_100_12", "0.8"), ("preact_resnet110", "1.7"),
                   ("preact_resnet164", "1.7"), ("resnext29_8x64d", "34.4"), ("wrn28_10", "36.5"), ("wrn16_8", "11.0"),
                   ("wrn40_4", "8.9")]


@pytest.mark.parametrize("name,expected", sorted(PUBLISHED.items()))
def test_published_parameter_counts(name, expected):
    assert count_params(name) == expected


@pytest.mark.parametrize("name,kwargs,expected", WITH_KWARGS, ids=[w[0] for w in WITH_KWARGS])
def test_published_counts_with_options(name, kwargs, expected):
    assert count_params(name, **kwargs) == expected


@pytest.mark.parametrize("name,millions", CIFAR_PUBLISHED)
def test_cifar_parameter_counts(name, millions):
    n = count_params(name, num_classes=10, in_chans=3)
    digits = len(millions.split(".")[1])
    assert f"{n / 1e6:.{digits}f}" == millions, n


def test_lenet5_paper_sixty_thousand():
    m = create_model("lenet5_paper", num_classes=10, in_chans=1)
    assert m.params_through_f6() == 60_000


@pytest.mark.parametrize("size,grids", [(28, [27, 13, 6, 3]), (32, [31, 15, 7, 3])])
def test_airbench_layer_table(size, grids):
    """airbench94: 2x2 valid stem of 2*C*4 filters, groups 64-256-256 each halving the grid, max-pool, scaled FC."""
    for chans in (1, 3):
        m = create_model("airbench94", num_classes=10, in_chans=chans).eval()
        assert m.stem[0].out_channels == 8 * chans and m.stem[0].kernel_size == (2, 2)
        x = torch.randn(2, chans, size, size)
        seen = [m.stem(x)]
        for group in m.layers:
            seen.append(group(seen[-1]))
        assert [t.shape[-1] for t in seen] == grids
        assert [t.shape[1] for t in seen[1:]] == [64, 256, 256]
        feats = torch.flatten(m.pool(seen[-1]), 1)
        assert torch.allclose(m(x), m.fc(feats) / 9, atol=1e-6)  # the paper's logit scale 1/9, no FC bias
        assert m.fc.bias is None
    # 3x3 convs without bias, BN after each: 24*3*4+24 + 9*(24*64+64*64+64*256+256*256+256*256+256*256) + BN + FC
    convs = 9 * (24 * 64 + 64 * 64 + 64 * 256 + 256 * 256 + 256 * 256 + 256 * 256)
    assert count_params("airbench94", num_classes=10) == 24 * 12 + 24 + convs + 2 * (
        2 * 64 + 4 * 256) + 256 * 10


def test_efficientnet_compound_scaling_is_derived():
    """b1..b7 differ from b0 only by their coefficients: widths and depths grow monotonically."""
    counts = [count_params(f"efficientnet_b{i}") for i in range(8)]
    assert counts == sorted(counts)
    sizes = [model_info(f"efficientnet_b{i}").input_size[-1] for i in range(8)]
    assert sizes == [224, 240, 260, 300, 380, 456, 528, 600]


# --------------------------------------------------------------------------------------- torchvision

TV_NAMES = [n for n in ALL if model_info(n).torchvision]
TV_KWARGS = {
    "googlenet": dict(aux_logits=True, init_weights=True, transform_input=False),
    "inception_v3": dict(aux_logits=True, init_weights=True, transform_input=False),
}


def test_torchvision_families_covered():
    for n in ["alexnet_owt", "vgg16_bn", "googlenet", "inception_v3", "resnet50", "densenet121", "squeezenet1_1",
              "mobilenet_v2", "efficientnet_b0", "resnext50_32x4d", "wide_resnet50_2", "shufflenet_v2_x1_0",
              "mobilenet_v3_large", "efficientnet_v2_s", "vit_b_16"]:
        assert n in TV_NAMES, n


@pytest.mark.parametrize("name", TV_NAMES)
def test_torchvision_equivalence(name):
    torchvision = pytest.importorskip("torchvision")
    info = model_info(name)
    tv = getattr(torchvision.models, info.torchvision)(weights=None, **TV_KWARGS.get(info.torchvision, {})).eval()
    with torch.no_grad():  # zero-initialised tensors (ViT's head, zero-gamma BNs) would hide a mismatch
        for p in tv.parameters():
            if not p.any():
                p.normal_(0, 0.02)
    ours = cnnzoo.load_torchvision_weights(create_model(name), tv.state_dict()).eval()
    x = _x(name, size=max(test_size(name), 64))
    with torch.no_grad():
        diff = (ours(x) - tv(x)).abs().max().item()
    assert diff <= 1e-5, diff


def test_load_torchvision_weights_refuses_other_architecture():
    torchvision = pytest.importorskip("torchvision")
    with pytest.raises(ValueError, match="do not fit"):
        cnnzoo.load_torchvision_weights(create_model("resnet18"), torchvision.models.resnet34(weights=None).state_dict())


# --------------------------------------------------------------------------------------- registry


def test_list_models_wildcards():
    assert list_models("resnet1*") == ["resnet18", "resnet101", "resnet110", "resnet152"]
    assert list_models("nothing*") == []
    assert "seresnet50" in list_models("*50")


def test_unknown_model_suggests_closest():
    with pytest.raises(ValueError, match=r"unknown model 'resnet5'.*resnet50"):
        create_model("resnet5")
    with pytest.raises(ValueError, match="unknown model"):
        model_info("vgg17")


def test_min_input_side_reads_the_model_or_says_one():
    """Every caller's one reading of ``min_input_size``: the model's own, 1 where a module declares none or None."""
    from cnnzoo.builder import min_input_side

    assert min_input_side(create_model("airbench_cpu", in_chans=1)) == 9
    assert min_input_side(nn.Conv2d(1, 1, 3)) == 1
    plain = nn.Identity()
    plain.min_input_size = None
    assert min_input_side(plain) == 1


def test_unknown_kwarg_is_a_clear_error():
    with pytest.raises(ValueError, match=r"resnet18: .*unexpected keyword"):
        create_model("resnet18", colour="blue")


@pytest.mark.parametrize("name", ALL)
def test_model_info_complete(name):
    info = model_info(name)
    assert info.paper.title and info.paper.url.startswith("http") and 1980 < info.paper.year < 2030
    assert info.min_input_size >= 1 and info.input_size[-1] >= info.min_input_size
    assert info.small_input.mode in ("native", "option", "resize")
    assert info.description, "each variant's builder needs a one-line docstring"
    assert math.isfinite(count_params(name))


def test_docs_list_every_model():
    """README and docs/models.md show every registered model."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for doc in ("README.md", "docs/models.md"):
        text = (root / doc).read_text()
        missing = [n for n in ALL if f"`{n}`" not in text]
        assert not missing, f"{doc} does not list {missing}; paste `cnnzoo list --format markdown`"


def test_cli_list_and_info(capsys):
    import json

    from cnnzoo.cli import main

    assert main(["list", "resnet*"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["name", "family", "year"] and out[-1] == "10 models"
    assert any(line.startswith("resnet50 ") and "25,557,032" in line for line in out)
    assert main(["list", "--format", "json", "vgg16"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["params"] == 138_357_544
    assert main(["info", "googlenet", "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["aux_logits"] is True and d["stages"][-1] == "head" and d["torchvision"] == "googlenet"
    assert main(["info", "googlenet"]) == 0
    assert "Going Deeper with Convolutions" in capsys.readouterr().out
