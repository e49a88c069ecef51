"""Which precision trains each model faster on this CPU: fp32 or bf16 autocast (both channels_last).

The evidence behind ``--precision auto`` on the CPU (cnnzoo.runtime.resolve_precision): for each
model, a training step (forward, cross-entropy, backward, SGD with momentum) on grey 28x28 images (the
models' small-input form, as `cnnzoo train --data fashion-mnist` builds them) at batch 128, fp32 and bf16
timed alternately, median of the repeats; prints images/s, the bf16/fp32 ratio and what ``auto`` picks.

    python benchmarks/precision_cpu.py                       # the training issue's recipe models
    python benchmarks/precision_cpu.py --models lenet5 --repeats 2 --steps 1   # a quick check
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from cnnzoo.builder import create_model
from cnnzoo.builder import plan_input
from cnnzoo.runtime import cpu_has_native_bf16, has_depthwise_conv, resolve_precision

MODELS = ["lenet5", "bn_convnet", "airbench_cpu", "resnet20", "resnet18", "seresnet18", "vgg11_bn", "nin",
          "googlenet", "densenet_bc_100_12", "mobilenet_v2", "efficientnet_b0", "mixer_s4_32"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=MODELS)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"CPU native bf16: {'yes' if cpu_has_native_bf16() else 'no'}; threads {torch.get_num_threads()}; "
          f"batch {a.batch}, 1x28x28, {a.repeats} x {a.steps} steps, torch {torch.__version__}\n")
    print("| model | depthwise convs | fp32 img/s | bf16 img/s | bf16 / fp32 | auto picks |")
    print("|---|---|---:|---:|---:|---|")
    for name in a.models:
        plan = plan_input(name, 28)
        torch.manual_seed(0)
        model = create_model(name, num_classes=10, in_chans=1, **plan.kwargs).to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        s = plan.image_size
        x = torch.randn(a.batch, 1, s, s).contiguous(memory_format=torch.channels_last)
        y = torch.randint(0, 10, (a.batch,))
        model.train()

        def run(dtype, steps):
            t = time.perf_counter()
            for _ in range(steps):
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype is not None):
                    out = model(x)
                    out = out[0] if isinstance(out, tuple) else out
                loss = F.cross_entropy(out.float(), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            return a.batch * steps / (time.perf_counter() - t)

        run(None, 2), run(torch.bfloat16, 2)  # warm-up
        fp32, bf16 = [], []
        for _ in range(a.repeats):
            fp32.append(run(None, a.steps))
            bf16.append(run(torch.bfloat16, a.steps))
        f, b = statistics.median(fp32), statistics.median(bf16)
        auto = resolve_precision("auto", torch.device("cpu"), model)
        print(f"| `{name}` | {'yes' if has_depthwise_conv(model) else 'no'} | {f:,.0f} | {b:,.0f} | {b / f:.2f}x "
              f"| {'bf16' if auto is not None else 'fp32'} |", flush=True)


if __name__ == "__main__":
    main()
