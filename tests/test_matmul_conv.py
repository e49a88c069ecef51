"""runtime.use_matmul_convs: small-output convolutions on the CPU as one matrix product of their patches."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnzoo import runtime
from cnnzoo.builder import create_model
from cnnzoo.runtime import MATMUL_CONV_MAX_HW, MatmulConv2d, conv2d_as_matmul, use_matmul_convs

CASES = [  # in, out, kernel, stride, padding, input side, bias
    (8, 16, 3, 1, 1, 2, False),
    (8, 16, 3, 2, 1, 4, True),
    (8, 16, 1, 2, 0, 4, False),
    (4, 6, 3, 1, 0, 4, True),
    (5, 7, (3, 1), 1, (1, 0), 2, True),
    (3, 4, 7, 2, 3, 4, False),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "k{2}s{3}p{4}h{5}b{6}".format(*c))
@pytest.mark.parametrize("fmt", [torch.channels_last, torch.contiguous_format], ids=["cl", "nchw"])
def test_conv2d_as_matmul_is_conv2d_forward_and_backward(case, fmt):
    c, co, k, s, p, h, bias = case
    torch.manual_seed(0)
    conv = nn.Conv2d(c, co, k, s, p, bias=bias).to(memory_format=fmt)
    x = torch.randn(3, c, h, h).contiguous(memory_format=fmt)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    w1, w2 = conv.weight.detach().clone().requires_grad_(), conv.weight.detach().clone().requires_grad_()
    b = conv.bias.detach() if bias else None
    got = conv2d_as_matmul(x1, w1, b, conv.stride, conv.padding)
    want = F.conv2d(x2, w2, b, conv.stride, conv.padding)
    assert got.shape == want.shape
    assert got.is_contiguous(memory_format=fmt)  # the input's memory format is kept
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(want)
    (got * g).sum().backward()
    (want * g).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(w1.grad, w2.grad, rtol=1e-5, atol=1e-5)


def _spy(monkeypatch):
    calls = []
    real = runtime.conv2d_as_matmul

    def spy(x, *a):
        calls.append(tuple(x.shape))
        return real(x, *a)

    monkeypatch.setattr(runtime, "conv2d_as_matmul", spy)
    return calls


def test_matmul_path_taken_only_up_to_the_output_size_for_the_dtype(monkeypatch):
    calls = _spy(monkeypatch)
    conv = nn.Conv2d(4, 4, 3, padding=1)
    use_matmul_convs(conv)
    fp32_side = int(MATMUL_CONV_MAX_HW[torch.float32] ** 0.5)
    bf16_side = int(MATMUL_CONV_MAX_HW[torch.bfloat16] ** 0.5)
    conv(torch.randn(1, 4, fp32_side, fp32_side))
    conv(torch.randn(1, 4, fp32_side + 1, fp32_side + 1))
    assert calls == [(1, 4, fp32_side, fp32_side)]
    calls.clear()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = conv(torch.randn(1, 4, bf16_side, bf16_side))
        conv(torch.randn(1, 4, bf16_side + 1, bf16_side + 1))
    assert out.dtype == torch.bfloat16  # as the convolution under autocast gives
    assert calls == [(1, 4, bf16_side, bf16_side)]
    calls.clear()
    conv.double()(torch.randn(1, 4, 2, 2, dtype=torch.float64))  # no threshold measured for float64: the convolution
    assert calls == []


def test_use_matmul_convs_keeps_the_model_and_its_outputs(monkeypatch):
    torch.manual_seed(0)
    model = create_model("resnet18", num_classes=10)
    ref = copy.deepcopy(model)
    convs = [m for m in model.modules() if type(m) is nn.Conv2d]
    assert use_matmul_convs(model) == len(convs) == 20
    assert all(isinstance(m, MatmulConv2d) and isinstance(m, nn.Conv2d) for m in convs)
    assert list(model.state_dict()) == list(ref.state_dict())
    assert str(model) == str(ref)  # printed as Conv2d: summaries and reprs do not change
    assert isinstance(copy.deepcopy(model).layer4[0].conv1, MatmulConv2d)  # EMA copies keep the policy
    calls = _spy(monkeypatch)
    x = torch.randn(2, 3, 64, 64)
    model.train(), ref.train()
    out, want = model(x), ref(x)
    assert calls, "layer4's 2x2 maps go through the matrix product"
    torch.testing.assert_close(out, want, rtol=1e-4, atol=1e-4)
    out.square().sum().backward()
    want.square().sum().backward()
    for (name, p), q in zip(model.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-3, atol=1e-4, msg=name)


def test_use_matmul_convs_leaves_what_it_cannot_compute():
    model = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, groups=4), nn.Conv2d(4, 4, 3, padding=2, dilation=2),
                          nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"), nn.Conv2d(4, 4, 3, padding="same"),
                          nn.Conv2d(4, 4, 3, padding=1))
    assert use_matmul_convs(model) == 1
    assert [type(m) for m in model] == [nn.Conv2d] * 4 + [MatmulConv2d]


@pytest.mark.parametrize("on", [True, False])
def test_trainer_applies_train_matmul_conv_on_the_cpu(tmp_path, on):
    from cnnzoo.io import RunDir
    from cnnzoo.train.config import load_config
    from cnnzoo.train.trainer import Trainer

    ov = {"model.name": "lenet5", "data.name": "digits", "train.device": "cpu", "run.output": str(tmp_path / "r"),
          "train.matmul_conv": on}
    t = Trainer(load_config(None, ov), RunDir(tmp_path / "r"), log=lambda s: None)
    t.setup()
    assert any(isinstance(m, MatmulConv2d) for m in t.model.modules()) is on


def test_benchmark_applies_the_policy_where_asked():
    from cnnzoo.bench import Settings, _Run

    x, y = torch.randn(2, 3, 32, 32), torch.randint(0, 10, (2,))
    build = lambda: create_model("resnet18", num_classes=10)  # noqa: E731
    on = _Run("ours", build, Settings(matmul_conv=True), "train", x, y, torch.device("cpu"), 0.0)
    off = _Run("ours", build, Settings(), "train", x, y, torch.device("cpu"), 0.0)
    assert any(isinstance(m, MatmulConv2d) for m in on.model.modules())
    assert not any(isinstance(m, MatmulConv2d) for m in off.model.modules())
    assert "small convs as matmul" in Settings(matmul_conv=True).describe()


def test_thresholds_follow_the_cpu(monkeypatch):
    # measured per CPU (benchmarks/RESULTS.md): bf16 products on AMX win up to 4 x 4 maps, on AVX512-BF16 alone
    # only at 2 x 2; fp32 at 2 x 2 on both
    want = runtime.MATMUL_CONV_MAX_HW_BY_CPU["amx" if runtime.cpu_has_amx() else "no_amx"]
    assert MATMUL_CONV_MAX_HW == want
    assert runtime.MATMUL_CONV_MAX_HW_BY_CPU["amx"][torch.bfloat16] == 16
    assert runtime.MATMUL_CONV_MAX_HW_BY_CPU["no_amx"] == {torch.bfloat16: 4, torch.float32: 4}
    monkeypatch.setattr(runtime, "_cpuinfo", lambda: "flags : fpu avx512f avx512_bf16 amx_bf16 amx_tile\n")
    assert runtime.cpu_has_amx() and runtime.cpu_has_native_bf16()
    monkeypatch.setattr(runtime, "_cpuinfo", lambda: "flags : fpu avx512f avx512_bf16\n")
    assert not runtime.cpu_has_amx() and runtime.cpu_has_native_bf16()
    monkeypatch.setattr(runtime, "_cpuinfo", lambda: "")
    assert not runtime.cpu_has_amx() and not runtime.cpu_has_native_bf16()


def test_cpu_model_name_from_the_one_cpuinfo_read(monkeypatch):
    # the benchmark's "cpu" entry and the flags above come from one read of /proc/cpuinfo
    monkeypatch.setattr(runtime, "_cpuinfo", lambda: "processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t: fpu\n")
    assert runtime.cpu_model_name() == "AMD EPYC 9R14"
    monkeypatch.setattr(runtime, "_cpuinfo", lambda: "")
    assert runtime.cpu_model_name() is None
