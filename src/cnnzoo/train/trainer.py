"""The training loop: one loop, with AMP, channels_last, EMA, auxiliary heads, DDP as options.

``fit(cfg)`` trains ``cfg.model`` on ``cfg.data`` into a run directory and returns the results.
The test split is touched once, after training; every per-epoch decision uses the validation
split carved out of train.

Read top to bottom as the run happens: the builders (data, model, loaders, optimiser + EMA), each returning
what it builds; the :class:`Trainer`, whose ``train_epoch`` loop body is one :meth:`Trainer.train_step` with
the bookkeeping in named helpers; and ``fit``, the entry point.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import yaml
from torch import nn

from ..builder import InputPlan, create_model, min_input_side, plan_input, warm_start
from ..data import Dataset, Loader, load_dataset, make_loader, split_validation, take_per_class
from ..data.base import ImageData, Split
from ..errors import UserError
from ..hub import IMAGENET_MEAN, IMAGENET_STD, weights_preprocessing
from ..io import (Progress, RunDir, is_weights_spec, load_weights, read_weights_meta, save_weights, storage_error,
                  write_text)
from ..runtime import (autocast, precision_name, precision_note, resolve_device, resolve_precision,
                       use_matmul_convs)
from . import distributed as dist
from .config import Config, config_to_dict, load_config, resume_conflicts
from .evaluate import evaluate
from .freeze import (format_table, freeze, freeze_after, freeze_bn, freeze_bn_scale, set_bn_momentum, stage_lr_scale,
                     trainable_table)
from .losses import classification_loss, target_classes
from .optim import (SAM, Lookahead, bn_stats_frozen, build_optimizer, lr_factor, param_groups, plateau_factor,
                    plateau_steps, set_lr)
from .progressive import ProgressiveResize
from .replicas import ThreadReplicas

__all__ = ["fit", "prepare_run_dir", "TrainingDiverged", "Interrupted", "Splits", "Loaders", "load_splits",
           "build_model", "build_loaders", "data_init_images", "build_optimizer_and_ema"]

METRIC_COLUMNS = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "img_per_s", "seconds"]
TENSORBOARD_SCALARS = ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "img_per_s")
# Fault testing: seconds to pause after every training step, so a test's signal lands inside an epoch however fast
# the machine is (as io's CNNZOO_CHECKPOINT_DELAY does for checkpoint writes). The pause is not counted as a step's.
_STEP_DELAY = float(os.environ.get("CNNZOO_STEP_DELAY", "0") or 0)


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


class Interrupted(Exception):
    """SIGINT or SIGTERM: a resumable checkpoint was written."""

    def __init__(self, signum: int, run_dir: Path) -> None:
        self.signum, self.run_dir = signum, run_dir
        name = signal.Signals(signum).name
        super().__init__(f"{name} received: checkpoint saved; resume with `cnnzoo train --resume {run_dir}`")


# ----------------------------------------------------------------------------------------- builders


@dataclass
class Splits:
    """The dataset and the splits a run uses: train (after the validation carve-out), val, test."""

    dataset: Dataset
    train: Split
    val: Optional[Split]
    test: Optional[Split]

    @property
    def classes(self) -> List[str]:
        return list(self.dataset.classes)


@dataclass
class Loaders:
    train: Loader
    val: Optional[Loader]
    test: Optional[Loader]


def load_splits(cfg: Config) -> Splits:
    """Read ``cfg.data``; validation is the dataset's own (a folder's ``val/``) or else carved out of train
    (``data.val_split``); keep ``per_class`` images of each class."""
    ds = load_dataset(cfg.data.name, cfg.data.dir, cfg.data.download)
    train, val = ds.train, ds.val
    if val is None and cfg.data.val_split > 0:
        train, val = split_validation(ds.train, cfg.data.val_split, cfg.train.seed)
    if cfg.data.per_class:
        train = take_per_class(train, cfg.data.per_class, cfg.train.seed)
    if len(train) == 0:
        raise UserError(f"the training split of {cfg.data.name} is empty; check the data directory")
    return Splits(ds, train, val, ds.test)


def build_model(cfg: Config, splits: Splits, plan: InputPlan, log: Callable[[str], None],
                resuming: bool = False) -> Tuple[nn.Module, Optional[Dict[str, float]]]:
    """The model (initialised by ``model.init``, pretrained or warm-started weights loaded, frozen parts frozen)
    and its per-stage learning-rate scales. A resumed run skips the warm start: its checkpoint has the weights."""
    model = create_model(cfg.model.name, num_classes=len(splits.classes), in_chans=splits.dataset.in_chans,
                         pretrained=cfg.model.pretrained, init=cfg.model.init, **plan.kwargs)
    report = getattr(model, "pretrained_report", None)
    if report is not None:
        log(report.summary())
    if cfg.model.warm_start and not resuming:
        log(warm_start(model, cfg.model.warm_start).summary())
    if cfg.model.freeze_bn:
        log(f"BatchNorm frozen: {freeze_bn(model)} layers keep their statistics and affine parameters")
    if cfg.train.freeze_bn_scale:
        log(f"BatchNorm scale fixed at 1: {freeze_bn_scale(model)} layers train their bias only")
    if cfg.train.bn_momentum is not None:
        set_bn_momentum(model, cfg.train.bn_momentum)
    frozen = freeze(model, cfg.model.freeze_until, cfg.model.freeze)
    if frozen or cfg.model.freeze_bn or report is not None:
        log(format_table(trainable_table(model)))
    decay = cfg.optim.stage_lr_decay
    return model, (stage_lr_scale(model, decay) if decay else None)


def normalization(cfg: Config, dataset: Dataset) -> Tuple[Tuple[float, ...], Tuple[float, ...], str]:
    """``(mean, std, note)`` the inputs are normalised with (``data.normalize``).

    Fine-tuning keeps the statistics the pretrained weights were trained with, where they are known (a catalogue
    tag, a torchvision file of the catalogue, a cnnzoo run); otherwise, and without weights, the dataset's own.
    """
    how = cfg.data.normalize
    if how == "dataset":
        return tuple(dataset.mean), tuple(dataset.std), ""
    if how == "imagenet":
        return IMAGENET_MEAN, IMAGENET_STD, "normalising with ImageNet's mean and std"
    known = weights_preprocessing(cfg.model.name, cfg.model.pretrained)
    if known is None:
        if how == "weights":
            raise UserError(f"data.normalize=weights: the statistics of {cfg.model.pretrained or 'no weights'} are "
                            "not known; use data.normalize=imagenet or dataset")
        return tuple(dataset.mean), tuple(dataset.std), ""
    mean, std, source = known
    if cfg.model.pretrained and not is_weights_spec(str(cfg.model.pretrained)):
        note = f"normalising with the mean and std of {source} (data.normalize=dataset for the data's own)"
    else:
        note = ""  # a cnnzoo run of the same data: its statistics, silently
    return mean, std, note


def build_loaders(cfg: Config, splits: Splits, image_size: Tuple[int, int], in_chans: int, device: torch.device,
                  rank: int, world: int, log: Callable[[str], None],
                  stats: Tuple[Tuple[float, ...], Tuple[float, ...]]) -> Loaders:
    """Batches on ``device``: the training loader (shuffled, augmented, this rank's share) and evaluation ones,
    normalised with ``stats`` (mean, std: :func:`normalization`)."""
    if splits.dataset.name == "folder":
        from ..data.folder import describe_splits

        for line in describe_splits(cfg.data.dir, splits.dataset, splits.val, cfg.data.val_split):
            log(line)
    common = _loader_settings(cfg, image_size, in_chans, device, stats)
    eval_batch = cfg.data.eval_batch_size or 2 * cfg.data.batch_size
    batch = cfg.data.batch_size
    if len(splits.train) < batch:
        batch = len(splits.train)
        log(f"the training split has only {batch} images: one batch of {batch} per step")
    train = make_loader(splits.train, batch_size=batch, train=True, augment=cfg.data.augment, seed=cfg.train.seed,
                        rank=rank, world_size=world, drop_last=cfg.data.drop_last,
                        num_classes=len(splits.classes), **common)
    cache = getattr(train, "cache", None)
    if cache is not None:
        log(f"decoded images cached in {cache.dir} ({cache.nbytes / 2**20:,.1f} MiB when whole; data.cache=false "
            "decodes every epoch instead)")
    val = make_loader(splits.val, batch_size=eval_batch, train=False, **common) if splits.val is not None else None
    test = make_loader(splits.test, batch_size=eval_batch, train=False, **common) if splits.test is not None else None
    return Loaders(train, val, test)


def _loader_settings(cfg: Config, image_size: Tuple[int, int], in_chans: int, device: torch.device,
                     stats: Tuple[Tuple[float, ...], Tuple[float, ...]]) -> Dict[str, Any]:
    """What every loader of a run shares: size, channels, normalisation, device, decoding."""
    mean, std = stats
    return dict(image_size=image_size, mean=mean, std=std, device=device, channels_last=cfg.train.channels_last,
                in_chans=in_chans, num_workers=cfg.data.num_workers, cache=cfg.data.cache,
                cache_dir=cfg.data.cache_dir, max_bad_share=cfg.data.max_bad_share)


def data_init_images(cfg: Config, splits: Splits, image_size: Tuple[int, int], in_chans: int, device: torch.device,
                     stats: Tuple[Tuple[float, ...], Tuple[float, ...]]) -> torch.Tensor:
    """The images ``model.data_init`` initialises from: the first ``model.data_init_images`` training images in a
    seeded shuffle, as the training loader gives them without augmentation (converted, resized, normalised).

    An evaluation loader over them does exactly that (a folder's images: the centre crop, as training takes when
    no crop augmentation is on). Every rank draws the same images, so every replica starts alike.
    """
    train = splits.train
    pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(cfg.train.seed))
    pick = pick[:cfg.model.data_init_images]
    subset = ImageData(train.images[pick], train.labels[pick]) if isinstance(train, ImageData) else \
        train.subset(pick.tolist())
    loader = make_loader(subset, batch_size=cfg.data.eval_batch_size or 2 * cfg.data.batch_size, train=False,
                         **_loader_settings(cfg, image_size, in_chans, device, stats))
    return torch.cat([x for x, _ in loader])


def build_optimizer_and_ema(cfg: Config, model: nn.Module, lr_scale: Optional[Dict[str, float]],
                            amp_dtype: Optional[torch.dtype]):
    """``(optimizer, gradient scaler, EMA model or None)``."""
    optimizer = build_optimizer(
        param_groups(model, cfg.optim.weight_decay, cfg.optim.decay_norm_and_bias, lr_scale,
                     cfg.optim.norm_bias_lr_scale), cfg.optim)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    ema = None
    if cfg.train.ema:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.train.ema_decay), use_buffers=True)
    return optimizer, scaler, ema


def _seed_and_backends(cfg: Config, device: torch.device) -> None:
    torch.manual_seed(cfg.train.seed)
    if cfg.train.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = cfg.train.cudnn_benchmark


# ----------------------------------------------------------------------------------------- the run


class RunningSums:
    """The epoch's running sums on the device (no sync per step): loss x images, correct, images, first bad step."""

    def __init__(self, device: torch.device) -> None:
        z = lambda dt: torch.zeros((), device=device, dtype=dt)  # noqa: E731
        self.loss_sum, self.correct, self.seen = z(torch.float64), z(torch.long), z(torch.long)
        self.first_bad_step = torch.full((), -1, device=device, dtype=torch.long)

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor, step: int) -> None:
        bad = (self.first_bad_step < 0) & ~torch.isfinite(loss)
        self.first_bad_step = torch.where(bad, step, self.first_bad_step)
        y = target_classes(y)  # mixup/cutmix: soft targets count for their larger share
        self.loss_sum += loss.double() * y.numel()
        self.correct += (logits.argmax(1) == y).sum()
        self.seen += y.numel()

    def means(self) -> Tuple[float, float]:
        """(mean loss, accuracy) of this rank so far."""
        n = max(1, int(self.seen))
        return float(self.loss_sum) / n, int(self.correct) / n

    def state(self) -> Dict[str, torch.Tensor]:
        return {"loss": self.loss_sum.cpu(), "correct": self.correct.cpu(), "n": self.seen.cpu(),
                "bad_step": self.first_bad_step.cpu()}

    def load(self, state: Dict[str, torch.Tensor], device: torch.device) -> None:
        self.loss_sum, self.correct = state["loss"].to(device), state["correct"].to(device)
        self.seen, self.first_bad_step = state["n"].to(device), state["bad_step"].to(device)

    def totals(self) -> Tuple[float, float]:
        """(mean loss, accuracy) over every rank."""
        tot = dist.all_reduce_sum(torch.stack([self.loss_sum, self.correct.double(), self.seen.double()]))
        n = max(1.0, float(tot[2]))
        return float(tot[0]) / n, float(tot[1]) / n


