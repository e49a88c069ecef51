"""Two ways to run a CPU training step in bf16, side by side (issue 14, target 4): autocast (cnnzoo's default)
against fp32 modules whose convolutions and matrix products oneDNN computes in bf16
(``torch.backends.mkldnn.{conv,matmul}.fp32_precision = "bf16"``), with torchvision's fp32 step as the baseline.

torchvision's resnet18 (or ``--model``), batch 64, 3x64x64, 1000 classes, fused SGD; one process, the variants'
timed runs alternated (order reversed every other round); median and min - max img/s of ``--repeats`` runs of
``--steps`` steps. Time it on a quiet machine.

    python benchmarks/bf16_routes.py --repeats 9
"""

from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F
import torchvision

from _alternate import alternate


def make_step(model_name: str, batch: int, size: int, channels_last: bool, autocast: bool, precision: str):
    torch.manual_seed(0)
    model = getattr(torchvision.models, model_name)()
    x = torch.randn(batch, 3, size, size)
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, fused=True)

    def step():
        torch.backends.mkldnn.conv.fp32_precision = precision
        torch.backends.mkldnn.matmul.fp32_precision = precision
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--steps", type=int, default=5)
    a = ap.parse_args()
    specs = {"autocast bf16, channels_last (cnnzoo)": (True, True, "ieee"),
             "fp32_precision=bf16, channels_last": (True, False, "bf16"),
             "fp32_precision=bf16, NCHW": (False, False, "bf16"),
             "fp32, NCHW (torchvision as-is)": (False, False, "ieee")}
    steps = {k: make_step(a.model, a.batch, a.size, *v) for k, v in specs.items()}
    for step in steps.values():
        for _ in range(3):
            step()
    runs = {k: (lambda step=step: [step() for _ in range(a.steps)]) for k, step in steps.items()}
    rates = {k: [a.batch * a.steps / t for t in ts] for k, ts in alternate(runs, a.repeats).items()}
    torch.backends.mkldnn.conv.fp32_precision = torch.backends.mkldnn.matmul.fp32_precision = "ieee"
    base = statistics.median(rates["fp32, NCHW (torchvision as-is)"])
    print(f"{a.model}, batch {a.batch}, 3x{a.size}x{a.size}, threads {torch.get_num_threads()}")
    print("| variant | img/s median (min - max) | / as-is |")
    print("|---|---:|---:|")
    for k, v in rates.items():
        med = statistics.median(v)
        print(f"| {k} | {med:.1f} ({min(v):.1f} - {max(v):.1f}) | {med / base:.2f}x |")


if __name__ == "__main__":
    main()
