"""BatchNorm folding over the whole registry; ONNX and torch.export files checked against PyTorch; the CLI."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch import nn

import cnnzoo
from cnnzoo import create_model, list_models, model_info
from cnnzoo.cli import main
from cnnzoo.errors import UserError
from cnnzoo.export import export_model
from cnnzoo.fuse import find_conv_bn_pairs, fold_batchnorm, fold_batchnorm_report
from test_models import test_size

MUST_FOLD = ["resnet18", "mobilenet_v2", "vgg11_bn", "efficientnet_b0"]
# (model, input size): small inputs keep each export and its check to a few seconds.
ONNX_CASES = [("lenet5", 32), ("resnet18", 64), ("mobilenet_v2", 32), ("googlenet", 32), ("efficientnet_b0", 32)]
PT2_CASES = [("lenet5", 32), ("resnet18", 64)]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _need(name: str) -> None:
    if not cnnzoo.is_model(name):
        pytest.skip(f"{name} is not registered yet")


def _bn_count(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def _calibrated(name: str, size: int, num_classes: int = 10) -> nn.Module:
    """An eval-mode model whose BatchNorms hold real, non-trivial statistics and affine parameters.

    Fresh BatchNorms (mean 0, variance 1, scale 1, shift 0) are almost the identity, so folding them
    would prove little. Random scales and shifts, then half the statistics of one training-mode batch
    (momentum 0.5 over the fresh mean 0 / variance 1), give every BatchNorm a real per-channel affine
    map. The fresh half keeps each variance >= 0.5: a small batch at 1x1 resolution can leave a
    channel nearly constant, and dividing by its near-zero variance would turn float rounding into
    large differences.
    """
    chans = model_info(name).input_size[0]
    model = create_model(name, num_classes=num_classes, in_chans=chans)
    gen = torch.Generator().manual_seed(1)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for bn in bns:
            if bn.affine:
                bn.weight.copy_(0.5 + 0.5 * torch.rand(bn.num_features, generator=gen))
                bn.bias.copy_(0.1 * torch.randn(bn.num_features, generator=gen))
        if bns:
            saved = [bn.momentum for bn in bns]
            for bn in bns:
                bn.momentum = 0.5
            model.train()(torch.randn(4, chans, size, size, generator=gen))
            for bn, mom in zip(bns, saved):
                bn.momentum = mom
    return model.eval()


# --------------------------------------------------------------------------------------------- folding


@pytest.mark.parametrize("name", list_models())
def test_fold_batchnorm_keeps_output(name):
    size = test_size(name)
    model = _calibrated(name, size)
    before = _bn_count(model)
    folded, report = fold_batchnorm_report(model)
    x = torch.randn(2, model.in_chans, size, size)
    with torch.no_grad():
        ref, out = model(x), folded(x)
    assert not folded.training
    assert _bn_count(model) == before, "the input model was changed"
    assert before - _bn_count(folded) == report.folded
    assert all(isinstance(folded.get_submodule(bn), nn.Identity) for _, bn in report.pairs)
    # 1e-4, relative once logits exceed 1: float32 itself is that far from float64 there (Inception v3's
    # logits reach ~20 at random init and its fp32 output is ~4e-4 from the fp64 one, folded or not).
    diff = (out - ref).abs().max().item()
    allowed = 1e-4 * max(1.0, ref.abs().max().item())
    assert diff <= allowed, f"{name}: folded output differs by {diff:.3g} ({report.method}, {report.folded} folded)"


@pytest.mark.parametrize("name", MUST_FOLD)
def test_fold_batchnorm_folds_the_usual_pairs(name):
    _need(name)
    report = find_conv_bn_pairs(create_model(name, num_classes=10).eval())
    assert report.folded > 0
    assert report.method in ("fx", "fx-body"), report.trace_error


class _PreActBlock(nn.Module):
    """bn1 before conv1 (pre-activation); conv2's output feeds bn2 and a side branch."""

    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(c), nn.Conv2d(c, c, 3, padding=1)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)
        self.conv3, self.bn3 = nn.Conv2d(c, c, 1), nn.BatchNorm2d(c)

    def forward(self, x):
        y = self.conv2(self.conv1(torch.relu(self.bn1(x))))
        return self.bn3(self.conv3(self.bn2(y) + y))


class _Toy(nn.Module):
    in_chans = 8

    def __init__(self, shape_logic: bool = False) -> None:
        super().__init__()
        self.shape_logic = shape_logic
        self.stem = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.block = _PreActBlock()

    def forward(self, x):
        if self.shape_logic and x.shape[-1] < 8:  # Python reading a shape: torch.fx cannot trace it
            raise ValueError("too small")
        return self.block(self.stem(x))


@pytest.mark.parametrize("shape_logic", [False, True])
def test_fold_batchnorm_only_where_the_conv_feeds_only_the_norm(shape_logic):
    model = _Toy(shape_logic).eval()
    with torch.no_grad():
        for bn in model.modules():
            if isinstance(bn, nn.BatchNorm2d):
                bn.running_mean.normal_()
                bn.running_var.uniform_(0.5, 2.0)
    folded, report = fold_batchnorm_report(model)
    assert report.method == ("export" if shape_logic else "fx")
    assert sorted(report.pairs) == [("block.conv3", "block.bn3"), ("stem.0", "stem.1")]
    x = torch.randn(2, 8, 12, 12)
    assert torch.allclose(folded(x), model(x), atol=1e-5)


