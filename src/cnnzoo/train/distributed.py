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
           "barrier"]


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


def barrier() -> None:
    if is_distributed():
        tdist.barrier()
