"""Understanding a network: summary, MACs, receptive fields, conv arithmetic, cost, viz and compare.

The numbers are the hand-computed ones of the case study (AlexNet's first layer, GoogLeNet's 5x5 bottleneck,
VGG's head, LeNet-5 layer by layer) and torchvision's published multiply-add figures.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import nn

import cnnzoo
from cnnzoo.analysis import conv_arith, conv_costs, head_costs, load_model, summarize
from cnnzoo.analysis.compare import compare
from cnnzoo.cli import main
from cnnzoo.errors import UserError


def cli(capsys, *argv):
    """Run the CLI in-process: (exit status, stdout, stderr)."""
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def png_size(path) -> tuple:
    p = Path(path)
    assert p.is_file() and p.stat().st_size > 0, f"{p} missing or empty"
    with Image.open(p) as im:
        assert im.format == "PNG"
        return im.size


# ------------------------------------------------------------------------------------ conv arithmetic

def test_conv_arith_alexnet_first_layer():
    r = conv_arith(227, 11, stride=4, padding=0, in_channels=3, filters=96)
    assert r.out_hw == (55, 55) and r.exact
    assert r.params_shared == 34_944 == (11 * 11 * 3 + 1) * 96
    assert r.params_unshared == 105_705_600 == 55 * 55 * 96 * (11 * 11 * 3 + 1)
    text = r.text()
    assert "(227 - 11 + 2*0) / 4 + 1 = 216 / 4 + 1 = 55" in text
    assert "34,944" in text and "105,705,600" in text


def test_conv_arith_uneven_suggests_fits():
    r = conv_arith(224, 11, stride=4, padding=2)
    a = r.axes[0]
    assert r.out_hw == (55, 55) and not r.exact and a.uncovered == 1
    assert a.fit_paddings == []  # 224 - 11 is odd, 2P even: no padding divides by 4
    assert a.fit_inputs == [223, 227]
    r = conv_arith(32, 4, stride=3, padding=0)  # (32 - 4) / 3 = 9.33
    assert r.out_hw == (10, 10) and r.axes[0].fit_paddings == [1, 4] and r.axes[0].fit_inputs == [31, 34]


def test_conv_arith_dilation_and_errors():
    assert conv_arith(32, 3, dilation=2).out_hw == (28, 28)  # effective kernel 5
    with pytest.raises(UserError, match="larger than the padded input"):
        conv_arith(5, 11)
    with pytest.raises(UserError):
        conv_arith(32, 3, stride=0)
    with pytest.raises(UserError, match="both"):
        conv_arith(32, 3, in_channels=3)


def test_conv_arith_cli(capsys):
    rc, out, _ = cli(capsys, "conv-arith", "--input", 227, "--kernel", 11, "--stride", 4, "--padding", 0,
                     "--in-channels", 3, "--filters", 96)
    assert rc == 0 and "= 55" in out and "34,944" in out and "105,705,600" in out
    rc, out, _ = cli(capsys, "conv-arith", "--input", 224, "--kernel", 11, "--stride", 4, "--padding", 2)
    assert rc == 0 and "does not divide evenly" in out and "W=227" in out
    rc, _, err = cli(capsys, "conv-arith", "--input", 5, "--kernel", 11)
    assert rc == 2 and err.count("\n") == 1 and "larger than the padded input" in err


# -------------------------------------------------------------------------------------------- cost

def test_cost_bottleneck_case_study():
    std, bott, dw = conv_costs(28, 28, 192, 32, 5, bottleneck=16, depthwise=True)
    assert std.macs == 120_422_400 == 28 * 28 * 32 * 5 * 5 * 192
    assert bott.macs == 12_443_648 == 28 * 28 * 16 * 192 + 28 * 28 * 32 * 5 * 5 * 16
    assert dw.macs == 28 * 28 * 192 * 25 + 28 * 28 * 192 * 32
    assert std.params == 5 * 5 * 192 * 32 and bott.params == 192 * 16 + 5 * 5 * 16 * 32


def test_cost_head_gap_vs_fc():
    flat, gap = head_costs(7, 7, 512, 1000)
    assert flat.params == 7 * 7 * 512 * 1000 + 1000 == 25_089_000
    assert gap.params == 512 * 1000 + 1000 == 513_000


def test_cost_cli(capsys):
    rc, out, _ = cli(capsys, "cost", "--input", "192x28x28", "--output", 32, "--kernel", 5, "--bottleneck", 16,
                     "--depthwise", "--head", "512x7x7", "--classes", 1000)
    assert rc == 0
    for n in ("120,422,400", "12,443,648", "8,580,096", "25,089,000", "513,000"):
        assert n in out
    rc, out, _ = cli(capsys, "cost", "--head", "512x7x7", "--format", "json")
    assert json.loads(out)["head"][1]["params"] == 513_000
    rc, _, err = cli(capsys, "cost", "--input", "28x28", "--output", 32, "--kernel", 5)
    assert rc == 2 and "C x H x W" in err  # a feature map's channels have no default


# ------------------------------------------------------------------------------------ receptive field

def _rf(model: nn.Module, size=(1, 32, 32)):
    s = summarize(model, size, depth=1)
    return [(r.rf, r.jump) for r in s.layers], s


@pytest.mark.parametrize("n, expected", [(1, 3), (2, 5), (3, 7), (4, 9)])
def test_rf_stacked_3x3(n, expected):
    m = nn.Sequential(*[nn.Conv2d(1, 1, 3, padding=1) for _ in range(n)])
    rows, s = _rf(m)
    assert rows[-1] == ((expected, expected), (1, 1))
    assert s.totals["output_rf"] == [expected, expected]


def test_rf_strides_pooling_dilation():
    m = nn.Sequential(nn.Conv2d(1, 1, 7, stride=2, padding=3), nn.MaxPool2d(3, 2, 1), nn.Conv2d(1, 1, 3, padding=1),
                      nn.Conv2d(1, 1, 3, padding=2, dilation=2), nn.Conv2d(1, 1, (1, 7), padding=(0, 3)))
    rows, _ = _rf(m, (1, 64, 64))
    assert [r for r in rows] == [
        ((7, 7), (2, 2)),  # 7x7 / 2
        ((11, 11), (4, 4)),  # + (3-1)*2
        ((19, 19), (4, 4)),  # + (3-1)*4
        ((35, 35), (4, 4)),  # dilated 3x3 = 5: + (5-1)*4
        ((35, 59), (4, 4)),  # 1x7: only the width grows, + 6*4
    ]


class _Inception(nn.Module):
    """Parallel 1x1, 3x3 and 5x5 branches concatenated: the widest branch sets the receptive field."""

    def __init__(self):
        super().__init__()
        self.b1 = nn.Conv2d(1, 2, 1)
        self.b3 = nn.Conv2d(1, 2, 3, padding=1)
        self.b5 = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(2, 2, 3, padding=1))

    def forward(self, x):
        return torch.cat([self.b1(x), self.b3(x), self.b5(x)], 1)


class _Gated(nn.Module):
    """A residual block with a Squeeze-and-Excitation-like global gate (left out of the receptive field)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)
        self.fc = nn.Linear(2, 2)

    def forward(self, x):
        y = self.conv(x)
        gate = torch.sigmoid(self.fc(y.mean((2, 3)))).view(-1, 2, 1, 1)
        return x + y * gate


