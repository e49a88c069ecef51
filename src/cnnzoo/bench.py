"""Speed, measured side by side: inference and training-step throughput and peak memory.

``benchmark(name, ...)`` measures one registered model the way cnnzoo runs it ("cnnzoo default":
channels_last, the autocast precision of ``--precision``, BatchNorm folded into the convolutions for
inference) and, with ``vs="torchvision"``, the identical architecture from torchvision twice over:

* **as-is**: what a torchvision user gets without doing anything: fp32, NCHW, BatchNorm unfolded;
* **same settings**: torchvision's module given every setting cnnzoo applies (memory format,
  precision, BatchNorm folding), so that ratio isolates the model code itself.

How the numbers are taken, so they can be trusted:

* every variant is built in the same process, on the same input batch and targets;
* each gets its warm-up first (never timed); then the timed runs alternate between
  the variants, round after round, the order reversed every other round (ABBA) so a slow drift of the
  machine (heat, a neighbour) falls on everyone alike;
* a timed run is ``steps`` consecutive iterations between two clock reads (CUDA synchronised at both
  ends); the reported images/s is the median over ``repeats`` runs, the ratio is ours / theirs of the
  medians (above 1: cnnzoo is faster), and every sample is kept in the JSON;
* inference is ``model.eval()`` under ``torch.no_grad()``; a training step is forward, the trainer's
  :func:`~cnnzoo.train.losses.classification_loss` (auxiliary heads weighted by our model's ``aux_weight``, 0.3
  for GoogLeNet, on both sides alike), ``zero_grad``, backward and an SGD step with momentum and weight decay.

Arithmetic rate: each variant's images/s times the FLOPs of one image (2 x the multiply-adds that
:func:`cnnzoo.analysis.flops.count_macs` counts with ``FlopCounterMode``: convolutions and linear layers; x 3 for
a training step: forward, and backward's two products of the same size), in GFLOP/s, and its share of the
device's **GEMM peak**: the best rate of a large square matrix product (:data:`PEAK_GEMM` x :data:`PEAK_GEMM`)
in the variant's precision, measured in the same process (:func:`gemm_peak`, once per device and dtype). The
peak is measured, not read off a data sheet: in a virtual machine the clock and the vector units a CPU
model name implies are not what the guest gets, and the library's best product is the ceiling a network's
convolutions can reach. ``peak_gflops`` gives the peak instead (a data-sheet figure, say).

Peak memory is measured after the timing, in a separate pass of two iterations per variant, each
built afresh (so one-time library set-up, done by then, is charged to no variant). It covers what the run
holds: weights, input, activations, gradients, optimizer state and workspace. On CUDA it is
``torch.cuda.max_memory_allocated()`` above what was allocated before the model was built. On the CPU
it is the process's peak resident set size (``VmHWM`` in ``/proc/self/status``, reset through
``/proc/self/clear_refs`` once the model is built, after freed heap memory has been returned to the
system with ``malloc_trim``) above the resident size before the model was built: page-granular and
including the allocator's overheads, so read it to tens of MiB, not to the byte. Where ``/proc`` cannot
be used (not Linux) it is ``None``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import statistics
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch import nn

from .analysis.flops import count_macs
from .analysis.flops import human as human_flops
from .builder import create_model, model_info, plan_input
from .choices import BENCH_PRECISIONS
from .errors import UserError
from .io import Progress
from .registry import list_models
from .runtime import (autocast, bf16_emulated, cpu_model_name, precision_name, precision_note, resolve_device,
                      resolve_precision, use_matmul_convs)
from .train.losses import classification_loss
from .train.optim import fused_kwargs

__all__ = ["Settings", "benchmark", "format_results", "torchvision_twins", "MEMORY_NOTE", "gemm_peak", "PEAK_GEMM"]

MODES = ("infer", "train")
MEMORY_STEPS = 2  # iterations of the memory pass: the first creates the optimizer state, the second runs with it
TRAIN_FLOP_FACTOR = 3  # a training step's FLOPs per forward FLOP: forward, input gradient, weight gradient
PEAK_GEMM = 2048  # side of the square product whose best rate is the peak (large enough to be compute-bound)
PEAK_REPEATS = 5  # timed products; the fastest gives the peak
_PEAKS: Dict[Tuple[str, str], float] = {}  # gemm_peak's measurements, per (device, dtype), for this process

MEMORY_NOTE = {
    "cuda": "peak torch.cuda.max_memory_allocated above the allocation before the model was built",
    "cpu": "peak resident set size (VmHWM) above the resident size before the model was built",
}


# ----------------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    """How a model is run: memory format, autocast dtype, BatchNorm folding (inference only)."""

    channels_last: bool = False
    amp_dtype: Optional[torch.dtype] = None
    fold_bn: bool = False
    fused_sgd: bool = False  # the training step's SGD update fused (train.optim.fused_kwargs), as the trainer's
    matmul_conv: bool = False  # small-output convolutions as matrix products (runtime.use_matmul_convs), as the trainer's

    def for_mode(self, mode: str) -> "Settings":
        # Folding is an inference transform: a training step runs the BatchNorms either way; no optimiser in inference.
        return replace(self, fused_sgd=False) if mode == "infer" else replace(self, fold_bn=False)

    @property
    def precision(self) -> str:
        return precision_name(self.amp_dtype)

    def describe(self) -> str:
        parts = [self.precision, "channels_last" if self.channels_last else "NCHW"]
        if self.fold_bn:
            parts.append("BN folded (inference)")
        if self.fused_sgd:
            parts.append("fused SGD")
        if self.matmul_conv:
            parts.append("small convs as matmul")
        return ", ".join(parts)


AS_IS = Settings()  # what torchvision's builder gives: fp32, NCHW, BatchNorm unfolded


def _fold_fn() -> Optional[Callable]:
    """``cnnzoo.fuse.fold_batchnorm_report`` when that module is there, else None (folding is skipped)."""
    try:
        from .fuse import fold_batchnorm_report
    except ImportError:
        return None
    return fold_batchnorm_report


def torchvision_twins() -> List[str]:
    """The registered names that have a torchvision builder with the same architecture."""
    return [n for n in list_models() if model_info(n).torchvision]


# ----------------------------------------------------------------------------------------- memory


_LIBC = None


def _malloc_trim() -> None:
    """Give freed heap memory back to the system, so the next resident-size baseline is clean (glibc only)."""
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _LIBC.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)


def _proc_status_kib(field: str) -> Optional[int]:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


class PeakMemory:
    """Peak memory of what is built and run between :meth:`start` and :meth:`peak_mib`.

    ``start()`` before building (the baseline), ``reset()`` once built (forget the building's transients),
    run, then ``peak_mib()``.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.base = 0
        self.ok = True

    def start(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            self.base = torch.cuda.memory_allocated(self.device)
            return
        _malloc_trim()
        rss = _proc_status_kib("VmRSS")
        self.ok = rss is not None
        self.base = (rss or 0) * 1024

    def reset(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        _malloc_trim()
        try:  # "5" resets the peak resident size (Linux >= 4.0, see proc(5))
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            self.ok = False

    def peak_mib(self) -> Optional[float]:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return max(0, torch.cuda.max_memory_allocated(self.device) - self.base) / 2 ** 20
        hwm = _proc_status_kib("VmHWM")
        if not self.ok or hwm is None:
            return None
        return max(0, hwm * 1024 - self.base) / 2 ** 20


# ----------------------------------------------------------------------------------------- one variant


class _Run:
    """One variant in one mode: its model, its copy of the batch, and one iteration."""

    def __init__(self, key: str, build: Callable[[], nn.Module], settings: Settings, mode: str,
                 x: torch.Tensor, y: torch.Tensor, device: torch.device, aux_weight: float) -> None:
        self.key, self.settings, self.mode, self.device, self.aux_weight = key, settings, mode, device, aux_weight
        self.folded = 0
        model = build().to(device)
        if mode == "infer":
            model.eval()
            fold = _fold_fn() if settings.fold_bn else None
            if fold is not None:
                model, report = fold(model)
                self.folded = report.folded
        else:
            model.train()
        fmt = torch.channels_last if settings.channels_last else torch.contiguous_format
        self.model = model.to(memory_format=fmt)
        if settings.matmul_conv:
            use_matmul_convs(self.model)
        self.x = x.to(device).contiguous(memory_format=fmt)
        self.y = y.to(device)
        self.opt = None
        if mode == "train":
            params = list(self.model.parameters())
            fused = fused_kwargs(params) if settings.fused_sgd else {}
            self.opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9, weight_decay=5e-4, **fused)

    def step(self) -> None:
        if self.mode == "infer":
            with torch.no_grad(), autocast(self.device, self.settings.amp_dtype):
                self.model(self.x)
            return
        with autocast(self.device, self.settings.amp_dtype):
            loss, _ = classification_loss(self.model(self.x), self.y, aux_weight=self.aux_weight)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def timed(self, steps: int) -> float:
        """Seconds for ``steps`` consecutive iterations."""
        self._sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            self.step()
        self._sync()
        return time.perf_counter() - t0


# ----------------------------------------------------------------------------------------- the measurement


def _torchvision_builder(name: str, num_classes: int) -> Tuple[str, Callable[[], nn.Module]]:
    tv_name = model_info(name).torchvision
    if tv_name is None:
        twins = torchvision_twins()
        raise UserError(f"{name} has no torchvision twin (model_info({name!r}).torchvision is None), so --vs "
                        f"torchvision cannot compare it; models that have one: {', '.join(twins)}")
    try:
        import torchvision
    except ImportError:
        raise UserError("--vs torchvision needs torchvision installed (pip install torchvision)") from None

    def build() -> nn.Module:
        with warnings.catch_warnings():  # GoogLeNet/Inception warn about their init defaults
            warnings.simplefilter("ignore")
            return torchvision.models.get_model(tv_name, weights=None, num_classes=num_classes)

    return tv_name, build


def _env(device: torch.device) -> Dict[str, Any]:
    env: Dict[str, Any] = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    try:
        import torchvision

        env["torchvision"] = torchvision.__version__
    except ImportError:
        pass
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    elif (cpu := cpu_model_name()) is not None:
        env["cpu"] = cpu
    return env


def gemm_peak(device: torch.device, dtype: Optional[torch.dtype]) -> float:
    """GFLOP/s of the fastest of :data:`PEAK_REPEATS` ``PEAK_GEMM`` x ``PEAK_GEMM`` matrix products in ``dtype``
    (``None``: fp32) on ``device``, after one untimed product; measured once per process and (device, dtype).

    bf16 on a CPU without native bf16 (AVX512-BF16 or AMX) is fp32's product: PyTorch emulates bf16 there on the
    fp32 units (a 2048 x 2048 bf16 product took about a minute on a Zen 3, 0.3 GFLOP/s, against 185 in fp32)."""
    dtype = dtype or torch.float32
    if dtype == torch.bfloat16 and bf16_emulated(device):
        dtype = torch.float32  # emulated bf16 computes on the fp32 units: their product is the ceiling
    key = (str(device), str(dtype))
    if key not in _PEAKS:
        g = torch.Generator().manual_seed(0)
        a, b = (torch.randn(PEAK_GEMM, PEAK_GEMM, generator=g).to(device, dtype) for _ in range(2))
        best = float("inf")
        for i in range(PEAK_REPEATS + 1):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            torch.mm(a, b)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            if i:  # the first product warms the library up
                best = min(best, time.perf_counter() - t0)
        _PEAKS[key] = 2 * PEAK_GEMM ** 3 / best / 1e9
    return _PEAKS[key]


def _median(xs: List[float]) -> Optional[float]:
    return float(statistics.median(xs)) if xs else None


def benchmark(name: str, *, batch: int = 64, input_size: Tuple[int, int, int] = (3, 64, 64),
              device: str = "cpu", precision: str = "auto", channels_last: bool = True, fold_bn: bool = True,
              vs: Optional[str] = None, repeats: int = 5, steps: int = 10, warmup: int = 3,
              num_classes: int = 1000, modes: Tuple[str, ...] = MODES, seed: int = 0,
              log: Optional[Callable[[str], None]] = None, progress: str = "none",
              peak_gflops: Optional[float] = None, matmul_conv: bool = True) -> Dict[str, Any]:
    """Measure model ``name``; with ``vs="torchvision"`` also torchvision's twin, as-is and with our settings.

    Args:
        name: a registry name.
        batch: images per iteration.
        input_size: ``(C, H, W)``; square inputs (without ``vs``) are planned as the trainer plans them
            (:func:`cnnzoo.builder.plan_input`: small images build a model's small-input option).
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
        precision: ``auto`` (:func:`cnnzoo.runtime.resolve_precision`), ``fp32`` or ``bf16``.
        channels_last: run our model (and the "same settings" baseline) in channels_last.
        fold_bn: fold BatchNorm into the convolutions for inference (where ``cnnzoo.fuse`` is available).
        vs: ``None`` or ``"torchvision"``.
        repeats: timed runs per variant and mode; the median is reported.
        steps: iterations per timed run.
        warmup: untimed iterations of each variant before its timed runs.
        num_classes: classifier outputs (1000: torchvision's default).
        modes: ``("infer", "train")`` or either one.
        seed: seeds the weights, the input batch and the targets.
        log: progress messages.
        progress: a bar over the timed runs (:data:`cnnzoo.choices.PROGRESS`; ``none``, the default, for library
            callers; ``auto`` draws it only on a terminal, on stderr). With a bar the per-round messages are left
            out of ``log``: the bar counts the rounds.
        matmul_conv: on the CPU, run our model's (and "same settings"') convolutions with few output positions as
            matrix products (:func:`cnnzoo.runtime.use_matmul_convs`, the trainer's ``train.matmul_conv``).
        peak_gflops: the device's peak for the shares (``*_peak_share``); ``None`` measures it
            (:func:`gemm_peak`) in each variant's precision.

    Returns:
        A flat dict: the settings, ``infer_img_s``/``train_img_s``/``*_peak_mib`` of cnnzoo's model, the
        samples, ``flops`` (one image's forward FLOPs), ``infer_gflops``/``train_gflops`` and their
        ``*_peak_share`` of ``peak_gflops`` (the peak used, per precision), the environment, and with ``vs`` a
        ``baselines`` dict (``torchvision_as_is``, ``torchvision_same``) holding the same numbers plus
        ``infer_ratio``/``train_ratio`` (ours / theirs).
    """
    say = log or (lambda msg: None)
    for what, v, lo in (("batch", batch, 1), ("repeats", repeats, 1), ("steps", steps, 1), ("warmup", warmup, 0),
                        ("num_classes", num_classes, 1)):
        if v < lo:
            raise UserError(f"--{what.replace('_', '-')} must be at least {lo}, got {v}")
    if precision not in BENCH_PRECISIONS:
        raise UserError(f"--precision must be one of {', '.join(BENCH_PRECISIONS)}, got {precision!r}")
    if peak_gflops is not None and not peak_gflops > 0:
        raise UserError(f"--peak-gflops must be above 0, got {peak_gflops}")
    if vs not in (None, "torchvision"):
        raise UserError(f"--vs takes 'torchvision', got {vs!r}")
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise UserError(f"modes must be among {', '.join(MODES)}, got {', '.join(modes) or 'none'}")
    info = model_info(name)
    dev = resolve_device(device)
    c, h, w = input_size

    kwargs: Dict[str, Any] = {}
    notes: List[str] = []
    tv_name = tv_build = None
    if vs == "torchvision":
        tv_name, tv_build = _torchvision_builder(name, num_classes)
        if c != 3:
            raise UserError(f"--vs torchvision needs 3-channel input (torchvision's {tv_name} takes RGB), "
                            f"got {c}x{h}x{w}")
        if info.small_input.has_option and info.small_input.is_small(max(h, w), info.input_size[-1]):
            notes.append(f"{name} built without its small-input option: the same architecture as torchvision's")
    elif h == w:
        plan = plan_input(name, h)
        kwargs = plan.kwargs
        if plan.image_size != h:
            h = w = plan.image_size
        if plan.note:
            notes.append(plan.note)

    def build_ours() -> nn.Module:
        return create_model(name, num_classes=num_classes, in_chans=c, **kwargs)

    with torch.device("meta"):  # no memory, no init: the precision choice and the parameter checks
        meta_model = build_ours()
        amp = resolve_precision(precision, dev, meta_model)
        emulated = precision_note(precision, dev)
        if emulated:
            notes.append(emulated)
        aux_weight = float(getattr(meta_model, "aux_weight", 0.0))  # the trainer's weight, on both sides alike
        params = sum(p.numel() for p in meta_model.parameters() if p.requires_grad)
        flops = 2 * count_macs(meta_model, (1, c, h, w))  # one image's forward; torchvision's twin is the same network
        if tv_build is not None:
            tv_params = sum(p.numel() for p in tv_build().parameters() if p.requires_grad)
            if tv_params != params:
                raise UserError(f"{name} ({params:,} parameters) and torchvision's {tv_name} ({tv_params:,}) differ: "
                                "the comparison would not be like for like")
    if amp == torch.bfloat16 and dev.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UserError(f"{torch.cuda.get_device_name(dev)} has no bf16; use --precision fp32")
    ours = Settings(channels_last=channels_last, amp_dtype=amp, fold_bn=fold_bn and "infer" in modes,
                    fused_sgd="train" in modes, matmul_conv=matmul_conv and dev.type == "cpu")
    if ours.fold_bn and _fold_fn() is None:
        ours = replace(ours, fold_bn=False)
        notes.append("BatchNorm folding skipped: cnnzoo.fuse is not available")

    variants: Dict[str, Tuple[Callable[[], nn.Module], Settings]] = {"ours": (build_ours, ours)}
    if tv_build is not None:
        variants["torchvision_as_is"] = (tv_build, AS_IS)
        variants["torchvision_same"] = (tv_build, ours)

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, c, h, w, generator=g)
    y = torch.randint(0, num_classes, (batch,), generator=g)

    old_bench = torch.backends.cudnn.benchmark
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # the trainer's choice, given to every variant alike
    samples: Dict[str, Dict[str, List[float]]] = {k: {m: [] for m in MODES} for k in variants}
    peaks: Dict[str, Dict[str, Optional[float]]] = {k: {m: None for m in MODES} for k in variants}
    folded = 0
    try:
        for mode in modes:
            # A variant whose settings come to the same as another's in this mode is measured once.
            unique: Dict[str, Settings] = {}
            alias: Dict[str, str] = {}
            for key, (build, settings) in variants.items():
                eff = settings.for_mode(mode)
                twin = next((k for k, s in unique.items() if variants[k][0] is build and s == eff), None)
                if twin is None:
                    unique[key] = eff
                else:
                    alias[key] = twin
            runs: List[_Run] = []
            for key, eff in unique.items():
                say(f"{name}: {mode}: building and warming up {key} ({eff.describe()})")
                torch.manual_seed(seed)
                runs.append(_Run(key, variants[key][0], eff, mode, x, y, dev, aux_weight))
                for _ in range(warmup):
                    runs[-1].step()
                if key == "ours" and mode == "infer":
                    folded = runs[-1].folded
            bar = Progress(progress, unit="run")
            bar.start(repeats * len(runs), f"{name}: {mode}")
            try:
                for r in range(repeats):
                    if bar.bar is None:
                        say(f"{name}: {mode}: timed round {r + 1}/{repeats}")
                    for run in (runs if r % 2 == 0 else runs[::-1]):
                        samples[run.key][mode].append(batch * steps / run.timed(steps))
                        bar.update()
            finally:
                bar.close()
            run = None  # every timed model freed before the memory pass's baselines
            runs.clear()
            # Memory last, each variant built afresh: one-time library set-up (kernel code, thread pools,
            # primitive caches) happened during the timing, so it is charged to no one.
            for key, eff in unique.items():
                mem = PeakMemory(dev)
                mem.start()
                torch.manual_seed(seed)
                run = _Run(key, variants[key][0], eff, mode, x, y, dev, aux_weight)
                mem.reset()
                for _ in range(MEMORY_STEPS):
                    run.step()
                peaks[key][mode] = mem.peak_mib()
                del run
            for key, twin in alias.items():
                samples[key][mode] = samples[twin][mode]
                peaks[key][mode] = peaks[twin][mode]
            gc.collect()
    finally:
        torch.backends.cudnn.benchmark = old_bench

    peak_of: Dict[str, float] = {}  # precision -> the peak the shares divide by

    def peak(settings: Settings) -> float:
        if settings.precision not in peak_of:
            peak_of[settings.precision] = peak_gflops or gemm_peak(dev, settings.amp_dtype)
        return peak_of[settings.precision]

    def numbers(key: str) -> Dict[str, Any]:
        d: Dict[str, Any] = {}
        for m in MODES:
            img_s = d[f"{m}_img_s"] = _median(samples[key][m])
            d[f"{m}_peak_mib"] = peaks[key][m]
            gflops = img_s * flops * (TRAIN_FLOP_FACTOR if m == "train" else 1) / 1e9 if img_s else None
            d[f"{m}_gflops"] = gflops
            d[f"{m}_peak_share"] = gflops / peak(variants[key][1]) if gflops else None
        d["samples"] = {m: samples[key][m] for m in modes}
        return d

    result: Dict[str, Any] = {
        "model": name, "input": f"{c}x{h}x{w}", "batch": batch, "num_classes": num_classes, "device": str(dev),
        "kwargs": kwargs, "params": params, "settings": ours.describe(), "precision": ours.precision,
        "channels_last": ours.channels_last, "bn_folded": folded if ours.fold_bn else 0,
        "flops": flops, **numbers("ours"),
        "repeats": repeats, "steps": steps, "warmup": warmup, "memory": MEMORY_NOTE[dev.type],
        "note": "; ".join(notes), "env": _env(dev),
    }
    if tv_build is not None:
        base: Dict[str, Any] = {}
        for key, label in (("torchvision_as_is", "as-is"), ("torchvision_same", "same settings")):
            d = {"builder": tv_name, "label": label, "settings": variants[key][1].describe(), **numbers(key)}
            for m in MODES:
                ours_v, theirs = result[f"{m}_img_s"], d[f"{m}_img_s"]
                d[f"{m}_ratio"] = ours_v / theirs if ours_v and theirs else None
            base[key] = d
        result["baselines"] = base
    result["peak_gflops"] = peak_of
    result["peak"] = "given (--peak-gflops)" if peak_gflops else f"measured: best {PEAK_GEMM}x{PEAK_GEMM} matmul"
    if not peak_gflops and "bf16" in peak_of and bf16_emulated(dev):
        result["peak"] += " (bf16's is fp32's: this CPU emulates bf16 on its fp32 units)"
    return result


# ----------------------------------------------------------------------------------------- output


def _num(v: Optional[float], fmt: str = ",.0f") -> str:
    return "-" if v is None else format(v, fmt)


def _ratio(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:.2f}x"


def _rows(r: Dict[str, Any]) -> List[Dict[str, Any]]:
    """One row per variant: label, settings, numbers, ratios (ours / this)."""
    def row(label: str, d: Dict[str, Any], ratios: bool) -> Dict[str, Any]:
        out = dict(label=label, settings=d["settings"])
        for m in MODES:
            out.update({m: d[f"{m}_img_s"], f"{m}_mib": d[f"{m}_peak_mib"], f"{m}_gflops": d.get(f"{m}_gflops"),
                        f"{m}_share": d.get(f"{m}_peak_share"), f"{m}_ratio": d[f"{m}_ratio"] if ratios else None})
        return out

    return [row("cnnzoo", r, False)] + [row(f"torchvision {b['label']}", b, True)
                                        for b in r.get("baselines", {}).values()]


def _share(v: Optional[float]) -> str:
    return "-" if v is None else f"{100 * v:.0f}%"


def describe_run(r: Dict[str, Any]) -> str:
    """One line: where and how the numbers were taken."""
    env = r["env"]
    where = env.get("gpu") or env.get("cpu") or r["device"]
    return (f"{r['device']} ({where}; {env['threads']} threads), torch {env['torch']}"
            f"{', torchvision ' + env['torchvision'] if 'torchvision' in env else ''}; median of {r['repeats']} "
            f"runs x {r['steps']} steps after {r['warmup']} warm-up, variants alternated; memory: {r['memory']}; "
            f"GFLOP/s: FLOPs counted x img/s (training x {TRAIN_FLOP_FACTOR}), peak {r['peak']} ("
            + ", ".join(f"{k} {v:,.0f} GFLOP/s" for k, v in r["peak_gflops"].items()) + ")")


def _text_row(vals: List[str], widths: List[int]) -> str:
    """Label and settings left-aligned, numbers right-aligned."""
    return "  ".join(v.ljust(wd) if i < 2 else v.rjust(wd) for i, (v, wd) in enumerate(zip(vals, widths))).rstrip()


def format_results(results: List[Dict[str, Any]], fmt: str = "text") -> str:
    """``text``, ``markdown`` (a table for benchmarks/RESULTS.md) or ``json`` (a list, one object per model)."""
    import json

    if fmt == "json":
        return json.dumps(results, indent=2)
    if not results:
        return ""
    if fmt == "markdown":
        lines = [describe_run(results[0]) + ".", "",
                 "| model | input | batch | variant | settings | infer img/s | ours / this | train img/s "
                 "| ours / this | train GFLOP/s | of peak | infer peak MiB | train peak MiB |",
                 "|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in results:
            for row in _rows(r):
                lines.append(f"| `{r['model']}` | {r['input']} | {r['batch']} | {row['label']} | {row['settings']} "
                             f"| {_num(row['infer'])} | {_ratio(row['infer_ratio'])} | {_num(row['train'])} "
                             f"| {_ratio(row['train_ratio'])} | {_num(row['train_gflops'], ',.1f')} "
                             f"| {_share(row['train_share'])} | {_num(row['infer_mib'], ',.1f')} "
                             f"| {_num(row['train_mib'], ',.1f')} |")
        notes = [f"`{r['model']}`: {r['note']}" for r in results if r["note"]]
        if notes:
            lines += [""] + [f"- {n}" for n in notes]
        return "\n".join(lines)
    out = []
    head = ["variant", "settings", "infer img/s", "ours/this", "train img/s", "ours/this", "train GFLOP/s",
            "of peak", "infer MiB", "train MiB"]
    for r in results:
        out.append(f"{r['model']}  {r['input']}  batch {r['batch']}  {r['params']:,} params  "
                   f"{human_flops(r['flops'])}FLOP/image{'  ' + str(r['kwargs']) if r['kwargs'] else ''}")
        cells = [[row["label"], row["settings"], _num(row["infer"]), _ratio(row["infer_ratio"]), _num(row["train"]),
                  _ratio(row["train_ratio"]), _num(row["train_gflops"], ",.1f"), _share(row["train_share"]),
                  _num(row["infer_mib"], ",.1f"), _num(row["train_mib"], ",.1f")]
                 for row in _rows(r)]
        widths = [max(len(hd), *(len(cl[i]) for cl in cells)) for i, hd in enumerate(head)]
        out.append("  " + _text_row(head, widths))
        out += ["  " + _text_row(cl, widths) for cl in cells]
        if r["note"]:
            out.append(f"  note: {r['note']}")
        out.append("")
    out.append(describe_run(results[0]))
    return "\n".join(out)
