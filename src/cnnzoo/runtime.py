"""Where and in what precision a model runs: the device and precision policy, and the one ``autocast``.

Below the trainer, the evaluation, the benchmark and the commands, which all ask this module instead of
deciding themselves. :data:`PRECISIONS` is the one list of precision choices (config validation and every
``--precision`` flag read it).
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .choices import PRECISIONS
from .errors import UserError

__all__ = ["PRECISIONS", "resolve_device", "resolve_precision", "precision_note", "precision_name", "autocast",
           "cpu_has_native_bf16", "bf16_emulated", "cpu_has_amx", "cpu_model_name", "has_depthwise_conv", "MATMUL_CONV_MAX_HW",
           "MatmulConv2d", "use_matmul_convs"]


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


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> str:
    """/proc/cpuinfo, read once a process ("" where there is none)."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: bf16 matrix work runs natively (and fast) on this CPU."""
    flags = _cpuinfo()
    return " avx512_bf16" in flags or " amx_bf16" in flags


def bf16_emulated(device: torch.device) -> bool:
    """bf16 on ``device`` is emulated: a CPU without native bf16, where PyTorch computes it on the fp32 units."""
    return device.type == "cpu" and not cpu_has_native_bf16()


def cpu_has_amx() -> bool:
    """AMX (Intel's tile matrix unit, Sapphire Rapids and later): bf16 matrix products run several times faster."""
    return " amx_bf16" in _cpuinfo()


def cpu_model_name() -> Optional[str]:
    """The CPU's model name from /proc/cpuinfo ("AMD EPYC ..."), or None where it does not say."""
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return None


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


def precision_note(precision: str, device: torch.device) -> str:
    """A line for bf16 asked for on a CPU without native bf16, where PyTorch emulates its matrix work ('' else).

    Measured on a 2-core AMD EPYC Zen 3 (AVX2, no AVX-512; benchmarks/RESULTS.md): the training steps of lenet5,
    airbench_cpu, resnet20, vgg11_bn and mobilenet_v2 ran 0.06-0.15x as fast in bf16 as in fp32, which ``auto``
    picks there.
    """
    if precision == "bf16" and bf16_emulated(device):
        return ("precision bf16: this CPU has no native bf16 (AVX512-BF16 or AMX) and emulates it, 7-17x slower "
                "than fp32 in measured training steps; precision auto picks fp32 here")
    return ""


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


# The CPU's convolutions with few output positions as one matrix product. oneDNN's convolution kernels block
# over the spatial positions and lose most of their speed when a feature map has only a handful: on the 2-core
# Xeon (AMX), a 512 -> 512 3x3 convolution on 64 x 2 x 2 maps takes 24.5 ms forward + backward in bf16 and 37 ms
# in fp32, as patches @ weight 3.8 and 11.5 ms (benchmarks/small_conv.py, benchmarks/RESULTS.md). The matrix
# product wins up to these output sizes (H_out x W_out) per compute dtype and loses beyond them. Where bf16
# products run on AMX they win up to 4 x 4 maps (1.3-1.8x there); on AVX512-BF16 alone (the Zen 4) they win at
# 2 x 2 (1.6-2.9x) and lose at 4 x 4 (0.70x for 3x3 kernels), so bf16 gets 16 positions with AMX and 4 without.
MATMUL_CONV_MAX_HW_BY_CPU = {"amx": {torch.bfloat16: 16, torch.float32: 4},
                             "no_amx": {torch.bfloat16: 4, torch.float32: 4}}
MATMUL_CONV_MAX_HW = MATMUL_CONV_MAX_HW_BY_CPU["amx" if cpu_has_amx() else "no_amx"]


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    if x.dtype == torch.float32 and torch.is_autocast_enabled("cpu"):
        return torch.get_autocast_dtype("cpu")
    return x.dtype


def conv2d_as_matmul(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                     stride: tuple, padding: tuple) -> torch.Tensor:
    """``F.conv2d`` (groups 1, dilation 1, zero padding) as one matrix product of the input's patches.

    The patches are gathered in (kernel row, kernel column, channel) order from the NHWC view, which a
    channels_last input already is and a channels_last weight matches, so neither needs a transpose; the
    result is channels_last (an NCHW input gets an NCHW result). Under CPU autocast the product runs in the
    autocast dtype, as the convolution would.
    """
    dtype = _compute_dtype(x)
    x, weight = x.to(dtype), weight.to(dtype)
    n, c, h, w = x.shape
    co, _, kh, kw = weight.shape
    (sh, sw), (ph, pw) = stride, padding
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    xh = x.permute(0, 2, 3, 1)
    if ph or pw:
        xh = F.pad(xh, (0, 0, pw, pw, ph, ph))
    views = [xh[:, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw, :] for i in range(kh) for j in range(kw)]
    cols = (views[0] if len(views) == 1 else torch.cat(views, dim=3)).reshape(n * ho * wo, kh * kw * c)
    wm = weight.permute(0, 2, 3, 1).reshape(co, kh * kw * c)
    out = cols @ wm.t() if bias is None else torch.addmm(bias.to(dtype), cols, wm.t())
    out = out.view(n, ho, wo, co).permute(0, 3, 1, 2)
    if x.is_contiguous() and not x.is_contiguous(memory_format=torch.channels_last):
        out = out.contiguous()
    return out


class MatmulConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` that computes on the CPU as :func:`conv2d_as_matmul` when its output has at most
    :data:`MATMUL_CONV_MAX_HW` positions for the compute dtype, and as ``nn.Conv2d`` otherwise.

    Same parameters, state dict and printed name as ``nn.Conv2d`` (``isinstance`` holds); made by
    :func:`use_matmul_convs`, never built directly by a model.
    """

    def _get_name(self) -> str:
        return "Conv2d"

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
        if input.device.type == "cpu" and input.dim() == 4:
            (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
            ho = (input.shape[2] + 2 * ph - kh) // sh + 1
            wo = (input.shape[3] + 2 * pw - kw) // sw + 1
            if ho * wo <= MATMUL_CONV_MAX_HW.get(_compute_dtype(input), 0):
                return conv2d_as_matmul(input, weight, bias, self.stride, self.padding)
        return super()._conv_forward(input, weight, bias)


def _matmul_eligible(m: nn.Module) -> bool:
    return (type(m) is nn.Conv2d and m.groups == 1 and m.dilation == (1, 1) and m.padding_mode == "zeros"
            and not isinstance(m.padding, str))


def use_matmul_convs(model: nn.Module) -> int:
    """Turn ``model``'s plain convolutions (groups 1, dilation 1, zero padding) into :class:`MatmulConv2d`, in
    place; returns how many. The CPU policy the trainer (``train.matmul_conv``) and the benchmark apply; on other
    devices the modules behave as ``nn.Conv2d``. Weights, state dict and outputs stay the same (to rounding).
    """
    count = 0
    for m in model.modules():
        if _matmul_eligible(m):
            m.__class__ = MatmulConv2d
            count += 1
    return count