def test_rf_parallel_branches_take_the_max_and_gates_are_ignored():
    m = nn.Sequential(_Inception(), nn.Conv2d(6, 2, 3, padding=1), _Gated(), nn.AdaptiveAvgPool2d(1),
                      nn.Flatten(), nn.Linear(2, 3))
    rows, s = _rf(m, (1, 16, 16))
    assert rows[0] == ((5, 5), (1, 1))  # max(1, 3, 5)
    assert rows[1] == ((7, 7), (1, 1))
    assert rows[2] == ((9, 9), (1, 1))  # the residual sum keeps the conv path's 9, not the gate's whole image
    assert rows[3][0] == (24, 24)  # global pooling over 16x16: 9 + 15
    assert rows[-1][0] == (24, 24)
    assert s.totals["output_rf"] == [9, 9]  # the last layer with a spatial map


def test_rf_resnet18_matches_hand_computation():
    s = summarize("resnet18", depth=1)
    rf = {r.name: r.rf[0] for r in s.layers}
    # conv1 7/2 -> 7, maxpool 3/2 -> 11, layer1 4 convs at jump 4 -> 43, layer2 (first 3x3 at jump 4, then 3 at 8)
    assert rf["conv1"] == 7 and rf["maxpool"] == 11 and rf["layer1"] == 43
    assert rf["layer2"] == 43 + 2 * 4 + 3 * 2 * 8 and rf["layer4"] == 435