class Trainer:
    """Holds one run. Use :func:`fit`."""

    lookahead: Optional[Lookahead] = None  # train.lookahead (setup); a step made without setup has none
    resizer: Optional[ProgressiveResize] = None  # train.progressive_scale < 1 (setup)
    replicas: Optional[ThreadReplicas] = None  # train.replicas > 1 (setup)

    def __init__(self, cfg: Config, run_dir: RunDir, resume: bool = False,
                 log: Callable[[str], None] = print) -> None:
        self.cfg, self.run, self.resume = cfg, run_dir, resume
        self.rank, self.world = dist.rank(), dist.world_size()
        self.is_rank0 = self.rank == 0
        self._log = log
        self._stop: Optional[int] = None

    @property
    def run_dir(self) -> Path:
        return self.run.root

    def log(self, msg: str) -> None:
        if self.is_rank0:
            self._log(msg)

    # --------------------------------------------------------------------------------- preparation

    def setup(self) -> None:
        cfg = self.cfg
        self.t_process = time.perf_counter()
        self.wall_before = 0.0  # wall seconds of the processes before a resume
        self.device = dist.device_for_rank(resolve_device(cfg.train.device))
        _seed_and_backends(cfg, self.device)
        if cfg.train.replicas > 1 and (self.device.type != "cpu" or self.world > 1):
            raise UserError(f"train.replicas splits each batch over the CPU's cores in one process; on "
                            f"{'several ranks' if self.world > 1 else self.device} set train.replicas=1")
        # SyncBatchNorm is made of new modules, without freeze_bn's hooks; frozen statistics need no synchronising.
        sync_bn = cfg.train.sync_bn and not cfg.model.freeze_bn and self.world > 1
        if sync_bn and self.device.type == "cpu":
            raise UserError("train.sync_bn: PyTorch's SyncBatchNorm runs on GPUs only; on the CPU set "
                            "train.sync_bn=false (each rank then normalises with its own batch's statistics)")
        if cfg.train.precision == "fp16":
            resolve_precision("fp16", self.device)  # an fp16 request on the CPU fails before any data is read

        t0 = time.perf_counter()
        self.splits = load_splits(cfg)
        self.classes = self.splits.classes
        plan = plan_input(cfg.model.name, int(self.splits.dataset.image_size[0]), cfg.model.kwargs,
                          cfg.data.image_size, pretrained=cfg.model.pretrained)
        if plan.note:
            self.log(plan.note)
        self.image_size = (plan.image_size, plan.image_size)
        self.size_source = plan.source  # where the size came from, for the header

        model, lr_scale = build_model(cfg, self.splits, plan, self.log, resuming=self.resume)
        self.amp_dtype = resolve_precision(cfg.train.precision, self.device, model)
        emulated = precision_note(cfg.train.precision, self.device)
        if emulated:
            self.log(emulated)
        self.aux_weight = cfg.train.aux_weight if cfg.train.aux_weight is not None else getattr(model, "aux_weight", 0.0)
        self.in_chans = model.in_chans
        model = model.to(self.device)
        if cfg.train.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if cfg.train.matmul_conv and self.device.type == "cpu":
            use_matmul_convs(model)
        self.model = model
        self.model_name = cfg.model.name

        self.mean, self.std, note = normalization(cfg, self.splits.dataset)
        if note:
            self.log(note)
        self.loaders = build_loaders(cfg, self.splits, self.image_size, self.in_chans, self.device, self.rank,
                                     self.world, self.log, (self.mean, self.std))
        self.data_seconds = time.perf_counter() - t0
        self.steps_per_epoch = len(self.loaders.train)
        if self.loaders.val is None:
            for what, on in (("schedule plateau", cfg.schedule.name == "plateau"),
                             ("train.keep_best", cfg.train.keep_best),
                             ("train.early_stop_patience", cfg.train.early_stop_patience)):
                if on:
                    raise UserError(f"{what} needs validation: data.val_split > 0 or a val/ folder")

        if cfg.model.data_init:
            self._init_from_data()

        if cfg.train.sync_bn and self.world > 1 and not sync_bn:
            self.log("train.sync_bn: nothing to synchronise, model.freeze_bn keeps every BatchNorm's statistics")
        ddp_model = dist.wrap(model, self.device, sync_bn)
        self.optimizer, self.scaler, self.ema = build_optimizer_and_ema(cfg, model, lr_scale, self.amp_dtype)
        self.lookahead = (Lookahead(model, cfg.train.lookahead_every, cfg.train.lookahead_decay,
                                    self.steps_per_epoch * cfg.train.epochs) if cfg.train.lookahead else None)
        if cfg.train.progressive_scale < 1:
            self.resizer = ProgressiveResize(self.image_size, self.steps_per_epoch * cfg.train.epochs,
                                             cfg.train.progressive_scale, cfg.train.progressive_delay,
                                             cfg.train.progressive_finetune, cfg.train.progressive_increment,
                                             min_input_side(model))
            self.log(self.resizer.describe())
        self.replicas = ThreadReplicas(model, cfg.train.replicas) if cfg.train.replicas > 1 else None
        # What the step calls: the model, wrapped for DDP and compiled as asked.
        self.step_model = torch.compile(ddp_model) if cfg.train.compile else ddp_model

        self.epoch, self.batch_in_epoch, self.step = 0, 0, 0
        self.best_val, self.best_epoch = -1.0, 0  # checkpoints/best/, train.keep_best
        self.history: List[Dict[str, Any]] = []
        self.running = RunningSums(self.device)
        self.train_seconds = 0.0
        if self.resume:
            self._load_checkpoint()
        self._freeze_after()

    def _init_from_data(self) -> None:
        """``model.data_init``: the model's own data-dependent initialisation, before the optimiser is built (so
        that what it freezes is left out of it) and before DDP wraps the model.

        A resumed run calls it too: its checkpoint then overwrites the weights, but what the hook freezes must be
        frozen again, or the optimiser would hold other parameters than the checkpoint's. The hook is
        deterministic (a seeded choice of images), so every rank and every resume starts alike.
        """
        hook = getattr(self.model, "init_from_data", None)
        if not callable(hook):
            raise UserError(f"model.data_init: {self.cfg.model.name} has no data-dependent initialisation "
                            "(init_from_data); set model.data_init=false")
        t0 = time.perf_counter()
        images = data_init_images(self.cfg, self.splits, self.image_size, self.in_chans, self.device,
                                  (self.mean, self.std))
        line = hook(images)
        self.log(f"{line} ({time.perf_counter() - t0:.2f} s)")

    def _freeze_after(self) -> None:
        """``train.freeze_after`` for the epochs done so far: called when the count changes (and once set up, for a
        resumed run), so a resume has frozen what the uninterrupted run had."""
        if not self.cfg.train.freeze_after:
            return
        newly = freeze_after(self.model, self.cfg.train.freeze_after, self.epoch)
        if not newly:
            return
        self.log(f"after {self.epoch} epoch{'s' * (self.epoch != 1)}: {', '.join(newly)} frozen (train.freeze_after)")
        if self.world > 1:  # DDP reduces the gradients of the parameters that trained when it wrapped the model
            ddp_model = dist.wrap(self.model, self.device)  # sync_bn: the model's BatchNorm is SyncBatchNorm already
            self.step_model = torch.compile(ddp_model) if self.cfg.train.compile else ddp_model

    def meta(self) -> Dict[str, Any]:
        meta = {"classes": self.classes, "mean": list(self.mean), "std": list(self.std),
                "image_size": list(self.image_size), "in_chans": self.in_chans, "data": self.cfg.data.name}
        # Folder runs evaluate the centre crop of images first fitted to S x S (the decoded squares): predict and
        # viz repeat that from this number (cnnzoo.inference.prepare).
        resize = getattr(self.loaders.train, "decoded_size", None)
        if resize:
            meta["resize"] = int(resize)
        return meta

    def header(self) -> str:
        """The line that says what is trained on what, and how."""
        cfg, loaders = self.cfg, self.loaders
        n = sum(p.numel() for p in self.model.parameters())
        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        batch = f"batch {loaders.train.batch_size}"
        if self.world > 1:
            batch += f" x {self.world} ranks = {loaders.train.batch_size * self.world} global"
        if self.replicas is not None:
            r = self.replicas
            batch += f" over {r.n} replicas x {r.threads} thread{'s' * (r.threads > 1)}"
        # The counts an epoch uses: what drop_last (and a last batch of one, or the ranks' equal shares) leaves out.
        used, total = loaders.train.num_samples * self.world, len(self.splits.train)
        train = f"{used:,} train"
        if used < total:
            short = (loaders.train.per_rank - loaders.train.num_samples) * self.world
            why = []
            if short and loaders.train.drop_last:
                why.append(f"{short:,} short of a batch; data.drop_last=false keeps them")
            elif short:
                why.append("a last batch of 1 left out: BatchNorm needs 2")
            if total - loaders.train.per_rank * self.world:
                why.append(f"{total - loaders.train.per_rank * self.world} over an equal share of {self.world} ranks")
            train = f"{used:,} of {total:,} train per epoch ({'; '.join(why)})"
        return (f"{cfg.model.name}: {n:,} parameters ({trainable:,} trainable) | {cfg.data.name}: "
                f"{train}, {loaders.val.num_samples if loaders.val else 0:,} val | "
                f"{self.image_size[0]}px ({self.size_source}), {batch}, {self.device}, {precision_name(self.amp_dtype)}"
                f"{', channels_last' if cfg.train.channels_last else ''}"
                f"{f', {cfg.optim.name} + SAM (rho {cfg.optim.sam_rho:g})' if cfg.optim.sam else ''}")

    # --------------------------------------------------------------------------------- checkpoints

    def _state(self) -> Dict[str, Any]:
        st = {
            "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch, "step": self.step,
            "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
            "rng_cpu": torch.get_rng_state(), "running": self.running.state(),
            "history": json.dumps(self.history), "train_seconds": self.train_seconds,
            "best_val": self.best_val, "best_epoch": self.best_epoch, RunDir.PROTECTED: self._top_tags(),
            "wall_seconds": self.wall_before + (time.perf_counter() - self.t_process),
        }
        if self.device.type == "cuda":
            st["rng_cuda"] = torch.cuda.get_rng_state(self.device)
        if self.ema is not None:
            st["ema"] = self.ema.state_dict()
        if self.lookahead is not None:
            st["lookahead"] = self.lookahead.state()
        return st

    on_first_checkpoint: Optional[Callable[[], None]] = None  # --overwrite: the old run may go now

    def save(self, tag: str) -> Optional[Path]:
        if not self.is_rank0:
            return None
        meta = dict(self.meta(), epoch=self.epoch, step=self.step)
        try:
            path = self.run.save_checkpoint(tag, self.model, self._state(), meta)
        except OSError as e:
            last = self.run.latest_checkpoint()
            err = storage_error(e, f"the last good checkpoint is {last}; free some space, then resume with "
                                   f"`cnnzoo train --resume {self.run_dir}`" if last else
                                "no checkpoint was written yet; free some space and start again")
            if err is None:
                raise
            raise err from None
        if self.on_first_checkpoint is not None:
            self.on_first_checkpoint()
            self.on_first_checkpoint = None
        return path

    def _load_checkpoint(self) -> None:
        ck, weights, st, note = self.run.load_checkpoint()
        if note:
            self.log(note)
        try:
            self.model.load_state_dict(weights)
        except RuntimeError as e:  # weights of another model copied into the run's checkpoints
            owner = (read_weights_meta(ck / RunDir.WEIGHTS) or {}).get("model", "another model")
            detail = next((ln.strip() for ln in str(e).splitlines()[1:] if ln.strip()), str(e))[:160]
            raise UserError(f"{ck} holds weights of {owner}, not of this run's {self.cfg.model.name} ({detail}); "
                            f"remove that checkpoint to resume from the one before, or start again with "
                            f"--overwrite") from None
        self.optimizer.load_state_dict(st["optimizer"])
        self.scaler.load_state_dict(st["scaler"])
        torch.set_rng_state(st["rng_cpu"])
        if "rng_cuda" in st and self.device.type == "cuda":
            torch.cuda.set_rng_state(st["rng_cuda"], self.device)
        if self.ema is not None and "ema" in st:
            self.ema.load_state_dict(st["ema"])
        if self.lookahead is not None:
            self.lookahead.load(st["lookahead"])
        self.epoch, self.batch_in_epoch, self.step = int(st["epoch"]), int(st["batch_in_epoch"]), int(st["step"])
        self.running.load(st["running"] if "running" in st else st["acc"], self.device)
        self.history = json.loads(st["history"])
        self.train_seconds = float(st["train_seconds"])
        self.best_val, self.best_epoch = float(st.get("best_val", -1.0)), int(st.get("best_epoch", 0))
        # Checkpoints of older versions have no wall time: their training time is the best lower bound.
        self.wall_before = float(st.get("wall_seconds", st["train_seconds"]))
        if self.epoch >= self.cfg.train.epochs:  # stopped between its last checkpoint and results.json
            self.log(f"resuming {self.run_dir} from {ck.name}: training is done, finishing the run (test pass, "
                     "weights, results)")
            return
        where = f"epoch {self.epoch + 1}, batch {self.batch_in_epoch}" if self.batch_in_epoch else f"epoch {self.epoch + 1}"
        self.log(f"resuming {self.run_dir} from {ck.name}: continuing at {where}")

    # --------------------------------------------------------------------------------- the loop

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """One optimisation step: forward, loss, backward, update, lookahead, EMA; the sums stay on the device.

        With SAM (``optim.sam``) the update uses the gradient at the perturbed weights (:class:`~.optim.SAM`): a
        second forward and backward of the same batch between ``perturb`` and ``restore``. The loss and accuracy
        recorded are the first pass's, at the weights the step starts from.
        """
        cfg = self.cfg
        sam = self.optimizer if isinstance(self.optimizer, SAM) else None
        # The first SAM gradient is each replica's own under DDP (the paper's m-sharpness): no all-reduce.
        loss, logits = self._backward(x, y, sync=sam is None)
        if sam is not None:
            sam.perturb()
            with bn_stats_frozen(self.model):
                self._backward(x, y)
            sam.restore()
        if cfg.train.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), cfg.train.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.lookahead is not None:
            self.lookahead.step(self.model, self.step + 1)  # the steps taken, this one included
        if self.ema is not None:
            self.ema.update_parameters(self.model)
        self.running.add(loss.detach(), logits.detach(), y, self.step)

    def _backward(self, x: torch.Tensor, y: torch.Tensor, sync: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
        """Forward (autocast), loss, fresh gradients by backward (scaled for fp16); returns (loss, logits)."""
        if self.replicas is not None:
            ls, aux = self.cfg.train.label_smoothing, self.aux_weight
            return self.replicas.backward(x, y, lambda m, xb, yb: classification_loss(m(xb), yb, ls, aux),
                                          lambda: autocast(self.device, self.amp_dtype))
        no_sync = getattr(self.step_model, "no_sync", None)
        with contextlib.nullcontext() if sync or no_sync is None else no_sync():
            with autocast(self.device, self.amp_dtype):
                loss, logits = classification_loss(self.step_model(x), y, self.cfg.train.label_smoothing,
                                                   self.aux_weight)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
        return loss, logits

    def _check_finite(self, lr: float) -> None:
        bad = int(self.running.first_bad_step)
        if bad >= 0:
            ck = self.run.latest_checkpoint()
            keep = f"the last good checkpoint is {ck}" if ck else "no checkpoint was written yet"
            raise TrainingDiverged(
                f"loss became non-finite at epoch {self.epoch + 1}, step {bad} (lr {lr:.4g}); {keep}; "
                f"lower the learning rate (--lr) or clip gradients (--set train.grad_clip=1.0)")

    def _show_progress(self, i: int, lr: float, seen: int, t0: float, sync_every: int) -> None:
        """Every ``sync_every`` batches: the finite check and the bar's numbers (both read the device)."""
        if i % sync_every == 0 or i + 1 == self.steps_per_epoch:
            self._check_finite(lr)
            loss, acc = self.running.means()
            elapsed = time.perf_counter() - t0
            self.progress.update(loss=f"{loss:.4f}", acc=f"{acc:.4f}",
                                 img_s=f"{seen * self.world / max(elapsed, 1e-9):,.0f}")
        else:
            self.progress.update()

    def _stop_agreed(self) -> Optional[int]:
        """The signal to stop for, the same on every rank (see ``distributed.agreed_signal``)."""
        self._stop = dist.agreed_signal(self._stop, self.device)
        return self._stop

    def _stop_mid_epoch(self, t0: float) -> None:
        self.progress.close()
        self.train_seconds += time.perf_counter() - t0
        self.save(f"step-{self.step:08d}")
        raise Interrupted(self._stop, self.run_dir)

    def train_epoch(self) -> Dict[str, float]:
        cfg, loader = self.cfg, self.loaders.train
        self.model.train()
        skip = self.batch_in_epoch
        loader.set_epoch(self.epoch, start_batch=skip)
        if skip == 0:
            self.running = RunningSums(self.device)
        sync_every = 1 if self.device.type == "cpu" else 25
        self.progress.start(self.steps_per_epoch, f"epoch {self.epoch + 1}/{cfg.train.epochs}", skip)
        # The plateau schedule's factor for this epoch, from the validation history (the checkpoint stores it).
        plateau = plateau_factor(self.history[:self.epoch], cfg.schedule) if cfg.schedule.name == "plateau" else 1.0
        # The rate of the last step taken, for an epoch whose batches were all done before a resume.
        lr = cfg.optim.lr * lr_factor(max(self.step - 1, 0), self.steps_per_epoch, cfg.train.epochs, cfg.schedule,
                                      plateau)
        t0, seen = time.perf_counter(), 0
        with self.replicas.stepping() if self.replicas is not None else contextlib.nullcontext():
            # A resumed epoch starts at batch `skip`: order and augmentation are seeded per (epoch, batch).
            for i, (x, y) in enumerate(loader, start=skip):
                lr = set_lr(self.optimizer, cfg.optim.lr,
                            lr_factor(self.step, self.steps_per_epoch, cfg.train.epochs, cfg.schedule, plateau))
                if self.resizer is not None:
                    x = self.resizer(x, self.step)
                self.train_step(x, y)
                self.step += 1
                self.batch_in_epoch = i + 1
                seen += y.numel()
                self._show_progress(i, lr, seen, t0, sync_every)
                if _STEP_DELAY:
                    time.sleep(_STEP_DELAY)
                if self._stop_agreed() is not None:
                    self._stop_mid_epoch(t0)
        self.progress.close()
        self._check_finite(lr)
        secs = time.perf_counter() - t0
        self.train_seconds += secs
        loss, acc = self.running.totals()
        return {"train_loss": loss, "train_acc": acc, "lr": lr,
                "img_per_s": seen * self.world / max(secs, 1e-9), "seconds": secs}

    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model

    def validate(self) -> Dict[str, float]:
        if self.loaders.val is None:
            return {"val_loss": float("nan"), "val_acc": float("nan")}
        v = evaluate(self.eval_model(), self.loaders.val, len(self.classes), self.device, self.amp_dtype,
                     progress=self.cfg.run.progress if self.is_rank0 else "none", desc="validation")
        return {"val_loss": v["loss"], "val_acc": v["top1"]}

    def fit(self) -> Dict[str, Any]:
        cfg = self.cfg
        self.progress = Progress(cfg.run.progress, self.is_rank0)
        self.writer = self._tensorboard() if self.is_rank0 else None
        old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

        def handler(signum, frame):  # finish the step, checkpoint, exit
            self._stop = signum

        for s in old:
            signal.signal(s, handler)
        try:
            while self.epoch < cfg.train.epochs:
                trained = self.train_epoch()
                self._share_rank0_statistics()
                row = {"epoch": self.epoch + 1, **trained, **self.validate()}
                self.history.append(row)
                self.epoch += 1
                self.batch_in_epoch = 0
                self.log(self._epoch_line(row))
                self._freeze_after()
                self._write_metrics(row)
                self._track_best(row)
                self._log_plateau()
                stop_early = self._stops_early()
                stop = self._stop_agreed()
                if (self.epoch % cfg.run.checkpoint_every == 0 or self.epoch == cfg.train.epochs or stop_early
                        or stop is not None or self._enters_top()):
                    self.save(f"epoch-{self.epoch:04d}")
                if stop is not None:
                    raise Interrupted(stop, self.run_dir)
                if stop_early:
                    break
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            if self.writer is not None:
                self.writer.close()
            if self.replicas is not None:
                self.replicas.close()
        return self._finish()

    def _share_rank0_statistics(self) -> None:
        """DDP keeps the ranks' parameters equal, but each rank's BatchNorm updates its running statistics from its
        own batches (DDP copies rank 0's in before the next forward). After an epoch every rank takes rank 0's
        buffers (the EMA's and the lookahead's slow copy too), so that the ranks validate, decide (best epoch,
        plateau, early stop) and end on the same model, the one rank 0 saves."""
        if self.world == 1:
            return
        tensors = list(self.model.buffers())
        if self.ema is not None:
            tensors += list(self.ema.module.buffers())
        if self.lookahead is not None:
            tensors += list(self.lookahead.slow.values())
        dist.broadcast_from_rank0(tensors)

    def _track_best(self, row: Dict[str, Any]) -> None:
        """A better validation accuracy: remember the epoch and write its weights to ``checkpoints/best/``.

        Written before the epoch's checkpoint records the epoch as best, so a run killed in between replays the
        epoch (bit-identical) and writes the same best/ again.
        """
        if row["val_acc"] != row["val_acc"] or row["val_acc"] <= self.best_val:  # NaN (no validation) or no better
            return
        self.best_val, self.best_epoch = float(row["val_acc"]), int(row["epoch"])
        if self.is_rank0:
            self.run.save_best(self.eval_model(), dict(self.meta(), epoch=self.best_epoch, step=self.step,
                                                       val_acc=self.best_val, val_loss=float(row["val_loss"])))

    def _top_epochs(self) -> List[int]:
        """The ``train.keep_top`` best validation epochs so far (ties: the earlier epoch), best first."""
        n = self.cfg.train.keep_top
        rows = [r for r in self.history if r["val_acc"] == r["val_acc"]]
        return [int(r["epoch"]) for r in sorted(rows, key=lambda r: (-r["val_acc"], r["epoch"]))[:n]] if n else []

    def _top_tags(self) -> List[str]:
        """The checkpoints pruning keeps for ``train.keep_top``."""
        return [f"epoch-{e:04d}" for e in self._top_epochs()]

    def _enters_top(self) -> bool:
        """The epoch just finished is among the keep_top best: it gets a checkpoint, whatever checkpoint_every."""
        return self.epoch in self._top_epochs()

    def _log_plateau(self) -> None:
        """The plateau schedule's line when this epoch's validation lowers the rate."""
        sched = self.cfg.schedule
        if sched.name != "plateau":
            return
        steps = plateau_steps([r[sched.plateau_metric] for r in self.history], sched)
        if steps and steps[-1].reduced:
            before = steps[-2].factor if len(steps) > 1 else 1.0
            what = "accuracy" if sched.plateau_metric == "val_acc" else "loss"
            n = steps[-1].bad_epochs
            self.log(f"epoch {self.epoch}: validation {what} has not improved for {n} epoch{'s' * (n != 1)}: "
                     f"learning rate {self.cfg.optim.lr * before:.4g} -> {self.cfg.optim.lr * steps[-1].factor:.4g}")

    def _stops_early(self) -> bool:
        """``train.early_stop_patience`` epochs without an improvement above ``early_stop_min_delta``.

        Keras's rule, replayed from the history (so a resume decides alike): the reference is the last epoch that
        improved on it by more than the delta; with delta 0 that is the best epoch.
        """
        patience, delta = self.cfg.train.early_stop_patience, self.cfg.train.early_stop_min_delta
        if not patience or self.epoch >= self.cfg.train.epochs:
            return False
        ref, ref_epoch = -float("inf"), 0
        for r in self.history:
            if r["val_acc"] == r["val_acc"] and r["val_acc"] > ref + delta:
                ref, ref_epoch = float(r["val_acc"]), int(r["epoch"])
        if self.epoch - ref_epoch < patience:
            return False
        by = f" by more than {delta:g}" if delta else ""
        self.log(f"early stopping after epoch {self.epoch}: no better validation accuracy{by} for {patience} epochs "
                 f"(best {self.best_val:.4f} at epoch {self.best_epoch})")
        return True

    def _restore_best(self, model: nn.Module) -> None:
        """With keep_best: the best validation epoch's weights into ``model`` (on every rank), before the test.

        From ``checkpoints/best/``; a run begun before it existed and whose best epoch came before its resume has
        them in ``best.safetensors``.
        """
        if not self.cfg.train.keep_best or not self.best_epoch:
            return
        dist.barrier()  # rank 0 wrote the file
        path = self.run.best_weights()
        if path is not None and path != self.run.legacy_best and self.run.legacy_best.is_file():
            if read_weights_meta(path).get("epoch") != self.best_epoch:  # best/ is from after the resume: not it
                path = self.run.legacy_best
        if path is None:
            raise UserError(f"{self.run_dir} has no weights of its best epoch {self.best_epoch} (checkpoints/best/ "
                            "is missing); set train.keep_best=false to test the last weights")
        weights, _ = load_weights(path)
        model.load_state_dict(weights)
        self.log(f"keeping the weights of epoch {self.best_epoch} (best validation accuracy {self.best_val:.4f})")

    def _epoch_line(self, r: Dict[str, Any]) -> str:
        line = (f"epoch {r['epoch']}/{self.cfg.train.epochs}  loss {r['train_loss']:.3f}  acc {r['train_acc']:.3f}")
        if self.loaders.val is not None:
            line += f"  val_loss {r['val_loss']:.3f}  val_acc {r['val_acc']:.3f}"
        return line + f"  {r['img_per_s']:,.0f} img/s  {r['seconds']:.1f} s"

    def _tensorboard(self):
        if not self.cfg.run.tensorboard:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            self.log("tensorboard is not installed: no event files (pip install 'cnnzoo[tensorboard]')")
            return None
        return SummaryWriter(str(self.run.tensorboard))

    def _write_metrics(self, row: Dict[str, Any]) -> None:
        if not self.is_rank0:
            return
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in self.history:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
        write_text(self.run.metrics, buf.getvalue())
        if self.writer is not None:
            for k in TENSORBOARD_SCALARS:
                self.writer.add_scalar(k, row[k], row["epoch"])
            self.writer.flush()

    def _test(self, model: nn.Module) -> Dict[str, Any]:
        """The one look at the test split, after training."""
        t_test = time.perf_counter()
        tta = self.cfg.train.tta
        t = evaluate(model, self.loaders.test, len(self.classes), self.device, self.amp_dtype, tta,
                     progress=self.cfg.run.progress if self.is_rank0 else "none", desc="test")
        self.log(f"test  top1 {t['top1']:.4f}  top5 {t['top5']:.4f}  ({t['n']:,} images"
                 f"{', TTA ' + tta if tta else ''})")
        return {"test_top1": t["top1"], "test_top5": t["top5"], "test_loss": t["loss"], "tta": tta,
                "test_seconds": round(time.perf_counter() - t_test, 3)}

    def _finish(self) -> Dict[str, Any]:
        if self.lookahead is not None:
            self.lookahead.finish(self.model)
        model = self.eval_model()
        self._restore_best(model)
        results: Dict[str, Any] = {
            "model": self.model_name, "data": self.cfg.data.name, "params": sum(p.numel() for p in model.parameters()),
            "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "epochs": self.epoch, "image_size": list(self.image_size), "device": str(self.device),
            "precision": precision_name(self.amp_dtype),
            "train_seconds": round(self.train_seconds, 3), "data_seconds": round(self.data_seconds, 3),
        }
        if self.history:
            kept = self.history[self.best_epoch - 1] if self.cfg.train.keep_best and self.best_epoch else self.history[-1]
            results.update(train_acc=kept["train_acc"], val_top1=kept["val_acc"], val_loss=kept["val_loss"],
                           img_per_s=sum(r["img_per_s"] for r in self.history) / len(self.history))
            if self.best_epoch:
                results.update(best_epoch=self.best_epoch, best_val_top1=self.best_val,
                               weights_epoch=self.best_epoch if self.cfg.train.keep_best else self.epoch)
        if self.loaders.test is not None:
            results.update(self._test(model))
        if self.world > 1:
            results["world_size"] = self.world
            results["global_batch"] = self.loaders.train.batch_size * self.world
            results["ranks_identical"] = dist.params_identical(self.model)
        # Across resumes: every process's wall time, so total_seconds >= train_seconds always holds.
        results["total_seconds"] = round(max(self.wall_before + time.perf_counter() - self.t_process,
                                             self.train_seconds + self.data_seconds), 3)
        if self.is_rank0:
            self._write_outputs(model, results)
        return results

    def _write_outputs(self, model: nn.Module, results: Dict[str, Any]) -> None:
        save_weights(self.run.weights, model, self.meta())
        self.run.write_json(self.run.results, results)
        # The package's one import up the layers (train -> viz): a run's curves.png is drawn when it ends.
        from ..viz.curves import plot_run_curves

        plot_run_curves(self.run.metrics, self.run.curves)
        self.log(f"run saved to {self.run_dir}")


# ----------------------------------------------------------------------------------------- entry point


def _default_run_dir(cfg: Config) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.model.name}-{cfg.data.name}-{stamp}"


