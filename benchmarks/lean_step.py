"""Leaner training steps for airbench_cpu on the CPU, side by side (issue 14): eager against GELU's tanh
approximation and torch.compile (inductor), and the default precision / memory format / batch against the
alternatives. One process, each variant warmed up (compile time printed), timed runs alternated (order reversed
every other round), median and min - max of ``--repeats`` runs. Time it on a quiet machine.

    python benchmarks/lean_step.py compile      # eager, tanh GELU, compiled, compiled + tanh, ReLU eager/compiled
    python benchmarks/lean_step.py formats      # bf16/fp32, channels_last/NCHW, batch 128/256/512 (fp32 only and
                                                # batch 128-1024 where the CPU has no native bf16)
    python benchmarks/lean_step.py formats --model airbench_cpu_x2 --act relu   # the same for fast94's network
    python benchmarks/lean_step.py acts         # the paper's GELU against ReLU (AirNet's act option), in place
    python benchmarks/lean_step.py widths       # airbench group widths 16-32-64 .. 48-96-192, ReLU
    python benchmarks/lean_step.py sizes        # ReLU steps on 28, 24, 20 and 16 px batches (progressive resizing)
    python benchmarks/lean_step.py pools        # a group's max-pool -> BN -> ReLU, forward + backward: PyTorch's
                                                # pool, a hand-written 2x2 pool, amax over a view, the chain compiled
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn

from _alternate import alternate
from cnnzoo import create_model
from cnnzoo.models.airbench import ACTIVATIONS
from cnnzoo.runtime import autocast, cpu_has_native_bf16


def make_step(batch: int = 256, dtype=torch.bfloat16, channels_last: bool = True, tanh: bool = False,
              compile: bool = False, name: str = "airbench_cpu", inplace: bool = False, side: int = 28,
              **kwargs):
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = create_model(name, num_classes=10, in_chans=1, **kwargs).to(memory_format=fmt)
    if inplace:
        for m in model.modules():
            if isinstance(m, nn.ReLU):
                m.inplace = True
    if tanh:
        for m in model.modules():
            if isinstance(m, nn.GELU):
                m.approximate = "tanh"
    x = torch.randn(batch, 1, side, side).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    fn = torch.compile(model) if compile else model

    def step():
        with autocast(torch.device("cpu"), dtype):
            loss = F.cross_entropy(fn(x), y, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, batch


class _MaxPool2x2(torch.autograd.Function):
    """2x2 / stride-2 max-pool as the max of four strided views; backward routes each gradient to the first
    maximum in (0,0), (0,1), (1,0), (1,1) order, as PyTorch's kernel breaks ties, without an index tensor."""

    @staticmethod
    def forward(ctx, x):
        ho, wo = x.shape[2] // 2, x.shape[3] // 2
        v = [x[:, :, i:2 * ho:2, j:2 * wo:2] for i, j in ((0, 0), (0, 1), (1, 0), (1, 1))]
        out = torch.maximum(torch.maximum(v[0], v[1]), torch.maximum(v[2], v[3]))
        ctx.save_for_backward(x, out)
        return out

    @staticmethod
    def backward(ctx, g):
        x, out = ctx.saved_tensors
        ho, wo = out.shape[2:]
        gi = torch.zeros_like(x) if x.shape[2] % 2 or x.shape[3] % 2 else torch.empty_like(x)
        taken = None
        for k, (i, j) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
            if k == 3:
                m = ~taken
            else:
                m = x[:, :, i:2 * ho:2, j:2 * wo:2] == out
                m, taken = (m, m) if taken is None else (m & ~taken, taken | (m & ~taken))
            gi[:, :, i:2 * ho:2, j:2 * wo:2] = g * m
        return gi


def _amax_pool(x):
    ho, wo = x.shape[2] // 2, x.shape[3] // 2
    return x[:, :, :2 * ho, :2 * wo].unflatten(3, (wo, 2)).unflatten(2, (ho, 2)).amax((3, 5))