# -------------------------------------------------------------------------------------------- summary

LENET = [  # the layers with parameters or a shape change: (type, output, params)
    ("Conv2d", (6, 28, 28), 6 * (5 * 5 + 1)),
    ("MaxPool2d", (6, 14, 14), 0),
    ("Conv2d", (16, 10, 10), 16 * (6 * 5 * 5 + 1)),
    ("MaxPool2d", (16, 5, 5), 0),
    ("Linear", (120,), 120 * (400 + 1)),
    ("Linear", (84,), 84 * (120 + 1)),
    ("Linear", (10,), 10 * (84 + 1)),
]


def test_lenet5_layers():
    if not cnnzoo.is_model("lenet5"):
        pytest.skip("lenet5 is not registered yet")
    s = summarize("lenet5", "1x32x32", num_classes=10)
    rows = [(r.type, r.output, r.params) for r in s.layers if r.type in ("Conv2d", "MaxPool2d", "Linear")]
    assert rows == LENET
    assert s.totals["params"] == 61_706 == sum(r.params for r in s.layers)
    macs = 28 * 28 * 6 * 25 + 10 * 10 * 16 * 150 + 400 * 120 + 120 * 84 + 84 * 10
    assert s.totals["macs"] == macs and s.totals["flops"] == 2 * macs
    assert s.totals["conv_linear_layers"] == 5


# torchvision's published multiply-adds (its tables' "GFLOPS" column), at 224x224.
TORCHVISION_GMACS = {"resnet50": 4.09, "vgg16": 15.47, "mobilenet_v2": 0.30, "googlenet": 1.50,
                     "efficientnet_b0": 0.39}


@pytest.mark.parametrize("name", sorted(TORCHVISION_GMACS))
def test_macs_match_torchvision(name):
    if not cnnzoo.is_model(name):
        pytest.skip(f"{name} is not registered yet")
    macs = summarize(name, "3x224x224").totals["macs"]
    assert abs(macs / 1e9 - TORCHVISION_GMACS[name]) / TORCHVISION_GMACS[name] < 0.02, macs


def test_summary_json_schema(capsys):
    rc, out, _ = cli(capsys, "summary", "resnet20", "--format", "json")
    assert rc == 0
    d = json.loads(out)
    assert d["input"] == [3, 32, 32] and isinstance(d["layers"], list) and d["layers"]
    for row in d["layers"]:
        assert set(row) >= {"name", "type", "output", "params", "macs", "rf", "jump"}
        assert isinstance(row["params"], int) and isinstance(row["macs"], int)
    t = d["totals"]
    assert {"params", "macs", "flops", "trainable_params", "frozen_params", "activation_bytes",
            "param_bytes"} <= set(t)
    assert t["flops"] == 2 * t["macs"] and t["params"] == cnnzoo.count_params("resnet20")
    assert sum(r["params"] for r in d["layers"]) == t["params"]
    assert sum(r["macs"] for r in d["layers"]) == t["macs"]


def test_summary_formats_and_depth(capsys):
    rc, out, _ = cli(capsys, "summary", "resnet18", "--depth", "1")
    assert rc == 0 and "layer4" in out and "layer4.0" not in out and "FlopCounterMode" in out
    rc, out, _ = cli(capsys, "summary", "resnet18", "--format", "markdown", "--depth", "2")
    assert rc == 0 and "| `layer4.1` | BasicBlock |" in out
    rc, out, _ = cli(capsys, "summary", "resnet18", "--format", "csv", "--depth", "2")
    rows = list(csv.DictReader(out.splitlines()))
    assert rows[-1]["name"] == "total" and int(rows[-1]["params"]) == 11_689_512


