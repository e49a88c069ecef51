"""The command line speaks one language: shapes are C x H x W everywhere, a batch is ``--batch-size``, a list
pattern without wildcards is a part of the name, and an axis is named by its own letter.
"""

from __future__ import annotations

import json

import pytest

from cnnzoo.analysis.shapes import parse_input
from cnnzoo.cli import build_parser, main
from cnnzoo.commands.list import name_pattern
from cnnzoo.errors import UserError


def cli(capsys, *argv):
    """Run the CLI in-process: (exit status, stdout, stderr)."""
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


# ------------------------------------------------------------------------------------------- shapes

@pytest.mark.parametrize("text, shape", [
    ("1x28x28", (1, 28, 28)), ("3x224x224", (3, 224, 224)), ("3x32x32", (3, 32, 32)),
    ("192x28x28", (192, 28, 28)), ("64x56x56", (64, 56, 56)), ("3x299x299", (3, 299, 299)),
    ("3x32x64", (3, 32, 64)), ("512x7x7", (512, 7, 7)), ("3x3x3", (3, 3, 3)), ("64x64x50", (64, 64, 50)),
    ("28x28", (3, 28, 28)), ("32x64", (3, 32, 64)), ("224", (3, 224, 224)), ("3×32×32", (3, 32, 32)),
])
def test_chw_shapes_are_read_as_chw(text, shape):
    assert parse_input(text) == shape


def test_channels_fill_in_hw_and_square_forms():
    assert parse_input("28", channels=1) == (1, 28, 28)
    assert parse_input("28x28", channels=1) == (1, 28, 28)
    assert parse_input("3x28x28", channels=1) == (3, 28, 28)  # a given C wins


@pytest.mark.parametrize("text, meant", [
    ("28x28x192", "192x28x28"), ("224x224x3", "3x224x224"), ("32x32x3", "3x32x32"), ("7x7x512", "512x7x7"),
    ("28x28x1", "1x28x28"), ("112x112x64", "64x112x112"), ("1x1x1024", "1024x1x1"),
])
def test_hwc_looking_shapes_are_refused_with_the_chw_meant(text, meant):
    with pytest.raises(UserError) as e:
        parse_input(text)
    assert str(e.value) == f"--input {text} looks like H x W x C; shapes are C x H x W: did you mean {meant}?"


def test_need_channels_refuses_hw_and_square():
    for text in ("28x28", "28"):
        with pytest.raises(UserError, match="C x H x W"):
            parse_input(text, what="--head", need_channels=True)
    assert parse_input("512x7x7", what="--head", need_channels=True) == (512, 7, 7)


@pytest.mark.parametrize("argv, message", [
    (["cost", "--input", "28x28x192", "--output", "32", "--kernel", "5"],
     "--input 28x28x192 looks like H x W x C; shapes are C x H x W: did you mean 192x28x28?"),
    (["cost", "--head", "7x7x512"],
     "--head 7x7x512 looks like H x W x C; shapes are C x H x W: did you mean 512x7x7?"),
    (["summary", "lenet5", "--input", "32x32x1"],
     "--input 32x32x1 looks like H x W x C; shapes are C x H x W: did you mean 1x32x32?"),
    (["benchmark", "lenet5", "--input", "224x224x3"],
     "--input 224x224x3 looks like H x W x C; shapes are C x H x W: did you mean 3x224x224?"),
])
def test_commands_refuse_hwc_in_one_line_exit_2(capsys, argv, message):
    rc, out, err = cli(capsys, *argv)
    assert rc == 2 and out == ""
    assert err == f"cnnzoo: error: {message}\n"


# --------------------------------------------------------------------------------------------- cost

def test_cost_input_is_chw(capsys):
    rc, out, _ = cli(capsys, "cost", "--input", "192x28x28", "--output", 32, "--kernel", 5, "-f", "json")
    assert rc == 0
    (std,) = json.loads(out)["conv"]
    assert std["params"] == 153_600 == 5 * 5 * 192 * 32  # 192 input channels, not 28
    assert std["macs"] == 120_422_400 == 28 * 28 * 32 * 5 * 5 * 192
    rc, out, _ = cli(capsys, "cost", "--input", "3x32x64", "--output", 8, "--kernel", 3, "-f", "json")
    (std,) = json.loads(out)["conv"]
    assert rc == 0 and std["params"] == 3 * 3 * 3 * 8 and std["macs"] == 32 * 64 * 8 * 3 * 3 * 3
    rc, out, _ = cli(capsys, "cost", "--input", "192x28x28", "--output", 32, "--kernel", 5, "--bottleneck", 16)
    assert rc == 0 and out.startswith("5x5 convolution, 192x28x28 -> 32x28x28 ")
    assert "12,443,648" in out