def prepare_run_dir(cfg: Config, resume: Optional[str], overwrite: bool) -> Tuple[Config, Path]:
    """Decide the run directory and, for a resume, the config to continue with."""
    if resume:
        run = RunDir(resume)
        if not run.config.is_file():
            raise UserError(f"cannot resume {run}: no config.yaml there; is it a cnnzoo run directory?")
        done = run.checkpoint_epoch()
        if done is None:
            raise UserError(f"cannot resume {run}: it stopped before its first checkpoint, so there is nothing to "
                            f"continue; start it again with `cnnzoo train -c {run.config} --output {run} --overwrite`")
        stored = load_config(str(run.config))  # the recipe reader: a damaged config.yaml is one line naming it
        bad = resume_conflicts(stored, cfg)
        if bad:
            raise UserError(f"cannot resume {run} with a changed config: {'; '.join(bad[:3])}; "
                            "start a new run (--output NEW_DIR) instead")
        # Killed after its last checkpoint but before results.json: resuming runs the test pass and writes it.
        unfinished = done == cfg.train.epochs and not run.results.is_file()
        if done >= cfg.train.epochs and not unfinished:
            what = "has finished its" if run.results.is_file() else "has trained"
            raise UserError(f"{run} {what} {done} epochs, so --resume has nothing to do; to train on, pass --epochs "
                            f"with more than {done} (nothing was changed)")
        stored.train.epochs = cfg.train.epochs
        stored.run = cfg.run
        stored.run.output = str(run.root)
        return stored, run.root
    run = RunDir(cfg.run.output if cfg.run.output else _default_run_dir(cfg))
    if not run.is_empty() and not overwrite:
        if run.latest_checkpoint() is not None:
            raise UserError(f"run directory {run} already exists; use --resume {run} to continue it, "
                            "--overwrite to replace it, or --output to choose another")
        raise UserError(f"run directory {run} already exists and holds no checkpoint to resume; --overwrite to "
                        "start it again, or --output to choose another")
    cfg.run.output = str(run.root)
    return cfg, run.root