def test_summary_frozen_and_module_input():
    m = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3))
    m[0].requires_grad_(False)
    t = summarize(m, (3, 8, 8)).totals
    assert t["frozen_params"] == 3 * 8 * 9 + 8 and t["trainable_params"] == 8 * 8 * 9 + 8
    assert t["activation_bytes"] == 4 * (8 * 6 * 6 * 2 + 8 * 4 * 4)  # conv, ReLU, conv outputs, float32


def test_summary_small_input(capsys):
    rc, _, err = cli(capsys, "summary", "resnet18", "--input", "1x28x28")
    assert rc == 2 and err.count("\n") == 1
    assert "at least 32x32" in err and "--small" in err
    rc, out, _ = cli(capsys, "summary", "resnet18", "--input", "1x28x28", "--small", "--depth", "1")
    assert rc == 0 and "64x28x28" in out
    rc, out, _ = cli(capsys, "summary", "resnet18", "--input", "1x28x28", "--kw", "small_input=true", "-f", "json")
    assert rc == 0 and json.loads(out)["input"] == [1, 28, 28]
    rc, _, err = cli(capsys, "summary", "no_such_model")
    assert rc == 2 and "no_such_model" in err


# --------------------------------------------------------------------------------- runs, viz, compare

@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory in the trainer's format: weights + metadata, results.json, metrics.csv."""
    from safetensors.torch import save_file

    d = tmp_path_factory.mktemp("run") / "resnet20-fmnist"
    d.mkdir()
    torch.manual_seed(0)
    args = {"num_classes": 10, "in_chans": 1}
    model = cnnzoo.create_model("resnet20", **args)
    classes = ["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Boot"]
    meta = {"model": "resnet20", "model_args": json.dumps(args), "classes": json.dumps(classes),
            "mean": json.dumps([0.286]), "std": json.dumps([0.353]), "image_size": json.dumps([28, 28])}
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(d / "model.safetensors"), meta)
    (d / "results.json").write_text(json.dumps({"model": "resnet20", "test_top1": 0.9123, "val_top1": 0.91,
                                                "train_seconds": 95.5, "params": 269_434}))
    with open(d / "metrics.csv", "w") as f:
        f.write("epoch,train_loss,train_acc,val_loss,val_acc\n1,0.9,0.7,0.6,0.8\n2,0.5,0.85,nan,nan\n"
                "3,0.4,0.88,0.35,0.9\n")
    return d


def test_load_model_from_run(run_dir):
    model, meta = load_model(run_dir)
    ref = cnnzoo.create_model("resnet20", num_classes=10, in_chans=1)
    from safetensors.torch import load_file

    sd = load_file(str(run_dir / "model.safetensors"))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in sd.items())
    assert meta["classes"][3] == "Dress" and meta["image_size"] == [28, 28]
    assert type(model) is type(ref) and not model.training
    model2, _ = load_model(run_dir / "model.safetensors")
    assert torch.equal(model2.conv1.weight, model.conv1.weight)
    with pytest.raises(UserError):
        load_model(run_dir / "missing.safetensors")


def test_summary_of_run(run_dir):
    s = summarize(str(run_dir))
    assert s.input == (1, 28, 28) and s.totals["params"] == cnnzoo.count_params("resnet20", num_classes=10, in_chans=1)


@pytest.fixture(scope="module")
def image_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("img") / "shirt.png"
    yy, xx = torch.meshgrid(torch.arange(40), torch.arange(36), indexing="ij")
    img = ((xx - 18) ** 2 + (yy - 20) ** 2 < 150).to(torch.uint8) * 200 + 30
    Image.fromarray(img.numpy(), "L").save(p)
    return p


