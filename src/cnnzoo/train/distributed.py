"""DistributedDataParallel through ``torch.distributed``: gloo on the CPU, NCCL on GPUs.

Launched by ``torchrun`` (which sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT);
without those variables everything here is a no-op and training runs in one process.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as tdist
from torch import nn

__all__ = ["init_from_env", "is_distributed", "rank", "world_size", "device_for_rank", "wrap", "all_reduce_sum",
           "params_identical", "barrier"]


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
