"""``cnnzoo benchmark``: the three output formats, the torchvision comparison and its refusals.

Tiny runs (batch 2-4, one or two timed steps, one thread): these check the plumbing and the shape of the
output, never the speed.
"""

from __future__ import annotations

import json

import pytest
import torch

from cnnzoo.bench import Settings, benchmark
from cnnzoo.cli import main
from cnnzoo.runtime import cpu_has_native_bf16

TINY = ["--repeats", "2", "--steps", "1", "--warmup", "1", "--threads", "1", "--batch-size", "4"]
FIELDS = ["model", "input", "batch", "device", "settings", "precision", "channels_last", "params", "infer_img_s",
          "train_img_s", "infer_peak_mib", "train_peak_mib", "samples", "repeats", "steps", "warmup", "memory", "env"]


def cli(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_json_fields_and_positive_numbers(capsys):
    rc, out, _ = cli(capsys, "benchmark", "lenet5", "--input", "1x32x32", "--format", "json", *TINY)
    assert rc == 0
    (r,) = json.loads(out)
    for f in FIELDS:
        assert f in r, f
    assert r["model"] == "lenet5" and r["input"] == "1x32x32" and r["batch"] == 4 and r["device"] == "cpu"
    # auto on the CPU is the trainer's choice: bf16 for LeNet-5 where the CPU has native bf16
    assert r["channels_last"] is True and r["precision"] == ("bf16" if cpu_has_native_bf16() else "fp32")
    for k in ("infer_img_s", "train_img_s"):
        assert r[k] > 0, k
    assert len(r["samples"]["infer"]) == len(r["samples"]["train"]) == 2
    if r["infer_peak_mib"] is not None:  # None only where /proc cannot be read
        assert r["infer_peak_mib"] >= 0 and r["train_peak_mib"] > 0
    assert "baselines" not in r
    assert r["env"]["threads"] == 1


def test_text_and_markdown(capsys):
    rc, out, _ = cli(capsys, "benchmark", "lenet5", "--input", "1x28x28", "--mode", "infer", *TINY)
    assert rc == 0 and out.startswith("lenet5") and "cnnzoo" in out and "infer img/s" in out
    rc, out, _ = cli(capsys, "benchmark", "lenet5", "--input", "1x28x28", "--mode", "infer", "--format", "markdown",
                     "--no-channels-last", "--no-fold-bn", "--no-matmul-conv", "--precision", "fp32", *TINY)
    assert rc == 0
    lines = out.splitlines()
    header = [ln for ln in lines if ln.startswith("| model |")]
    assert header, out
    i = lines.index(header[0])
    assert set(lines[i + 1].replace("|", "").replace(":", "")) == {"-"}
    row = lines[i + 2]
    assert row.startswith("| `lenet5` | 1x28x28 | 4 | cnnzoo | fp32, NCHW |")
    assert row.count("|") == header[0].count("|")


def test_small_input_option_is_used_without_vs(capsys):
    rc, out, _ = cli(capsys, "benchmark", "resnet20", "--input", "3x32x32", "--mode", "infer", "-f", "json", *TINY)
    assert rc == 0
    assert json.loads(out)[0]["input"] == "3x32x32"
    rc, out, _ = cli(capsys, "benchmark", "resnet18", "--input", "1x28x28", "--mode", "infer", "-f", "json", *TINY)
    r = json.loads(out)[0]
    assert rc == 0 and r["kwargs"] == {"small_input": True} and "small_input" in r["note"]


def test_vs_torchvision_gives_both_ratios(capsys):
    rc, out, _ = cli(capsys, "benchmark", "resnet18", "--input", "3x32x32", "--batch-size", "2", "--repeats", "1",
                     "--steps", "1", "--warmup", "1", "--threads", "1", "--vs", "torchvision", "-f", "json")
    assert rc == 0
    (r,) = json.loads(out)
    assert r["kwargs"] == {}  # torchvision's architecture: no small-input stem
    b = r["baselines"]
    assert set(b) == {"torchvision_as_is", "torchvision_same"}
    assert b["torchvision_as_is"]["settings"] == "fp32, NCHW"
    assert b["torchvision_same"]["settings"] == r["settings"]
    for d in b.values():
        assert d["builder"] == "resnet18"
        for m in ("infer", "train"):
            assert d[f"{m}_img_s"] > 0
            assert d[f"{m}_ratio"] == pytest.approx(r[f"{m}_img_s"] / d[f"{m}_img_s"])


def test_vs_refused_without_a_torchvision_twin(capsys):
    rc, out, err = cli(capsys, "benchmark", "resnet20", "--vs", "torchvision", *TINY)
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "no torchvision twin" in err and "resnet18" in err


@pytest.mark.parametrize("bad", ["abc", "3xx64", "3x0x64", "2x3x4x5"])
def test_bad_input_is_one_line_exit_2(capsys, bad):
    rc, out, err = cli(capsys, "benchmark", "lenet5", "--input", bad, *TINY)
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("cnnzoo: error: --input")


@pytest.mark.parametrize("flag", [["--batch-size", "0"], ["--repeats", "0"], ["--steps", "0"], ["--warmup", "-1"]])
def test_bad_counts_exit_2(capsys, flag):
    rc, _, err = cli(capsys, "benchmark", "lenet5", "--input", "1x32x32", *TINY, *flag)
    assert rc == 2 and len(err.strip().splitlines()) == 1


def test_threads_setting_is_restored(capsys):
    before = torch.get_num_threads()
    cli(capsys, "benchmark", "lenet5", "--input", "1x32x32", "--mode", "infer", *TINY)
    assert torch.get_num_threads() == before


def test_settings_describe_and_train_mode_drops_folding():
    s = Settings(channels_last=True, amp_dtype=torch.bfloat16, fold_bn=True)
    assert s.describe() == "bf16, channels_last, BN folded (inference)"
    assert s.for_mode("train").describe() == "bf16, channels_last"
    assert Settings().describe() == "fp32, NCHW"
    t = Settings(channels_last=True, amp_dtype=torch.bfloat16, fold_bn=True, fused_sgd=True)
    assert t.for_mode("train").describe() == "bf16, channels_last, fused SGD"
    assert t.for_mode("infer").describe() == "bf16, channels_last, BN folded (inference)"


def test_library_call_single_mode():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        r = benchmark("lenet5", batch=2, input_size=(1, 32, 32), repeats=1, steps=1, warmup=0, modes=("train",))
    finally:
        torch.set_num_threads(before)
    assert r["train_img_s"] > 0 and r["infer_img_s"] is None and r["samples"] == {"train": r["samples"]["train"]}


def test_gflops_are_counted_flops_times_rate_and_share_the_stated_peak(capsys):
    """GFLOP/s = img/s x forward FLOPs (x 3 for a training step); the share divides by the peak used."""
    from cnnzoo.analysis.flops import count_macs
    from cnnzoo.builder import create_model

    rc, out, _ = cli(capsys, "benchmark", "lenet5", "--input", "1x32x32", "--format", "json", "--precision", "fp32",
                     "--peak-gflops", "50", *TINY)
    assert rc == 0
    (r,) = json.loads(out)
    with torch.device("meta"):
        assert r["flops"] == 2 * count_macs(create_model("lenet5", num_classes=1000, in_chans=1), (1, 1, 32, 32))
    assert r["train_gflops"] == pytest.approx(r["train_img_s"] * r["flops"] * 3 / 1e9)
    assert r["infer_gflops"] == pytest.approx(r["infer_img_s"] * r["flops"] / 1e9)
    assert r["train_peak_share"] == pytest.approx(r["train_gflops"] / 50) and r["peak_gflops"] == {"fp32": 50}
    rc, out, _ = cli(capsys, "benchmark", "lenet5", "--input", "1x32x32", "--mode", "train", *TINY)
    assert rc == 0 and "train GFLOP/s" in out and "of peak" in out and "FLOP/image" in out
    assert "peak measured: best 2048x2048 matmul" in out
    rc, _, err = cli(capsys, "benchmark", "lenet5", "--peak-gflops", "0", *TINY)
    assert rc == 2 and "--peak-gflops must be above 0" in err


def test_gemm_peak_is_a_positive_rate_measured_once():
    from cnnzoo import bench

    dev = torch.device("cpu")
    first = bench.gemm_peak(dev, None)
    assert first > 0 and bench.gemm_peak(dev, torch.float32) == first  # None is fp32, and it is cached


@pytest.mark.parametrize("native", [True, False])
def test_the_bf16_peak_of_a_cpu_that_emulates_bf16_is_fp32s(monkeypatch, native):
    """Without AVX512-BF16 or AMX, PyTorch computes bf16 on the fp32 units (a 2048 x 2048 bf16 product took a
    minute on a Zen 3): the share of peak divides by fp32's product there, and the product is not timed in bf16."""
    from cnnzoo import bench as bench_mod
    from cnnzoo import runtime

    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: native)
    monkeypatch.setattr(bench_mod, "PEAK_GEMM", 128)
    monkeypatch.setattr(bench_mod, "_PEAKS", {})
    cpu = torch.device("cpu")
    fp32, bf16 = bench_mod.gemm_peak(cpu, None), bench_mod.gemm_peak(cpu, torch.bfloat16)
    assert sorted(bench_mod._PEAKS) == (sorted([("cpu", "torch.float32"), ("cpu", "torch.bfloat16")]) if native
                                        else [("cpu", "torch.float32")])
    assert (bf16 == fp32) is not native
