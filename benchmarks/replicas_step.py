"""train.replicas on the CPU: one batch on all cores against its halves on replicas, one core each (issue 14).

The fast recipe's training step (airbench_cpu, ReLU, bf16, channels_last, fused SGD with Nesterov momentum,
label smoothing 0.1), on a fixed batch: as the trainer runs it with ``train.replicas=1`` (the model on all of
PyTorch's threads) and with ``train.replicas=N`` (:class:`cnnzoo.train.replicas.ThreadReplicas`, the caller on
one thread as in the trainer's epoch; and, to show why, with the caller left on all its threads). One process,
the variants alternated over the rounds, their order reversed every other round; median milliseconds a step
(min - max) and the ratio to ``replicas=1``.

    python benchmarks/replicas_step.py --repeats 21
    python benchmarks/replicas_step.py --model airbench_cpu_x2 --batch 256 --replicas 2
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import torch
import torch.nn.functional as F

from cnnzoo.builder import create_model
from cnnzoo.runtime import autocast
from cnnzoo.train.losses import classification_loss
from cnnzoo.train.replicas import ThreadReplicas


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="airbench_cpu")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--steps", type=int, default=20)
    a = ap.parse_args()
    cpu = torch.device("cpu")
    x = torch.randn(a.batch, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (a.batch,))
    threads = torch.get_num_threads()

    def build():
        torch.manual_seed(0)
        m = create_model(a.model, num_classes=10, in_chans=1, act="relu").to(memory_format=torch.channels_last)
        return m, torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, nesterov=True, fused=True)

    m1, opt1 = build()

    def one() -> None:
        with autocast(cpu, torch.bfloat16):
            loss = F.cross_entropy(m1(x), y, label_smoothing=0.1)
        opt1.zero_grad(set_to_none=True)
        loss.backward()
        opt1.step()

    m2, opt2 = build()
    reps = ThreadReplicas(m2, a.replicas)

    def loss_fn(m, xb, yb):
        return classification_loss(m(xb), yb, 0.1)

    def split() -> None:
        reps.backward(x, y, loss_fn, lambda: autocast(cpu, torch.bfloat16))
        opt2.step()

    variants = {"replicas=1": (one, contextlib.nullcontext),
                f"replicas={a.replicas}": (split, reps.stepping),
                # without ThreadReplicas.stepping: the caller's OpenMP team spins on the workers' cores
                f"replicas={a.replicas}, caller on {threads} threads": (split, contextlib.nullcontext)}
    print(f"{a.model}, batch {a.batch}, {threads} threads; replicas={a.replicas}: {reps.threads} thread(s) each")
    ms = {k: [] for k in variants}
    for fn, ctx in variants.values():
        with ctx():
            for _ in range(3):
                fn()
    for r in range(a.repeats):
        for k in (list(variants) if r % 2 == 0 else list(variants)[::-1]):
            fn, ctx = variants[k]
            with ctx():
                t = time.perf_counter()
                for _ in range(a.steps):
                    fn()
                ms[k].append((time.perf_counter() - t) / a.steps * 1e3)
    reps.close()
    base = statistics.median(ms["replicas=1"])
    for k, v in ms.items():
        med = statistics.median(v)
        print(f"{k:34s} {med:6.2f} ms a step ({min(v):.2f} - {max(v):.2f})  {a.batch / med * 1e3:7,.0f} img/s  "
              f"{base / med:.2f}x")


if __name__ == "__main__":
    main()