def fit(cfg: Config, resume: Optional[str] = None, overwrite: bool = False,
        log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Train according to ``cfg``; returns the results (also written to ``results.json``).

    The run directory is locked for the whole run (rank 0 holds it: a second process refuses). ``overwrite``
    moves the old run aside only once the config, the model and the data are known to be good, and deletes it
    once the new run has written its first checkpoint; a run that fails before that puts the old one back.
    """
    dist.init_from_env()
    if resume:
        if not Path(resume).is_dir():
            raise UserError(f"cannot resume {resume}: no such directory")
        root = Path(resume)
    else:
        cfg.run.output = cfg.run.output or str(_default_run_dir(cfg))
        root = Path(cfg.run.output)
    run = RunDir(root)
    created = not root.exists()
    try:
        with run.lock() if dist.rank() == 0 else contextlib.nullcontext():
            return _fit_locked(cfg, run, resume, overwrite, log)
    finally:
        if created and root.is_dir() and run.is_empty():  # nothing was written: leave no empty directory behind
            (root / RunDir.LOCK).unlink(missing_ok=True)
            try:
                root.rmdir()
            except OSError:
                pass


def _fit_locked(cfg: Config, run: RunDir, resume: Optional[str], overwrite: bool,
                log: Callable[[str], None]) -> Dict[str, Any]:
    cfg, _ = prepare_run_dir(cfg, resume, overwrite)
    dist.barrier()  # every rank has checked the run directory before rank 0 writes into it
    trainer = Trainer(cfg, run, resume=bool(resume), log=log)
    trainer.setup()
    aside = None
    if trainer.is_rank0:
        if overwrite and not resume:
            aside = run.set_aside()
            if aside is not None:
                trainer.on_first_checkpoint = lambda: run.drop_aside(aside)
        run.root.mkdir(parents=True, exist_ok=True)
        write_text(run.config, yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
        trainer.log(trainer.header())
    try:
        return trainer.fit()
    except BaseException:
        if aside is not None and aside.exists():  # no checkpoint of the new run yet: the old run comes back
            run.restore_aside(aside)
            trainer.log(f"the new run failed before its first checkpoint: {run} is as it was")
        raise
    finally:
        dist.barrier()