def test_cost_head_is_chw(capsys):
    rc, out, _ = cli(capsys, "cost", "--head", "512x7x7")
    assert rc == 0 and "classifier head on a 512x7x7 feature map" in out
    assert "flatten + FC (512*7*7 = 25,088 inputs)" in out and "25,089,000" in out and "513,000" in out
    rc, _, err = cli(capsys, "cost", "--head", "512x7")
    assert rc == 2 and err.startswith("cnnzoo: error: --head takes C x H x W")


def test_cost_help_says_chw(capsys):
    with pytest.raises(SystemExit):
        main(["cost", "--help"])
    out = capsys.readouterr().out
    assert "--input CxHxW" in out and "--head CxHxW" in out and "HxWxC" not in out


# ---------------------------------------------------------------------------------------- benchmark

def test_benchmark_takes_batch_size_and_the_old_batch():
    parser = build_parser()
    assert parser.parse_args(["benchmark", "lenet5"]).batch_size == 64
    for flag in ("--batch-size", "-b", "--batch"):
        args = parser.parse_args(["benchmark", "lenet5", flag, "8"])
        assert args.batch_size == 8 and not hasattr(args, "batch")


def test_benchmark_help_shows_batch_size_only(capsys):
    with pytest.raises(SystemExit):
        main(["benchmark", "--help"])
    out = capsys.readouterr().out
    assert "--batch-size" in out and "--batch " not in out and "--batch BATCH" not in out


def test_benchmark_passes_batch_size_to_the_library(capsys, monkeypatch):
    import cnnzoo.bench

    seen = []
    monkeypatch.setattr(cnnzoo.bench, "benchmark", lambda name, **kw: seen.append((name, kw["batch"])) or {})
    monkeypatch.setattr(cnnzoo.bench, "format_results", lambda results, fmt: "measured")
    rc, out, _ = cli(capsys, "benchmark", "lenet5", "--input", "1x32x32", "--batch-size", 5)
    assert rc == 0 and out == "measured\n" and seen == [("lenet5", 5)]
    rc, _, _ = cli(capsys, "benchmark", "lenet5", "--input", "1x32x32", "--batch", 7)
    assert rc == 0 and seen[-1] == ("lenet5", 7)


# --------------------------------------------------------------------------------------------- list

def test_name_pattern():
    assert name_pattern("vgg") == "*vgg*"
    for wild in ("vgg*", "vgg1?", "vgg1[16]", "*"):
        assert name_pattern(wild) == wild


def _names(capsys, *pattern):
    rc, out, _ = cli(capsys, "list", *pattern, "--format", "json")
    assert rc == 0
    return [r["name"] for r in json.loads(out)]


def test_list_matches_a_part_of_the_name(capsys):
    vgg = _names(capsys, "vgg")
    assert {"vgg11", "vgg16", "vgg19", "vgg16_bn"} <= set(vgg)
    assert all("vgg" in n for n in vgg) and vgg == _names(capsys, "vgg*")
    assert "vgg16_bn" in _names(capsys, "_bn")  # anywhere in the name, not only at the start
    assert set(_names(capsys, "vgg1?")) == {"vgg11", "vgg13", "vgg16", "vgg19"}  # a wildcard is used as given


def test_list_without_pattern_lists_everything(capsys):
    from cnnzoo.registry import list_models

    every = _names(capsys)
    assert every == list_models() and len(every) > len(_names(capsys, "vgg"))
    rc, out, _ = cli(capsys, "list")
    assert rc == 0 and out.rstrip().endswith(f"{len(every)} models")
    rc, _, err = cli(capsys, "list", "nosuchnet")
    assert rc == 2 and "no model matches 'nosuchnet'" in err


# --------------------------------------------------------------------------------------- conv-arith

def test_conv_arith_names_the_height_axis_h(capsys):
    rc, out, _ = cli(capsys, "conv-arith", "--input", "224x225", "--kernel", 11, "--stride", 4, "--padding", 2)
    assert rc == 0
    height, width = out.split("output size (width)")
    assert height.startswith("output size (height) = (H - K + 2P) / S + 1")
    assert "H - K is odd" in height and "H=223 -> 55, H=227 -> 56" in height and "W" not in height
    assert width.startswith(" = (W - K + 2P) / S + 1") and "W=223 -> 55, W=227 -> 56" in width
    rc, out, _ = cli(capsys, "conv-arith", "--input", 224, "--kernel", 11, "--stride", 4, "--padding", 2)
    assert rc == 0 and out.startswith("output size = (W - K + 2P) / S + 1") and "H" not in out  # square: one axis


def test_conv_arith_output_volume_is_chw(capsys):
    rc, out, _ = cli(capsys, "conv-arith", "--input", "227x195", "--kernel", 11, "--stride", 4,
                     "--in-channels", 3, "--filters", 96)
    assert rc == 0 and "output volume: 96x55x47 = 248,160 values" in out
