"""What the trainer's epoch loop costs beyond the bare training step (issue 14), in one process, alternated.

    python benchmarks/trainer_overhead.py [-c configs/fast_fashion-mnist.yaml] [--batches 60] [--repeats 7]

A recipe's Trainer is set up as ``cnnzoo train`` sets it up (its model, optimiser, loaders), then four runs of
``--batches`` batches are alternated: the training loader alone (order, gather, flip and translation on the
device); the bare step (autocast forward, loss, backward, optimiser) on batches the loader made earlier;
``Trainer.train_step`` (the same, plus the on-device running sums, lookahead and EMA where the recipe has them);
and the epoch loop's whole body (loader, learning-rate schedule, step, progress, stop check). Medians in ms a
batch and img/s, min - max. Time it alone on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch.nn.functional as F

from _alternate import alternate
from cnnzoo.io import Progress, RunDir
from cnnzoo.runtime import autocast
from cnnzoo.train import trainer as T
from cnnzoo.train.config import load_config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", "-c", default="configs/fast_fashion-mnist.yaml")
    ap.add_argument("--batches", type=int, default=60, help="batches a timed run")
    ap.add_argument("--repeats", type=int, default=7)
    a = ap.parse_args()

    cfg = load_config(a.config)
    cfg.run.progress = "none"
    with tempfile.TemporaryDirectory() as tmp:
        cfg.run.output = tmp
        tr = T.Trainer(cfg, RunDir(Path(tmp)), log=lambda _: None)
        tr.setup()
    tr.progress, tr._stop = Progress("none", True), None
    tr.progress.start(10 ** 9, "timing", 0)
    tr.model.train()
    loader, n = tr.loaders.train, min(a.batches, len(tr.loaders.train) - 1)

    def batches(epoch: int):
        loader.set_epoch(epoch)
        for i, b in enumerate(loader):
            if i == n:
                return
            yield b

    made = list(batches(1))

    def loader_only():
        for _ in batches(0):
            pass

    def bare_step():
        for x, y in made:
            with autocast(tr.device, tr.amp_dtype):
                loss = F.cross_entropy(tr.model(x), y, label_smoothing=cfg.train.label_smoothing)
            tr.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            tr.optimizer.step()

    def train_step():
        for x, y in made:
            tr.train_step(x, y)
            tr.step += 1

    def epoch_loop():
        t0 = time.perf_counter()
        for i, (x, y) in enumerate(batches(2)):
            T.set_lr(tr.optimizer, cfg.optim.lr,
                     T.lr_factor(tr.step, tr.steps_per_epoch, cfg.train.epochs, cfg.schedule, 1.0))
            tr.train_step(x, y)
            tr.step += 1
            tr._show_progress(i, cfg.optim.lr, x.shape[0] * (i + 1), t0, 1)
            tr._stop_agreed()

    runs = dict(loader_only=loader_only, bare_step=bare_step, train_step=train_step, epoch_loop=epoch_loop)
    for run in runs.values():  # warm-up
        run()
    bs = cfg.data.batch_size
    for k, ts in alternate(runs, a.repeats).items():
        med = statistics.median(ts)
        print(f"{k:12s} {med * 1000 / n:6.2f} ms a batch  {bs * n / med:8,.0f} img/s  "
              f"(min - max {min(ts) * 1000 / n:.2f} - {max(ts) * 1000 / n:.2f} ms)")


if __name__ == "__main__":
    main()
