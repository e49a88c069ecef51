"""DistributedDataParallel through ``torch.distributed``: gloo on the CPU, NCCL on GPUs.

Launched by ``cnnzoo train --nproc N`` (:func:`launch`) or by ``torchrun`` (both set RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR, MASTER_PORT); without those variables everything here is a no-op and training
runs in one process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Iterable, List, Optional

import torch
import torch.distributed as tdist
from torch import nn

__all__ = ["init_from_env", "is_distributed", "rank", "world_size", "device_for_rank", "wrap", "all_reduce_sum",
           "broadcast_from_rank0", "params_identical", "barrier", "agreed_signal", "launch"]


def is_distributed() -> bool:
    return tdist.is_available() and tdist.is_initialized()


def init_from_env() -> None:
    """Join the process group that torchrun describes in the environment, once."""
    if is_distributed() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    backend = "nccl" if torch.cuda.is_available() and os.environ.get("CNNZOO_DIST_BACKEND") != "gloo" else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    tdist.init_process_group(backend=backend)


def rank() -> int:
    return tdist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return tdist.get_world_size() if is_distributed() else 1


def device_for_rank(device: torch.device) -> torch.device:
    if device.type == "cuda" and is_distributed():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def wrap(model: nn.Module, device: torch.device, sync_bn: bool = False) -> nn.Module:
    """``DistributedDataParallel`` in a process group, the model itself otherwise."""
    if not is_distributed():
        return model
    if sync_bn:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if is_distributed():
        t = t.clone()
        tdist.all_reduce(t)
    return t


def broadcast_from_rank0(tensors: Iterable[torch.Tensor]) -> None:
    """Rank 0's values into every rank's tensors, in place; nothing in one process."""
    if is_distributed():
        for t in tensors:
            tdist.broadcast(t, src=0)


def params_identical(model: nn.Module) -> bool:
    """True when every rank holds bit-identical parameters and buffers (DDP's promise, checked)."""
    if not is_distributed():
        return True
    flat = torch.cat([t.detach().reshape(-1).double() for t in model.state_dict().values() if t.is_floating_point()])
    mine = torch.stack([flat.sum(), (flat * torch.arange(1, flat.numel() + 1, device=flat.device, dtype=flat.dtype)
                                     .remainder(97)).sum()])
    gathered = [torch.zeros_like(mine) for _ in range(world_size())]
    tdist.all_gather(gathered, mine)
    return all(torch.equal(g, gathered[0]) for g in gathered)


def barrier() -> None:
    if is_distributed():
        tdist.barrier()


def agreed_signal(signum: Optional[int], device: torch.device) -> Optional[int]:
    """The signal every rank stops for: the largest any rank received, or None when none did.

    A signal reaches the ranks at slightly different moments; each rank calls this after every step so
    that all of them stop after the same step (a rank that stopped alone would leave the others waiting
    in their next all-reduce).
    """
    if not is_distributed():
        return signum
    t = torch.tensor([signum or 0], dtype=torch.int64, device=device)
    tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
    return int(t.item()) or None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Linux: the worker gets SIGTERM when its launcher dies, even by SIGKILL."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(nproc: int, args: List[str], grace: float = 60.0) -> int:
    """Run ``python -m cnnzoo ARGS`` as ``nproc`` DDP workers on this machine, and wait for them.

    The workers get the environment ``torchrun --standalone`` gives (RANK, LOCAL_RANK, WORLD_SIZE,
    MASTER_ADDR/PORT on the loopback; OMP_NUM_THREADS = cores / nproc unless set), started by this process
    so that it owns them: SIGINT and SIGTERM sent to it reach every worker, which checkpoint after the same
    step (:func:`agreed_signal`) and exit as a single process does; if this process is killed outright the
    kernel sends each worker SIGTERM, so no worker is left training on its own. When a worker fails the
    others are stopped after ``grace`` seconds. Returns rank 0's exit status (128 + the signal after an
    interruption), or the first failure's.
    """
    env = dict(os.environ, WORLD_SIZE=str(nproc), LOCAL_WORLD_SIZE=str(nproc), MASTER_ADDR="127.0.0.1",
               MASTER_PORT=str(_free_port()), GROUP_RANK="0", NODE_RANK="0")
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    pre = _die_with_parent if sys.platform.startswith("linux") else None
    procs = [subprocess.Popen([sys.executable, "-m", "cnnzoo", *args], preexec_fn=pre,
                              env=dict(env, RANK=str(r), LOCAL_RANK=str(r))) for r in range(nproc)]
    received: List[int] = []

    def forward(signum, frame):
        received.append(signum)
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        codes = _wait_all(procs, grace)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    codes = [c if c >= 0 else 128 - c for c in codes]
    if received and codes[0] != 0:
        return 128 + received[0]
    return codes[0] or next((c for c in codes if c), 0)


def _wait_all(procs: List[subprocess.Popen], grace: float) -> List[int]:
    """Wait for every worker; once one has failed, the rest get ``grace`` seconds, then SIGTERM, then SIGKILL."""
    deadline = None
    while True:
        codes = [p.poll() for p in procs]
        if all(c is not None for c in codes):
            return codes
        if deadline is None and any(c not in (None, 0) for c in codes):
            deadline = time.monotonic() + grace
        if deadline is not None and time.monotonic() > deadline:
            for p in procs:
                if p.poll() is None:
                    p.terminate()
            try:
                for p in procs:
                    p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                for p in procs:
                    p.kill()
            return [p.wait() for p in procs]
        time.sleep(0.2)
