"""The training loop: one loop, with AMP, channels_last, EMA, auxiliary heads, DDP as options.

``fit(cfg)`` trains ``cfg.model`` on ``cfg.data`` into a run directory and returns the results.
The test split is touched once, after training; every per-epoch decision uses the validation
split carved out of train.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
import yaml
from torch import nn

from ..errors import UserError
from ..models import AuxOutputs
from ..registry import create_model, model_info
from . import distributed as dist
from .checkpoint import atomic_write, latest_checkpoint, load_state, load_weights, save_checkpoint, save_weights
from .config import Config, config_from_dict, config_to_dict, resume_conflicts, validate
from .evaluate import autocast, evaluate
from .optim import build_optimizer, lr_factor, param_groups, set_lr

__all__ = ["fit", "plan_input", "resolve_device", "resolve_precision", "has_depthwise_conv", "TrainingDiverged", "Interrupted"]

METRIC_COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "img_per_s", "seconds"]


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


class Interrupted(Exception):
    """SIGINT or SIGTERM: a resumable checkpoint was written."""

    def __init__(self, signum: int, run_dir: Path) -> None:
        self.signum, self.run_dir = signum, run_dir
        name = signal.Signals(signum).name
        super().__init__(f"{name} received: checkpoint saved; resume with `cnnzoo train --resume {run_dir}`")


# ----------------------------------------------------------------------------------------- set-up


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
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


@dataclass
class InputPlan:
    kwargs: Dict[str, Any]
    image_size: int
    note: str


def plan_input(name: str, data_size: int, kwargs: Optional[Dict[str, Any]] = None,
               image_size: Optional[int] = None) -> InputPlan:
    """How to feed ``data_size``-pixel images to model ``name``, as its ``model_info`` asks.

    Small images (<= 64 px) switch on a model's small-input option unless the caller set it;
    models that need a large input get the resize they declare; anything still below the model's
    minimum is resized up to its default input size.
    """
    info = model_info(name)
    kwargs = dict(kwargs or {})
    notes = []
    si = info.small_input
    if image_size is None and data_size <= 64 and data_size < info.input_size[-1]:
        if si.mode == "option" and not any(k in kwargs for k in si.kwargs):
            kwargs.update(si.kwargs)
            notes.append(f"small images: building {name} with " + ", ".join(f"{k}={v}" for k, v in si.kwargs.items()))
        elif si.mode == "resize":
            image_size = si.size
            notes.append(f"{name} needs a large input: resizing {data_size}px images to {si.size}px")
    size = image_size or data_size
    with torch.device("meta"):
        m = create_model(name, num_classes=10, in_chans=info.input_size[0], **kwargs)
    m.model_name = name
    min_size = int(m.min_input_size)
    if image_size is not None:  # the user's explicit choice: the model's own error if it cannot take it
        m.check_input(torch.empty(1, info.input_size[0], size, size, device="meta"))
    if size < min_size:
        new = info.input_size[-1] if info.input_size[-1] >= min_size else min_size
        if si.mode == "option" and si.kwargs.items() <= kwargs.items():
            new = max(min_size, 32)
        notes.append(f"{size}px is below {name}'s minimum of {min_size}px: resizing to {new}px")
        size = new
    return InputPlan(kwargs, int(size), "; ".join(notes))


def take_per_class(data, n: int, seed: int):
    """The first ``n`` images of each class in a seeded shuffle: a small labelled set for few-shot runs."""
    from ..data import FolderData, ImageData

    labels = data.labels if isinstance(data, ImageData) else torch.tensor([c for _, c in data.samples])
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed + 7919))
    keep, count = [], {}
    for i in perm.tolist():
        c = int(labels[i])
        if count.get(c, 0) < n:
            count[c] = count.get(c, 0) + 1
            keep.append(i)
    idx = torch.tensor(sorted(keep))
    if isinstance(data, ImageData):
        return ImageData(data.images[idx], data.labels[idx])
    return FolderData([data.samples[i] for i in idx.tolist()])


# ----------------------------------------------------------------------------------------- the run


class _Progress:
    """A tqdm bar on a terminal (images/s, loss, accuracy, ETA), nothing otherwise."""

    def __init__(self, mode: str, enabled: bool) -> None:
        self.on = enabled and (mode == "bar" or (mode == "auto" and sys.stderr.isatty()))
        self.bar = None

    def start(self, total: int, desc: str, initial: int = 0) -> None:
        if self.on:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, initial=initial, unit="batch", leave=False, dynamic_ncols=True)

    def update(self, **postfix: Any) -> None:
        if self.bar is not None:
            self.bar.update(1)
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class Trainer:
    """Holds one run. Use :func:`fit`."""

    def __init__(self, cfg: Config, run_dir: Path, resume: bool = False,
                 log: Callable[[str], None] = print) -> None:
        self.cfg, self.run_dir, self.resume = cfg, run_dir, resume
        self.rank, self.world = dist.rank(), dist.world_size()
        self.main = self.rank == 0
        self._log = log
        self._stop: Optional[int] = None

    def log(self, msg: str) -> None:
        if self.main:
            self._log(msg)

    # --------------------------------------------------------------------------------- preparation

    def setup(self) -> None:
        from ..data import AugmentConfig, load_dataset, make_loader, split_validation

        cfg = self.cfg
        self.device = dist.device_for_rank(resolve_device(cfg.train.device))
        torch.manual_seed(cfg.train.seed)
        if cfg.train.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        elif self.device.type == "cuda":
            torch.backends.cudnn.benchmark = cfg.train.cudnn_benchmark
        if cfg.train.precision == "fp16":
            resolve_precision("fp16", self.device)  # an fp16 request on the CPU fails before any data is read

        t0 = time.perf_counter()
        ds = load_dataset(cfg.data.name, cfg.data.dir, cfg.data.download)
        self.dataset = ds
        train, val = ds.train, None
        if cfg.data.val_split > 0:
            train, val = split_validation(ds.train, cfg.data.val_split, cfg.train.seed)
        if cfg.data.per_class:
            train = take_per_class(train, cfg.data.per_class, cfg.train.seed)
        self.classes = list(ds.classes)
        plan = plan_input(cfg.model.name, int(ds.image_size[0]), cfg.model.kwargs, cfg.data.image_size)
        if plan.note:
            self.log(plan.note)
        self.image_size = (plan.image_size, plan.image_size)

        model = create_model(cfg.model.name, num_classes=len(self.classes), in_chans=ds.in_chans,
                             pretrained=cfg.model.pretrained, **plan.kwargs)
        self._apply_transfer(model)
        self.amp_dtype = resolve_precision(cfg.train.precision, self.device, model)
        self.aux_weight = cfg.train.aux_weight if cfg.train.aux_weight is not None else getattr(model, "aux_weight", 0.0)
        self.in_chans = model.in_chans
        model = model.to(self.device)
        if cfg.train.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.model_name = cfg.model.name

        aug = AugmentConfig(hflip=cfg.data.hflip, translate=cfg.data.translate, rotate=cfg.data.rotate,
                            color=cfg.data.color, pca_lighting=cfg.data.pca_lighting, erasing=cfg.data.erasing)
        common = dict(image_size=self.image_size, mean=ds.mean, std=ds.std, device=self.device,
                      channels_last=cfg.train.channels_last, in_chans=self.in_chans,
                      num_workers=cfg.data.num_workers)
        ebs = cfg.data.eval_batch_size or 2 * cfg.data.batch_size
        bs = cfg.data.batch_size
        if len(train) == 0:
            raise UserError(f"the training split of {cfg.data.name} is empty; check the data directory")
        if len(train) < bs:
            bs = len(train)
            self.log(f"the training split has only {bs} images: one batch of {bs} per step")
        self.train_loader = make_loader(train, batch_size=bs, train=True, augment=aug,
                                        seed=cfg.train.seed, rank=self.rank, world_size=self.world, **common)
        self.val_loader = make_loader(val, batch_size=ebs, train=False, **common) if val is not None else None
        self.test_loader = make_loader(ds.test, batch_size=ebs, train=False, **common) if ds.test is not None else None
        self.data_seconds = time.perf_counter() - t0
        self.steps_per_epoch = len(self.train_loader)

        self.ddp_model = dist.wrap(model, self.device, cfg.train.sync_bn)
        self.optimizer = build_optimizer(
            param_groups(model, cfg.optim.weight_decay, cfg.optim.decay_norm_and_bias, self.lr_scale), cfg.optim)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.ema = None
        if cfg.train.ema:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.train.ema_decay), use_buffers=True)
        self.forward = torch.compile(self.ddp_model) if cfg.train.compile else self.ddp_model

        self.epoch, self.batch_in_epoch, self.step = 0, 0, 0
        self.history: List[Dict[str, Any]] = []
        self.acc = self._zero_acc()
        self.train_seconds = 0.0
        if self.resume:
            self._load_checkpoint()

    def _apply_transfer(self, model: nn.Module) -> None:
        from ..transfer import format_table, freeze, freeze_bn, stage_lr_scale, trainable_table

        cfg = self.cfg.model
        report = getattr(model, "pretrained_report", None)
        if report is not None:
            self.log(report.summary())
        if cfg.freeze_bn:
            self.log(f"BatchNorm frozen: {freeze_bn(model)} layers keep their statistics and affine parameters")
        frozen = freeze(model, cfg.freeze_until, cfg.freeze)
        if frozen or cfg.freeze_bn or report is not None:
            self.log(format_table(trainable_table(model)))
        decay = self.cfg.optim.stage_lr_decay
        self.lr_scale = stage_lr_scale(model, decay) if decay else None

    def _zero_acc(self) -> Dict[str, torch.Tensor]:
        z = lambda dt: torch.zeros((), device=self.device, dtype=dt)  # noqa: E731
        return {"loss": z(torch.float64), "correct": z(torch.long), "n": z(torch.long),
                "bad_step": torch.full((), -1, device=self.device, dtype=torch.long)}

    def meta(self) -> Dict[str, Any]:
        return {"classes": self.classes, "mean": list(self.dataset.mean), "std": list(self.dataset.std),
                "image_size": list(self.image_size), "in_chans": self.in_chans, "data": self.cfg.data.name}

    # --------------------------------------------------------------------------------- checkpoints

    def _state(self) -> Dict[str, Any]:
        st = {
            "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "step": self.step,
            "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
            "rng_cpu": torch.get_rng_state(), "acc": {k: v.cpu() for k, v in self.acc.items()},
            "history": json.dumps(self.history), "train_seconds": self.train_seconds,
        }
        if self.device.type == "cuda":
            st["rng_cuda"] = torch.cuda.get_rng_state(self.device)
        if self.ema is not None:
            st["ema"] = self.ema.state_dict()
        return st

    def save(self, tag: str) -> Optional[Path]:
        if not self.main:
            return None
        meta = dict(self.meta(), epoch=self.epoch, step=self.step)
        return save_checkpoint(self.run_dir, tag, self.model, self._state(), meta)

    def _load_checkpoint(self) -> None:
        ck = latest_checkpoint(self.run_dir)
        if ck is None:
            raise UserError(f"{self.run_dir} has no checkpoint to resume from; start a new run without --resume")
        weights, _ = load_weights(ck / "model.safetensors")
        self.model.load_state_dict(weights)
        st = load_state(ck / "state.pt")
        self.optimizer.load_state_dict(st["optimizer"])
        self.scaler.load_state_dict(st["scaler"])
        torch.set_rng_state(st["rng_cpu"])
        if "rng_cuda" in st and self.device.type == "cuda":
            torch.cuda.set_rng_state(st["rng_cuda"], self.device)
        if self.ema is not None and "ema" in st:
            self.ema.load_state_dict(st["ema"])
        self.epoch, self.batch_in_epoch, self.step = int(st["epoch"]), int(st["batch_in_epoch"]), int(st["step"])
        self.acc = {k: v.to(self.device) for k, v in st["acc"].items()}
        self.history = json.loads(st["history"])
        self.train_seconds = float(st["train_seconds"])
        where = f"epoch {self.epoch + 1}, batch {self.batch_in_epoch}" if self.batch_in_epoch else f"epoch {self.epoch + 1}"
        self.log(f"resuming {self.run_dir} from {ck.name}: continuing at {where}")

    # --------------------------------------------------------------------------------- the loop

    def _loss(self, out, y: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        ls = self.cfg.train.label_smoothing
        if isinstance(out, AuxOutputs):
            loss = F.cross_entropy(out.logits, y, label_smoothing=ls)
            if self.aux_weight:
                loss = loss + self.aux_weight * sum(F.cross_entropy(a, y, label_smoothing=ls) for a in out.aux)
            return loss, out.logits
        return F.cross_entropy(out, y, label_smoothing=ls), out

    def _check_finite(self, lr: float) -> None:
        bad = int(self.acc["bad_step"])
        if bad >= 0:
            ck = latest_checkpoint(self.run_dir)
            keep = f"the last good checkpoint is {ck}" if ck else "no checkpoint was written yet"
            raise TrainingDiverged(
                f"loss became non-finite at epoch {self.epoch + 1}, step {bad} (lr {lr:.4g}); {keep}; "
                f"lower the learning rate (--lr) or clip gradients (--set train.grad_clip=1.0)")

    def train_epoch(self) -> Dict[str, float]:
        cfg, model = self.cfg, self.model
        model.train()
        skip = self.batch_in_epoch
        self.train_loader.set_epoch(self.epoch, start_batch=skip)
        if skip == 0:
            self.acc = self._zero_acc()
        sync_every = 1 if self.device.type == "cpu" else 25
        self.progress.start(self.steps_per_epoch, f"epoch {self.epoch + 1}/{cfg.train.epochs}", skip)
        t0, seen, lr = time.perf_counter(), 0, 0.0
        # A resumed epoch starts at batch `skip`: order and augmentation are seeded per (epoch, batch).
        for i, (x, y) in enumerate(self.train_loader, start=skip):
            lr = set_lr(self.optimizer, cfg.optim.lr,
                        lr_factor(self.step, self.steps_per_epoch, cfg.train.epochs, cfg.schedule))
            with autocast(self.device, self.amp_dtype):
                out = self.forward(x)
                loss, logits = self._loss(out, y)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if cfg.train.grad_clip:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            if self.ema is not None:
                self.ema.update_parameters(model)
            ld = loss.detach()
            a = self.acc
            a["bad_step"] = torch.where((a["bad_step"] < 0) & ~torch.isfinite(ld), self.step, a["bad_step"])
            a["loss"] += ld.double() * y.numel()
            a["correct"] += (logits.detach().argmax(1) == y).sum()
            a["n"] += y.numel()
            self.step += 1
            self.batch_in_epoch = i + 1
            seen += y.numel()
            if i % sync_every == 0 or i + 1 == self.steps_per_epoch:
                self._check_finite(lr)
                n = max(1, int(a["n"]))
                el = time.perf_counter() - t0
                self.progress.update(loss=f"{float(a['loss']) / n:.4f}", acc=f"{int(a['correct']) / n:.4f}",
                                     img_s=f"{seen * self.world / max(el, 1e-9):,.0f}")
            else:
                self.progress.update()
            if self._stop is not None:
                self.progress.close()
                self.train_seconds += time.perf_counter() - t0
                self.save(f"step-{self.step:08d}")
                raise Interrupted(self._stop, self.run_dir)
        self.progress.close()
        self._check_finite(lr)
        secs = time.perf_counter() - t0
        self.train_seconds += secs
        tot = dist.all_reduce_sum(torch.stack([self.acc["loss"], self.acc["correct"].double(), self.acc["n"].double()]))
        n = max(1.0, float(tot[2]))
        return {"train_loss": float(tot[0]) / n, "train_acc": float(tot[1]) / n, "lr": lr,
                "img_per_s": seen * self.world / max(secs, 1e-9), "seconds": secs}

    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model

    def fit(self) -> Dict[str, Any]:
        cfg = self.cfg
        self.progress = _Progress(cfg.run.progress, self.main)
        self.writer = self._tensorboard() if self.main else None
        t_start = time.perf_counter()
        old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

        def handler(signum, frame):  # finish the step, checkpoint, exit
            self._stop = signum

        for s in old:
            signal.signal(s, handler)
        try:
            while self.epoch < cfg.train.epochs:
                row = {"epoch": self.epoch + 1, **self.train_epoch()}
                if self.val_loader is not None:
                    v = evaluate(self.eval_model(), self.val_loader, len(self.classes), self.device, self.amp_dtype)
                    row.update(val_loss=v["loss"], val_acc=v["top1"])
                else:
                    row.update(val_loss=float("nan"), val_acc=float("nan"))
                self.history.append(row)
                self.epoch += 1
                self.batch_in_epoch = 0
                self.log(self._epoch_line(row))
                self._write_metrics(row)
                if self.epoch % cfg.run.checkpoint_every == 0 or self.epoch == cfg.train.epochs:
                    self.save(f"epoch-{self.epoch:04d}")
                if self._stop is not None:
                    raise Interrupted(self._stop, self.run_dir)
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            if self.writer is not None:
                self.writer.close()
        return self._finish(time.perf_counter() - t_start)

    def _epoch_line(self, r: Dict[str, Any]) -> str:
        line = (f"epoch {r['epoch']}/{self.cfg.train.epochs}  loss {r['train_loss']:.3f}  acc {r['train_acc']:.3f}")
        if self.val_loader is not None:
            line += f"  val_loss {r['val_loss']:.3f}  val_acc {r['val_acc']:.3f}"
        return line + f"  {r['img_per_s']:,.0f} img/s  {r['seconds']:.1f} s"

    def _tensorboard(self):
        if not self.cfg.run.tensorboard:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            self.log("tensorboard is not installed: no event files (pip install tensorboard)")
            return None
        return SummaryWriter(str(self.run_dir / "tensorboard"))

    def _write_metrics(self, row: Dict[str, Any]) -> None:
        if not self.main:
            return
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in self.history:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
        atomic_write(self.run_dir / "metrics.csv", lambda p: Path(p).write_text(buf.getvalue()))
        if self.writer is not None:
            for k in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "img_per_s"):
                self.writer.add_scalar(k, row[k], row["epoch"])
            self.writer.flush()

    def _finish(self, seconds: float) -> Dict[str, Any]:
        model = self.eval_model()
        results: Dict[str, Any] = {
            "model": self.model_name, "data": self.cfg.data.name, "params": sum(p.numel() for p in model.parameters()),
            "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "epochs": self.epoch, "image_size": list(self.image_size), "device": str(self.device),
            "precision": str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else "fp32",
            "train_seconds": round(self.train_seconds, 3), "data_seconds": round(self.data_seconds, 3),
        }
        if self.history:
            last = self.history[-1]
            results.update(train_acc=last["train_acc"], val_top1=last["val_acc"], val_loss=last["val_loss"],
                           img_per_s=sum(r["img_per_s"] for r in self.history) / len(self.history))
        if self.test_loader is not None:
            t_test = time.perf_counter()
            t = evaluate(model, self.test_loader, len(self.classes), self.device, self.amp_dtype, self.cfg.train.tta)
            results.update(test_top1=t["top1"], test_top5=t["top5"], test_loss=t["loss"], tta=self.cfg.train.tta,
                           test_seconds=round(time.perf_counter() - t_test, 3))
            self.log(f"test  top1 {t['top1']:.4f}  top5 {t['top5']:.4f}  ({t['n']:,} images"
                     f"{', TTA ' + self.cfg.train.tta if self.cfg.train.tta else ''})")
        if self.world > 1:
            results["world_size"] = self.world
            results["global_batch"] = self.train_loader.batch_size * self.world
            results["ranks_identical"] = dist.params_identical(self.model)
        results["total_seconds"] = round(seconds + self.data_seconds, 3)
        if self.main:
            save_weights(self.run_dir / "model.safetensors", model, self.meta())
            atomic_write(self.run_dir / "results.json",
                         lambda p: Path(p).write_text(json.dumps(results, indent=2) + "\n"))
            try:
                from ..viz.curves import plot_curves

                plot_curves(self.run_dir / "metrics.csv", self.run_dir / "curves.png")
            except ImportError:  # matplotlib missing: the CSV still has every number
                pass
            self.log(f"run saved to {self.run_dir}")
        return results


# ----------------------------------------------------------------------------------------- entry point


def _default_run_dir(cfg: Config) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.model.name}-{cfg.data.name}-{stamp}"


def prepare_run_dir(cfg: Config, resume: Optional[str], overwrite: bool) -> Tuple[Config, Path]:
    """Decide the run directory and, for a resume, the config to continue with."""
    if resume:
        run_dir = Path(resume)
        stored_path = run_dir / "config.yaml"
        if not stored_path.is_file():
            raise UserError(f"cannot resume {run_dir}: no config.yaml there; is it a cnnzoo run directory?")
        stored = validate(config_from_dict(yaml.safe_load(stored_path.read_text())))
        bad = resume_conflicts(stored, cfg)
        if bad:
            raise UserError(f"cannot resume {run_dir} with a changed config: {'; '.join(bad[:3])}; "
                            "start a new run (--output NEW_DIR) instead")
        stored.train.epochs = cfg.train.epochs
        stored.run = cfg.run
        stored.run.output = str(run_dir)
        return stored, run_dir
    run_dir = Path(cfg.run.output) if cfg.run.output else _default_run_dir(cfg)
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise UserError(f"run directory {run_dir} already exists; use --resume {run_dir} to continue it, "
                            "--overwrite to replace it, or --output to choose another")
    cfg.run.output = str(run_dir)
    return cfg, run_dir


def fit(cfg: Config, resume: Optional[str] = None, overwrite: bool = False,
        log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Train according to ``cfg``; returns the results (also written to ``results.json``)."""
    dist.init_from_env()
    cfg, run_dir = prepare_run_dir(cfg, resume, overwrite)
    dist.barrier()  # every rank has checked the run directory before rank 0 writes into it
    trainer = Trainer(cfg, run_dir, resume=bool(resume), log=log)
    trainer.setup()
    if trainer.main:
        if overwrite and not resume and run_dir.exists():
            for name in ("metrics.csv", "results.json", "model.safetensors", "curves.png"):
                (run_dir / name).unlink(missing_ok=True)
            import shutil

            shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
            shutil.rmtree(run_dir / "tensorboard", ignore_errors=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(config_to_dict(cfg), sort_keys=False)
        atomic_write(run_dir / "config.yaml", lambda p: Path(p).write_text(text))
        n = sum(p.numel() for p in trainer.model.parameters())
        tr = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
        trainer.log(f"{cfg.model.name}: {n:,} parameters ({tr:,} trainable) | {cfg.data.name}: "
                    f"{trainer.train_loader.num_samples * trainer.world:,} train, "
                    f"{trainer.val_loader.num_samples if trainer.val_loader else 0:,} val | "
                    f"{trainer.image_size[0]}px, batch {cfg.data.batch_size}, {trainer.device}, "
                    f"{'fp32' if trainer.amp_dtype is None else str(trainer.amp_dtype).replace('torch.', '')}"
                    f"{', channels_last' if cfg.train.channels_last else ''}")
    try:
        return trainer.fit()
    finally:
        dist.barrier()
