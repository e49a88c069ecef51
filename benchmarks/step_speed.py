"""Target 1: the training step, cnnzoo's default against torchvision's same architecture (CPU, or --device cuda).

For each model: a training step (forward, loss, backward, SGD step) at batch 64 on 3x64x64 images,
cnnzoo's model with its defaults (channels_last, the trainer's precision) against torchvision's
as-is (fp32, NCHW) and given the same memory format and precision; inference is measured too unless
``--train-only``. The variants run in one process, their timed runs alternated (see cnnzoo.bench).
Prints a markdown table for benchmarks/RESULTS.md; ``--json FILE`` keeps every sample.

    python benchmarks/step_speed.py                        # resnet18, mobilenet_v2, vgg11_bn
    python benchmarks/step_speed.py --precision bf16       # where the CPU has native bf16 (AVX512-BF16/AMX)
    python benchmarks/step_speed.py --models resnet18 --batch 4 --repeats 1 --steps 1   # a quick check
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from cnnzoo.bench import benchmark, format_results
from cnnzoo.runtime import cpu_has_native_bf16


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["resnet18", "mobilenet_v2", "vgg11_bn"])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--input", default="3x64x64", help="CxHxW (default 3x64x64)")
    ap.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto",
                    help="our precision; the 'same settings' baseline gets it too (default auto: the trainer's)")
    ap.add_argument("--no-channels-last", action="store_true", help="run ours (and 'same settings') in NCHW")
    ap.add_argument("--no-matmul-conv", action="store_true",
                    help="ours (and 'same settings') without small convolutions as matrix products")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--num-classes", type=int, default=1000, help="classifier outputs (default 1000, torchvision's)")
    ap.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    ap.add_argument("--threads", type=int, help="torch.set_num_threads (default: PyTorch's choice)")
    ap.add_argument("--train-only", action="store_true", help="skip the inference measurement")
    ap.add_argument("--json", metavar="FILE", help="also write the full results (every sample) here")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    c, h, w = (int(v) for v in a.input.lower().split("x"))
    print(f"CPU native bf16: {'yes' if cpu_has_native_bf16() else 'no'}; threads: {torch.get_num_threads()}",
          file=sys.stderr)
    results = []
    for name in a.models:
        print(f"measuring {name} ...", file=sys.stderr, flush=True)
        results.append(benchmark(name, batch=a.batch, input_size=(c, h, w), device=a.device, precision=a.precision,
                                 channels_last=not a.no_channels_last, vs="torchvision", repeats=a.repeats,
                                 steps=a.steps, warmup=a.warmup, num_classes=a.num_classes,
                                 modes=("train",) if a.train_only else ("infer", "train"),
                                 matmul_conv=not a.no_matmul_conv))
    print(format_results(results, "markdown"))
    print()
    print("| model | train: ours / torchvision as-is | train: ours / torchvision same settings |")
    print("|---|---:|---:|")
    for r in results:
        b = r["baselines"]
        print(f"| `{r['model']}` | {b['torchvision_as_is']['train_ratio']:.2f}x "
              f"| {b['torchvision_same']['train_ratio']:.2f}x |")
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nwrote {a.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