class _Lambda(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def pools(repeats: int) -> None:
    """Each airbench_cpu group's pool -> BN -> ReLU on its bf16 channels_last conv output (batch 256), forward +
    backward, 20 passes a run; ms a pass."""
    for chs, side in ((16, 27), (32, 13), (64, 6)):
        x = torch.randn(256, chs, side, side).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)

        def chain(pool):
            return nn.Sequential(pool, nn.BatchNorm2d(chs), nn.ReLU()).to(memory_format=torch.channels_last)

        mods = {"pytorch pool": chain(nn.MaxPool2d(2)), "hand 2x2 pool": chain(_Lambda(_MaxPool2x2.apply)),
                "amax pool": chain(_Lambda(_amax_pool)), "compiled chain": torch.compile(chain(nn.MaxPool2d(2)))}
        with torch.no_grad(), autocast(torch.device("cpu"), torch.bfloat16):
            g = torch.randn_like(mods["pytorch pool"](x))

        def run(m, n=20):
            for _ in range(n):
                with autocast(torch.device("cpu"), torch.bfloat16):
                    y = m(x.detach().requires_grad_())
                y.backward(g)

        for k, m in mods.items():
            t0 = time.perf_counter()
            run(m, 3)
            print(f"{chs} x {side}^2 {k}: warmed up in {time.perf_counter() - t0:.1f} s")
        times = alternate({k: (lambda m=m: run(m)) for k, m in mods.items()}, repeats)
        for k, ts in times.items():
            ms = [t / 20 * 1e3 for t in ts]
            print(f"{chs:3d} x {side:2d}^2  {k:15s} median {statistics.median(ms):6.3f} ms  "
                  f"(min {min(ms):.3f}, max {max(ms):.3f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["compile", "formats", "acts", "widths", "sizes", "pools"])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--widths", nargs="+", default=["16-32-64", "24-48-96", "32-64-128", "48-96-192"],
                    help="the group widths 'widths' compares (ReLU)")
    ap.add_argument("--model", default="airbench_cpu", help="the network 'formats' times (an airbench name)")
    ap.add_argument("--act", default=None, choices=sorted(ACTIVATIONS),
                    help="the activation 'formats' uses (default: the model's own)")
    a = ap.parse_args()
    if a.what == "pools":
        return pools(a.repeats)
    if a.what == "compile":
        specs = {"eager": {}, "gelu_tanh": dict(tanh=True), "compiled": dict(compile=True),
                 "compiled_tanh": dict(compile=True, tanh=True), "relu": dict(act="relu"),
                 "compiled_relu": dict(compile=True, act="relu")}
    elif a.what == "acts":
        specs = {"gelu": {}, "relu": dict(act="relu"), "relu_inplace": dict(act="relu", inplace=True)}
    elif a.what == "widths":
        specs = {w: dict(widths=tuple(int(c) for c in w.split("-")), act="relu")
                 for w in a.widths}
    elif a.what == "sizes":
        specs = {f"{side} px": dict(side=side, act="relu") for side in (28, 24, 20, 16)}
    else:
        base = dict(name=a.model, **({"act": a.act} if a.act else {}))
        if cpu_has_native_bf16():
            formats = {"bf16 CL 256": {}, "fp32 CL 256": dict(dtype=None), "bf16 NCHW 256": dict(channels_last=False),
                       "bf16 CL 512": dict(batch=512), "bf16 CL 128": dict(batch=128),
                       "fp32 CL 512": dict(dtype=None, batch=512)}
        else:  # bf16 is emulated here (10x+ slower): the fp32 formats the trainer's `auto` runs, and one bf16 row
            formats = {"fp32 CL 256": dict(dtype=None), "fp32 NCHW 256": dict(dtype=None, channels_last=False),
                       "fp32 CL 512": dict(dtype=None, batch=512), "fp32 NCHW 512": dict(dtype=None, batch=512,
                                                                                         channels_last=False),
                       "fp32 CL 1024": dict(dtype=None, batch=1024), "fp32 CL 128": dict(dtype=None, batch=128),
                       "bf16 CL 256": {}}
        specs = {k: {**base, **kw} for k, kw in formats.items()}
    variants = {}
    for k, kw in specs.items():
        t0 = time.perf_counter()
        variants[k] = make_step(**kw)
        for _ in range(3):
            variants[k][0]()
        print(f"{k}: built and warmed up in {time.perf_counter() - t0:.1f} s")
    n = {k: max(1, 2560 // batch) for k, (_, batch) in variants.items()}  # steps a run: ~2,560 images
    runs = {k: (lambda step=step, k=k: [step() for _ in range(n[k])]) for k, (step, _) in variants.items()}
    rates = {k: [variants[k][1] * n[k] / t for t in ts] for k, ts in alternate(runs, a.repeats).items()}
    for k, v in rates.items():
        print(f"{k:14s} median {statistics.median(v):7.0f} img/s  (min {min(v):.0f}, max {max(v):.0f})")


if __name__ == "__main__":
    main()