def test_viz_run(run_dir, image_file, tmp_path, capsys):
    out = tmp_path / "viz"
    rc, stdout, _ = cli(capsys, "viz", run_dir, "--image", image_file, "--output", out, "--layer", "layer1",
                        "layer3", "--class", "Dress")
    assert rc == 0
    paths = [Path(line) for line in stdout.splitlines() if line.endswith(".png")]
    assert len(paths) == 5  # 2 feature maps, filters, 2 Grad-CAMs
    for p in paths:
        w, h = png_size(p)
        assert w == 1200 and p.stat().st_size < 300_000
    cams = [p for p in paths if "gradcam" in p.name]
    assert all(png_size(p) == (1200, 400) and "class3" in p.name for p in cams)
    maps = next(p for p in paths if "activations_layer1" in p.name)
    assert png_size(maps) == (1200, 2 * 150 + 50)  # 16 channels: 2 rows of 8
    filt = next(p for p in paths if p.name.startswith("filters_"))
    assert png_size(filt) == (1200, 75 + 50)  # 16 filters: 1 row of 16


def test_grad_cam_localises_the_evidence():
    from cnnzoo.viz.gradcam import grad_cam

    # One 3x3 "detector" followed by global pooling: the class score comes from the bright square only.
    model = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1, bias=False), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(1, 2))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
        model[4].weight.copy_(torch.tensor([[1.0], [-1.0]]))
    x = torch.zeros(1, 1, 16, 16)
    x[..., 2:6, 9:13] = 1.0
    r = grad_cam(model, x, layer="0", class_index=0)
    assert r.cam.shape == (16, 16) and float(r.cam.max()) == pytest.approx(1.0)
    assert r.cam[2:6, 9:13].mean() > 5 * r.cam[10:, :6].mean()
    assert float(grad_cam(model, x, layer="0", class_index=1).cam.max()) == 0.0  # no evidence for class 1


def test_viz_errors(image_file, tmp_path, capsys):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    rc, _, err = cli(capsys, "viz", "resnet20", "--image", bad, "--output", tmp_path)
    assert rc == 2 and err.count("\n") == 1
    rc, _, err = cli(capsys, "viz", "resnet20", "--image", image_file, "--layer", "layer9", "-o", tmp_path)
    assert rc == 2 and "layer9" in err
    rc, _, err = cli(capsys, "viz", "resnet20", "--image", "skimage:nonsense", "-o", tmp_path)
    assert rc == 2 and err.count("\n") == 1


def test_viz_skimage_photo(tmp_path, capsys):
    pytest.importorskip("skimage")
    rc, out, _ = cli(capsys, "viz", "resnet20", "--image", "skimage:chelsea", "--what", "gradcam", "-o", tmp_path)
    assert rc == 0 and "random" in out
    (path,) = [line for line in out.splitlines() if line.endswith(".png")]
    assert png_size(path) == (1200, 400)


def test_plot_curves(run_dir, tmp_path):
    from cnnzoo.viz import plot_curves

    assert png_size(plot_curves(run_dir / "metrics.csv", tmp_path / "curves.png")) == (1000, 400)
    with pytest.raises(UserError):
        plot_curves(tmp_path / "none.csv", tmp_path / "x.png")


def test_compare(run_dir, tmp_path, capsys):
    rc, out, _ = cli(capsys, "compare", "resnet20", "resnet32", "--runs", run_dir, "--no-timing",
                     "--plot", tmp_path / "cmp.png")
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].startswith("| model |") and "top-1" in lines[0]
    assert "91.23%" in out and "96 s" in out and "269,434" in out
    assert png_size(tmp_path / "cmp.png") == (800, 600)
    rc, out, _ = cli(capsys, "compare", "resnet20", "--format", "csv", "--no-timing")
    row = next(csv.DictReader(out.splitlines()))
    assert int(row["depth"]) == 20 and int(row["params"]) == cnnzoo.count_params("resnet20")
    e = compare(["resnet20"], "3x32x32", timing=True, batch_size=2, repeats=1)[0]
    assert e.img_per_s > 0 and e.macs > 0