def test_fold_batchnorm_scan_fallback(monkeypatch):
    """With both tracers failing, the scan keeps only pairs proven by the data flow."""
    import cnnzoo.fuse as fuse

    def fail(model):
        raise RuntimeError("no tracing here")

    monkeypatch.setattr(fuse, "_fx_pairs", fail)
    monkeypatch.setattr(fuse, "_export_pairs", fail)
    model = _Toy().eval()
    model.min_input_size = 8
    with torch.no_grad():
        for bn in model.modules():
            if isinstance(bn, nn.BatchNorm2d):
                bn.running_mean.normal_()
    folded, report = fold_batchnorm_report(model)
    assert report.method == "scan" and "no tracing here" in report.trace_error
    # conv3 -> bn3 is a true pair; bn1 precedes conv1, and conv2's output also feeds the sum.
    assert sorted(report.pairs) == [("block.conv3", "block.bn3"), ("stem.0", "stem.1")]
    x = torch.randn(1, 8, 10, 10)
    assert torch.allclose(folded(x), model(x), atol=1e-5)


def test_fold_batchnorm_leaves_the_model_alone():
    model = create_model("resnet20", num_classes=10).train()
    folded = fold_batchnorm(model)
    assert model.training and _bn_count(model) == 19
    assert _bn_count(folded) == 0 and not folded.training


# ---------------------------------------------------------------------------------------------- export


def _no_temp_files(folder) -> bool:
    return not [p for p in os.listdir(folder) if ".tmp-" in p]


@pytest.mark.parametrize("name,size", ONNX_CASES)
def test_onnx_export_matches_pytorch(name, size, tmp_path):
    _need(name)
    import onnx
    import onnxruntime as ort

    model = _calibrated(name, size)
    chans = model.in_chans
    report = export_model(model, "onnx", tmp_path / f"{name}.onnx", (1, chans, size, size))
    assert report["max_abs_diff"] <= 1e-4
    assert report["opset"] == 17 and report["bytes"] == (tmp_path / f"{name}.onnx").stat().st_size
    assert (report["folded_bn"] > 0) == (_bn_count(model) > 0)
    assert _no_temp_files(tmp_path)

    proto = onnx.load(str(tmp_path / f"{name}.onnx"))
    onnx.checker.check_model(proto)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    # An independent run at another batch size than the exporter's own check.
    x = torch.randn(3, chans, size, size)
    session = ort.InferenceSession(str(tmp_path / f"{name}.onnx"), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"input": x.numpy()})
    with torch.no_grad():
        ref = model(x).numpy()
    assert got.shape == ref.shape == (3, 10)
    assert np.abs(got - ref).max() <= 1e-4


@pytest.mark.parametrize("name,size", PT2_CASES)
def test_pt2_export_matches_pytorch(name, size, tmp_path):
    model = _calibrated(name, size)
    path = tmp_path / f"{name}.pt2"
    report = export_model(model, "pt2", path, (1, model.in_chans, size, size))
    assert report["opset"] is None and report["max_abs_diff"] <= 1e-4
    assert _no_temp_files(tmp_path)
    x = torch.randn(3, model.in_chans, size, size)
    got = torch.export.load(str(path)).module()(x)
    with torch.no_grad():
        assert (got - model(x)).abs().max().item() <= 1e-4


def test_export_refuses_to_overwrite(tmp_path):
    model = create_model("lenet5", in_chans=1)
    path = tmp_path / "m.onnx"
    path.write_bytes(b"keep me")
    with pytest.raises(UserError, match="already exists"):
        export_model(model, "onnx", path, (1, 1, 32, 32))
    assert path.read_bytes() == b"keep me"
    assert main(["export", "lenet5", "-o", str(path)]) == 2
    assert path.read_bytes() == b"keep me"
    report = export_model(model, "onnx", path, (1, 1, 32, 32), overwrite=True)
    assert report["bytes"] > 1000 and _no_temp_files(tmp_path)


def test_export_rejects_bad_arguments(tmp_path):
    model = create_model("lenet5", in_chans=1)
    with pytest.raises(UserError, match="format"):
        export_model(model, "tflite", tmp_path / "m.tflite")
    with pytest.raises(UserError, match="channel"):
        export_model(model, "onnx", tmp_path / "m.onnx", (1, 3, 32, 32))
    with pytest.raises(UserError, match="at least"):
        export_model(model, "onnx", tmp_path / "m.onnx", (1, 1, 16, 16))
    assert not list(tmp_path.iterdir())


def test_cli_export_registry_name(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["export", "lenet5"]) == 0
    out = capsys.readouterr().out
    assert (tmp_path / "lenet5.onnx").stat().st_size > 1000
    facts = dict(line.split(": ", 1) for line in out.strip().splitlines())
    assert facts["input"].startswith("1x1x32x32")
    assert float(facts["max_abs_diff"].split()[0]) <= 1e-4
    assert main(["export", "lenet5", "--input", "1x2x2"]) == 2
    assert main(["export", "lenet5", "--input", "banana"]) == 2
    assert main(["export", "no_such_model"]) == 2


def test_cli_export_trained_run(tmp_path, capsys):
    from cnnzoo.io import save_weights

    run = tmp_path / "run"
    save_weights(run / "model.safetensors", create_model("resnet20", num_classes=10, in_chans=1),
                 {"image_size": [28, 28], "in_chans": 1})
    assert main(["export", str(run), "--format", "pt2"]) == 0
    assert (run / "model.pt2").is_file()
    facts = dict(line.split(": ", 1) for line in capsys.readouterr().out.strip().splitlines())
    assert facts["input"].startswith("1x1x28x28")
    assert facts["folded_bn"].startswith("19")
