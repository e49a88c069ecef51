"""Where and in what precision a model runs: the device and precision policy, and the one ``autocast``.

Below the trainer, the evaluation, the benchmark and the commands, which all ask this module instead of
deciding themselves. :data:`PRECISIONS` is the one list of precision choices (config validation and every
``--precision`` flag read it).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from .choices import PRECISIONS
from .errors import UserError

__all__ = ["PRECISIONS", "resolve_device", "resolve_precision", "precision_name", "autocast", "cpu_has_native_bf16",
           "has_depthwise_conv"]



def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else the CPU; an explicit CUDA device must exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} asked for but CUDA is not available; use --device cpu")
    return dev


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: bf16 matrix work runs natively (and fast) on this CPU."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def has_depthwise_conv(model: nn.Module) -> bool:
    """Whether ``model`` has a depthwise convolution (``groups == in_channels > 1``)."""
    return any(isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels for m in model.modules())


def resolve_precision(precision: str, device: torch.device, model: Optional[nn.Module] = None) -> Optional[torch.dtype]:
    """The autocast dtype (None for fp32).

    ``auto``: bf16 on a GPU that has it (else fp16); on the CPU, bf16 where the CPU has native bf16
    (AVX512-BF16 or AMX) and ``model`` has no depthwise convolutions, fp32 otherwise. Measured on an
    AVX512-BF16 EPYC (benchmarks/RESULTS.md): bf16 speeds the training step of every network without
    depthwise convolutions 1.26-2.2x; with them it is mixed (EfficientNet-B0 0.87x, MobileNet v2 slower
    at 64 px but 1.49x faster at 28 px), so those stay in fp32. Without a model, the CPU gets fp32.
    """
    if precision not in PRECISIONS:
        raise UserError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        if device.type != "cuda":
            raise UserError("fp16 training needs a CUDA device; on the CPU use --precision bf16")
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if model is not None and cpu_has_native_bf16() and not has_depthwise_conv(model):
        return torch.bfloat16
    return None


def precision_name(dtype: Optional[torch.dtype]) -> str:
    """``fp32``, ``bf16`` or ``fp16``: how results, headers and benchmarks name an autocast dtype."""
    if dtype is None or dtype == torch.float32:
        return "fp32"
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, str(dtype).replace("torch.", ""))


def autocast(device: torch.device, dtype: Optional[torch.dtype]):
    """``torch.autocast`` for a reduced dtype, or nothing for fp32."""
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
