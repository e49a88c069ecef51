"""Data parallelism over CPU threads in one process (``train.replicas``).

A small network's convolutions do not split well over two cores: on the 2-core Zen 4, airbench_cpu's step at
batch 256 runs 1.20x faster as two half batches on two threads, one core each, than as one batch on both cores,
and the fast recipe's whole run 1.08-1.13x (benchmarks/replicas_step.py, benchmarks/RESULTS.md).
:class:`ThreadReplicas` does that inside the trainer's step: the batch is cut into ``n`` chunks, chunk ``i``
runs forward and backward on replica ``i`` in worker thread ``i`` (replica 0 is the model itself, the others
are copies whose parameters and buffers are set from it before each step), and the gradients are summed into
the model's in replica order, so a run is reproducible bit for bit. Each chunk's loss
is weighted by its share of the batch, so the summed gradient is the whole batch's mean gradient.

As with DDP over ranks, BatchNorm normalises each chunk by its own statistics (ghost batches of
``batch / n``); the running statistics are the replicas' average, which for the running mean is exactly what
one update with the whole batch's mean gives. Dropout and other random layers draw from PyTorch's one
generator in whichever order the threads reach it, so a model with them is not reproducible bit for bit.
"""

from __future__ import annotations

import contextlib
import copy
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator, List, Optional, Tuple

import torch
from torch import nn

__all__ = ["ThreadReplicas", "threads_per_replica"]

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], Tuple[torch.Tensor, torch.Tensor]]


def _running_stats(model: nn.Module) -> List[torch.Tensor]:
    """Every BatchNorm's running mean and variance in ``model``, in module order."""
    return [getattr(m, stat) for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._NormBase) and m.running_mean is not None
            for stat in ("running_mean", "running_var")]


def threads_per_replica(replicas: int, threads: Optional[int] = None) -> int:
    """PyTorch threads each replica's worker gets: the process's threads shared out, at least one."""
    return max(1, (threads or torch.get_num_threads()) // replicas)


class ThreadReplicas:
    """``n`` replicas of ``model`` stepping chunks of one batch in ``n`` threads; see the module's docstring.

    Args:
        model: the model being trained (replica 0); the optimiser, EMA and checkpoints keep working on it alone.
        n: replicas (and threads), at least 2.
        threads: PyTorch threads for each worker (default: :func:`threads_per_replica`).
    """

    def __init__(self, model: nn.Module, n: int, threads: Optional[int] = None) -> None:
        if n < 2:
            raise ValueError(f"ThreadReplicas needs at least 2 replicas, got {n}")
        self.model = model
        self.n = n
        self.threads = threads or threads_per_replica(n)
        self.copies: List[nn.Module] = [copy.deepcopy(model) for _ in range(n - 1)]
        # The tensors and modules the copies mirror, listed once (loading weights copies into the same tensors).
        self._params = list(model.parameters())
        self._buffers = list(model.buffers())
        self._modules = list(model.modules())
        self._copy_params = [list(c.parameters()) for c in self.copies]
        self._copy_buffers = [list(c.buffers()) for c in self.copies]
        self._copy_modules = [list(c.modules()) for c in self.copies]
        self._bn_stats = _running_stats(model)
        self._copy_bn_stats = [_running_stats(c) for c in self.copies]
        self._pool = ThreadPoolExecutor(n, thread_name_prefix="cnnzoo-replica",
                                        initializer=torch.set_num_threads, initargs=(self.threads,))

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    @contextlib.contextmanager
    def stepping(self) -> Iterator[None]:
        """While the replicas train (an epoch), the calling thread runs PyTorch on one thread: its own work (the
        loader, the optimiser's update) is small, and OpenMP's team for it would spin on the cores the workers
        use between its operations. The caller's thread count comes back afterwards, for validation and
        testing."""
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def replicas(self) -> List[nn.Module]:
        return [self.model, *self.copies]

    @torch.no_grad()
    def _sync_copies(self) -> None:
        """Every copy gets the model's parameters (values and requires_grad), buffers and modules' train/eval modes."""
        for cp, cb, cm in zip(self._copy_params, self._copy_buffers, self._copy_modules):
            for p, q in zip(self._params, cp):
                q.requires_grad_(p.requires_grad)
                q.grad = None
            torch._foreach_copy_(cp, self._params)
            if cb:
                torch._foreach_copy_(cb, self._buffers)
            for m, c in zip(self._modules, cm):  # per module: a frozen BatchNorm stays in eval
                c.training = m.training

    @torch.no_grad()
    def _gather(self, used: int) -> None:
        """The gradients of the copies that ran summed into the model's (in replica order); BatchNorm's running
        statistics averaged over the replicas that ran (the other buffers stay the model's)."""
        if used < 2:
            return
        for cp in self._copy_params[:used - 1]:
            for p, q in zip(self._params, cp):
                if q.grad is None:
                    continue
                if p.grad is None:
                    p.grad = q.grad.clone()
                else:
                    p.grad.add_(q.grad)
        if self._bn_stats:
            for stats in self._copy_bn_stats[:used - 1]:
                torch._foreach_add_(self._bn_stats, stats)
            torch._foreach_div_(self._bn_stats, float(used))

    def backward(self, x: torch.Tensor, y: torch.Tensor, loss_fn: LossFn,
                 context: Callable[[], object]) -> Tuple[torch.Tensor, torch.Tensor]:
        """Forward, loss and backward of the batch ``(x, y)`` over the replicas; the model's gradients are then
        the whole batch's (its old ones are dropped). ``loss_fn(module, x, y) -> (loss, logits)`` is called in
        each worker inside ``context()`` (autocast, which is per thread). Returns the batch's mean loss and
        the logits, in batch order. A batch smaller than ``n`` runs on as many replicas as it has images."""
        self._sync_copies()
        for p in self._params:
            p.grad = None
        xs, ys = x.tensor_split(self.n), y.tensor_split(self.n)
        total = x.shape[0]
        replicas = self.replicas()

        def run(i: int) -> Tuple[torch.Tensor, torch.Tensor]:
            with context():
                loss, logits = loss_fn(replicas[i], xs[i], ys[i])
            (loss * (xs[i].shape[0] / total)).backward()
            return loss.detach(), logits.detach()

        used = [i for i in range(self.n) if xs[i].shape[0] > 0]  # tensor_split leaves the empty chunks last
        outs = list(self._pool.map(run, used))
        self._gather(len(used))
        loss = sum(out[0].float() * (xs[i].shape[0] / total) for i, out in zip(used, outs))
        return loss, torch.cat([out[1] for out in outs])
