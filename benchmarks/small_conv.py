"""Convolutions with few output positions on the CPU: oneDNN's kernel against one matrix product of the patches.

For each shape (ResNet-18's and MobileNet v2's late layers at 64 px, and larger maps where the product loses),
forward + backward of ``F.conv2d`` and of :func:`cnnzoo.runtime.conv2d_as_matmul`, channels_last, alternated in
one process; median milliseconds and the ratio. The thresholds in ``cnnzoo.runtime.MATMUL_CONV_MAX_HW`` come
from this table.

    python benchmarks/small_conv.py --threads 2 --repeats 11
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from cnnzoo.runtime import MATMUL_CONV_MAX_HW, conv2d_as_matmul

# (batch, in, side, out, kernel, stride)
SHAPES = [
    (64, 512, 2, 512, 3, 1), (64, 256, 4, 512, 3, 2), (64, 256, 4, 512, 1, 2), (64, 960, 2, 160, 1, 1),
    (64, 256, 4, 256, 3, 1), (128, 512, 4, 512, 3, 1), (64, 576, 4, 96, 1, 1), (64, 128, 8, 256, 3, 2),
    (64, 144, 8, 32, 1, 1), (128, 256, 7, 256, 3, 1), (64, 64, 16, 64, 3, 1), (64, 32, 32, 96, 1, 1),
]


def _ms(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=11)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--dtypes", nargs="+", default=["bf16", "fp32"], choices=["bf16", "fp32"])
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    print(f"threads: {torch.get_num_threads()}; thresholds (H_out x W_out): "
          f"bf16 {MATMUL_CONV_MAX_HW[torch.bfloat16]}, fp32 {MATMUL_CONV_MAX_HW[torch.float32]}")
    print("| dtype | input (N x C x H x W) | out | kernel, stride | H_out x W_out | conv2d ms | matmul ms | conv2d / matmul |")
    print("|---|---|---:|---|---:|---:|---:|---:|")
    for name in a.dtypes:
        dtype = torch.bfloat16 if name == "bf16" else torch.float32
        for n, c, side, co, k, s in SHAPES:
            p = k // 2
            cl = torch.channels_last
            x = torch.randn(n, c, side, side, dtype=dtype).contiguous(memory_format=cl).requires_grad_()
            w = torch.randn(co, c, k, k, dtype=dtype).contiguous(memory_format=cl).requires_grad_()
            out = F.conv2d(x, w, stride=s, padding=p)
            g = torch.randn_like(out)
            step = {"conv2d": lambda: torch.autograd.grad(F.conv2d(x, w, stride=s, padding=p), (x, w), g),
                    "matmul": lambda: torch.autograd.grad(conv2d_as_matmul(x, w, None, (s, s), (p, p)), (x, w), g)}
            for fn in step.values():  # warm-up: kernels chosen, memory touched
                for _ in range(3):
                    fn()
            times = {key: [] for key in step}
            for r in range(a.repeats):  # alternated, so drift hits both alike
                for key in (list(step) if r % 2 == 0 else list(step)[::-1]):
                    times[key].append(_ms(step[key]))
            conv_ms, mm_ms = statistics.median(times["conv2d"]), statistics.median(times["matmul"])
            print(f"| {name} | {n}x{c}x{side}x{side} | {co} | {k}x{k}, {s} | {out.shape[2] * out.shape[3]} | "
                  f"{conv_ms:.2f} | {mm_ms:.2f} | {conv_ms / mm_ms:.2f}x |")


if __name__ == "__main__":
    main()
