"""Training settings: one typed, validated object from defaults, a YAML recipe and overrides.

Defaults live here and only here. A recipe (``configs/*.yaml``) and ``--set section.key=value``
overrides may only name settings that exist, with values of the right type: an unknown key is
an error that suggests the closest one, never silently ignored.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import yaml

from ..choices import (DATASETS, INITS, NORMALIZE, OPTIMIZERS, PLATEAU_METRICS, PRECISIONS, PROGRESS, SCHEDULES,
                       TTA_MODES, canonical_dataset)
from ..data.augment import AugmentConfig
from ..errors import UserError

__all__ = ["Config", "load_config", "apply_overrides", "config_to_dict", "config_from_dict", "resume_conflicts"]


@dataclass
class ModelConfig:
    name: str = "lenet5"
    kwargs: Dict[str, Any] = field(default_factory=dict)  # architecture options: small_input, drop_rate, ...
    pretrained: Optional[str] = None  # weights to start from (see cnnzoo.transfer)
    init: str = "paper"  # one of cnnzoo.choices.INITS: paper = the family's own (cnnzoo.builder.initialize)
    warm_start: Optional[str] = None  # VGG: a run of a shallower VGG whose layers start this one (transfer.warm_start)
    freeze_until: Optional[str] = None  # freeze the stages up to and including this one (model_info stages)
    freeze: List[str] = field(default_factory=list)  # freeze parameters whose names match these wildcards
    freeze_bn: bool = False  # BatchNorm in eval mode with frozen affine parameters
    # Data-dependent initialisation by the model's own init_from_data hook (airbench: the whitening stem, frozen),
    # from this many training images drawn in a seeded order, normalised as training sees them, unaugmented.
    # All of them are held at once: lower the number for large images.
    data_init: bool = False
    data_init_images: int = 5000  # airbench's 5000


@dataclass
class DataConfig:
    name: str = "digits"  # one of cnnzoo.choices.DATASETS
    dir: Optional[str] = None  # where the files are (default: the dataset's usual places)
    download: bool = False  # fetch with torchvision's downloaders (needs a network)
    val_split: float = 0.1  # fraction of train held out for validation, stratified, seeded (folder: unless val/)
    per_class: Optional[int] = None  # keep only this many labelled training images per class (seeded)
    image_size: Optional[int] = None  # resize to this (default: what the model asks for)
    batch_size: int = 128
    eval_batch_size: Optional[int] = None  # default: 2 x batch_size
    drop_last: bool = True  # training: leave out each epoch's last partial batch (the header says how many)
    num_workers: int = 2  # folder datasets only: decoding processes
    cache: bool = True  # folder datasets: decode each image once into a memory-mapped cache (cnnzoo.data.cache)
    cache_dir: Optional[str] = None  # where the decoded cache goes (default: $CNNZOO_CACHE or ~/.cache/cnnzoo/decoded)
    max_bad_share: float = 0.01  # folder datasets: stop when more unreadable files than this share (and over 10)
    normalize: str = "auto"  # one of cnnzoo.choices.NORMALIZE: auto = the pretrained weights' mean/std where known
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # data.augment.hflip, ... (cnnzoo.data.augment)


@dataclass
class OptimConfig:
    name: str = "sgd"  # one of cnnzoo.choices.OPTIMIZERS
    lr: float = 0.05  # peak learning rate
    momentum: float = 0.9  # sgd, rmsprop
    nesterov: bool = False  # sgd
    weight_decay: float = 5e-4
    decay_norm_and_bias: bool = False  # False: no weight decay on norm and bias parameters
    betas: Tuple[float, float] = (0.9, 0.999)  # adam, adamw
    eps: float = 1e-8
    alpha: float = 0.99  # rmsprop smoothing
    stage_lr_decay: Optional[float] = None  # discriminative rates: each earlier stage gets this x the next one's
    # Normalisation-layer biases learn at this x their group's rate (airbench: 64); where they have weight decay it
    # is divided by the same number, so that lr x weight decay per step stays as it was.
    norm_bias_lr_scale: float = 1.0
    sam: bool = False  # sharpness-aware minimisation around the optimiser above (Foret et al. 2021; 2 passes a step)
    sam_rho: float = 0.05  # SAM's neighbourhood radius (the paper's default)


@dataclass
class ScheduleConfig:
    name: str = "cosine"  # one of cnnzoo.choices.SCHEDULES
    warmup_epochs: float = 0.0  # linear warm-up from warmup_start x lr
    warmup_start: float = 0.1
    step_size: float = 30.0  # step: epochs between decays
    milestones: List[float] = field(default_factory=lambda: [30.0, 60.0, 80.0])  # multistep, epochs
    gamma: float = 0.1  # step, multistep; exponential: per-epoch factor
    min_lr: float = 0.0  # cosine, plateau: floor, a fraction of the peak rate
    pct_start: float = 0.25  # onecycle: fraction of the run spent rising
    # plateau (torch's ReduceLROnPlateau): the rate x gamma after more than `patience` epochs without improvement
    patience: int = 2  # plateau: epochs without improvement tolerated
    plateau_metric: str = "val_acc"  # plateau: one of cnnzoo.choices.PLATEAU_METRICS
    threshold: float = 1e-4  # plateau: relative improvement that counts (torch's default)
    cooldown: int = 0  # plateau: epochs after a reduction that count no bad epochs


@dataclass
class TrainConfig:
    epochs: int = 10
    label_smoothing: float = 0.0
    aux_weight: Optional[float] = None  # auxiliary-head loss weight (default: the model's, 0.3 for GoogLeNet)
    ema: bool = False  # keep an exponential moving average of the weights, evaluate with it
    ema_decay: float = 0.999
    # Lookahead as airbench schedules it (cnnzoo.train.optim.Lookahead): every `lookahead_every` steps the slow
    # copy of the weights and BatchNorm statistics moves towards the trained ones by 1 - d_t, with
    # d_t = lookahead_decay x (step / total steps)^3, and training continues from it; the run ends on the slow
    # copy. With train.ema the average follows the weights as they are after each step, and is what is evaluated.
    lookahead: bool = False
    lookahead_every: int = 5  # steps between lookahead updates
    lookahead_decay: float = 0.7737809375  # 0.95 ** 5 (exactly): airbench's 0.95 per step, over 5 steps an update
    freeze_bn_scale: bool = False  # every BatchNorm's weight fixed at 1 (airbench), out of the optimiser
    # Every BatchNorm's PyTorch momentum (the new batch's share of the running statistics); None: the model's own.
    # airbench's "momentum 0.6" is the old statistics' share in its convention: PyTorch momentum 0.4.
    bn_momentum: Optional[float] = None
    # {parameter wildcard: epochs}: after that many epochs the matching parameters (names as in model.freeze) stop
    # training (airbench: {"stem.0.bias": 3}). --set train.freeze_after.stem.0.bias=3 sets one entry;
    # --set 'train.freeze_after={"stem.0.bias": 3}' the whole mapping.
    freeze_after: Dict[str, int] = field(default_factory=dict)
    # Progressive resizing (cnnzoo.train.progressive): training batches at progressive_scale x the image side for
    # the first progressive_delay of the steps, growing linearly to full size by the last progressive_finetune of
    # them, sides rounded to multiples of progressive_increment. Validation and test stay at full size. 1.0: off.
    progressive_scale: float = 1.0
    progressive_delay: float = 0.5
    progressive_finetune: float = 0.2
    progressive_increment: int = 4
    precision: str = "auto"  # one of cnnzoo.choices.PRECISIONS (fp16: CUDA only, with a gradient scaler)
    channels_last: bool = True
    # CPU: convolutions with at most a few output positions (runtime.MATMUL_CONV_MAX_HW) as one matrix product of
    # their patches (runtime.use_matmul_convs), where oneDNN's convolutions are slow; the weights are unchanged.
    matmul_conv: bool = True
    # CPU: the batch split over this many model replicas, each stepping its share in its own thread on its share
    # of the cores (cnnzoo.train.replicas; BatchNorm per share, as over DDP ranks). 1: off.
    replicas: int = 1
    grad_clip: Optional[float] = None  # max global gradient norm
    compile: bool = False  # torch.compile the model
    cudnn_benchmark: bool = True  # CUDA: time cuDNN's algorithms for each new shape (slower first steps)
    seed: int = 0
    deterministic: bool = False  # deterministic algorithms (bit-exact reruns and resumes)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    sync_bn: bool = False  # distributed: SyncBatchNorm (batch statistics over all ranks)
    keep_best: bool = False  # test and keep the weights of the epoch with the best validation accuracy
    keep_top: int = 0  # also keep the checkpoints of the N best validation epochs out of pruning
    # Stop after this many epochs without a better validation accuracy. `train.early_stopping` (the older name) is
    # the same setting: recipes and --set may use either, the value lives here only.
    early_stop_patience: Optional[int] = None
    early_stop_min_delta: float = 0.0  # early stopping: an improvement must exceed this (accuracy, absolute)
    tta: Optional[str] = None  # test-time augmentation of the final evaluation: one of cnnzoo.choices.TTA_MODES

    @property
    def early_stopping(self) -> Optional[int]:
        """The older name of :attr:`early_stop_patience` (the same value)."""
        return self.early_stop_patience

    @early_stopping.setter
    def early_stopping(self, value: Optional[int]) -> None:
        self.early_stop_patience = value


@dataclass
class RunConfig:
    output: Optional[str] = None  # run directory (default: runs/<model>-<data>-<time>)
    checkpoint_every: int = 1  # epochs between checkpoints
    tensorboard: bool = False  # TensorBoard event files (needs the tensorboard extra)
    progress: str = "auto"  # one of cnnzoo.choices.PROGRESS: a bar on a terminal (auto), always (bar), never (none)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run: RunConfig = field(default_factory=RunConfig)


# Short forms accepted by ``--set`` and in recipes: ``opt.lr`` is ``optim.lr``.
ALIASES = {"opt": "optim", "sched": "schedule"}
# Keys of older run directories' config.yaml, before augmentation had its own section.
MOVED = {f"data.{f.name}": f"data.augment.{f.name}" for f in fields(AugmentConfig)}
MOVED["train.early_stopping"] = "train.early_stop_patience"  # the older name of the setting

# Settings a resumed run may change; anything else must match the stored config.
RESUME_MUTABLE = {"train.epochs", "run.output", "run.progress", "run.tensorboard", "run.checkpoint_every",
                  "data.num_workers", "data.dir", "data.download", "train.device", "data.eval_batch_size",
                  "data.cache", "data.cache_dir"}  # the decoded cache changes speed only (tested)

# Each list of choices is declared once, in cnnzoo.choices; validation here and argparse read it.
CHOICES = {
    "model.init": INITS,
    "data.name": DATASETS,
    "optim.name": OPTIMIZERS,
    "schedule.name": SCHEDULES,
    "schedule.plateau_metric": PLATEAU_METRICS,
    "train.precision": PRECISIONS,
    "run.progress": PROGRESS,
    "data.normalize": NORMALIZE,
    "train.tta": (None, *TTA_MODES),
}


def _suggest(word: str, options) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(options)}"


def _check_type(value: Any, tp: Any, key: str) -> Any:
    """Return ``value`` converted to ``tp`` where lossless (int -> float), else raise UserError."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Union:
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _check_type(value, inner[0], key)
    if tp is Any:
        return value
    bad = UserError(f"config key {key!r} must be {_type_name(tp)}, got {value!r}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise bad
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad
    if origin in (list, List):
        if isinstance(value, (list, tuple)):
            return [_check_type(v, args[0], key) for v in value]
        raise bad
    if origin in (tuple, Tuple):
        if isinstance(value, (list, tuple)) and len(value) == len(args):
            return tuple(_check_type(v, a, key) for v, a in zip(value, args))
        raise bad
    if origin in (dict, Dict):
        if isinstance(value, dict):
            return dict(value)
        raise bad
    return value


def _type_name(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Union:
        return " or ".join(_type_name(a) for a in args)
    if tp is type(None):
        return "null"
    if origin is not None:
        return f"a {origin.__name__} of {', '.join(_type_name(a) for a in args)}"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(tp, str(tp))


def _hints(cls) -> Dict[str, Any]:
    return typing.get_type_hints(cls)


def _set(cfg: Config, key: str, value: Any) -> None:
    parts = key.split(".")
    if parts[0] in ALIASES:
        parts[0] = ALIASES[parts[0]]
    key = ".".join(parts)
    for old, new in MOVED.items():
        if key == old or key.startswith(old + "."):
            parts = (new + key[len(old):]).split(".")
    sections = [f.name for f in fields(Config)]
    if parts[0] not in sections:
        raise UserError(f"unknown config section {parts[0]!r}{_suggest(parts[0], sections)}")
    if len(parts) == 1 and isinstance(value, dict):  # a whole section: each key by its full name, so MOVED applies
        for k, v in value.items():
            _set(cfg, f"{parts[0]}.{k}", v)
        return
    _set_in(getattr(cfg, parts[0]), parts[0], parts[1:], value)


def _set_in(section: Any, path: str, parts: List[str], value: Any) -> None:
    """Set ``parts`` (``["lr"]``, ``["augment", "hflip"]``) of the dataclass ``section`` called ``path``."""
    if not parts:
        if not isinstance(value, dict):
            raise UserError(f"config section {path!r} must be a mapping of settings")
        for k, v in value.items():
            _set_in(section, path, [str(k)], v)
        return
    name = parts[0]
    hints = _hints(type(section))
    if name not in hints:
        raise UserError(f"unknown config key '{path}.{name}'{_suggest(name, list(hints))}")
    full = f"{path}.{name}"
    current = getattr(section, name)
    if dataclasses.is_dataclass(current):  # a nested section: data.augment
        _set_in(current, full, parts[1:], value)
        return
    if len(parts) > 1:  # model.kwargs.small_input=true
        if hints[name] is not Dict[str, Any] and typing.get_origin(hints[name]) is not dict:
            raise UserError(f"config key {full!r} has no sub-keys")
        current[".".join(parts[1:])] = value
        return
    setattr(section, name, _check_type(value, hints[name], full))


def validate(cfg: Config) -> Config:
    """Range and choice checks, each failing with one line that says what to do."""
    cfg.data.name = canonical_dataset(cfg.data.name)
    for key, choices in CHOICES.items():
        sec, name = key.split(".")
        v = getattr(getattr(cfg, sec), name)
        if v not in choices:
            shown = ", ".join("null" if c is None else c for c in choices)
            raise UserError(f"{key} must be one of {shown}, got {v!r}")

    def need(cond: bool, msg: str) -> None:
        if not cond:
            raise UserError(msg)

    need(cfg.optim.lr > 0, f"optim.lr must be positive, got {cfg.optim.lr}")
    need(cfg.optim.weight_decay >= 0, f"optim.weight_decay must be >= 0, got {cfg.optim.weight_decay}")
    need(0 <= cfg.optim.momentum < 1, f"optim.momentum must be in [0, 1), got {cfg.optim.momentum}")
    need(cfg.data.batch_size >= 1, f"data.batch_size must be at least 1, got {cfg.data.batch_size}")
    need(cfg.data.eval_batch_size is None or cfg.data.eval_batch_size >= 1,
         f"data.eval_batch_size must be at least 1, got {cfg.data.eval_batch_size}")
    need(cfg.train.epochs >= 1, f"train.epochs must be at least 1, got {cfg.train.epochs}")
    need(0 <= cfg.data.val_split < 1, f"data.val_split must be in [0, 1), got {cfg.data.val_split}")
    need(0 <= cfg.train.label_smoothing < 1, f"train.label_smoothing must be in [0, 1), got {cfg.train.label_smoothing}")
    need(0 < cfg.train.ema_decay < 1, f"train.ema_decay must be in (0, 1), got {cfg.train.ema_decay}")
    need(cfg.train.grad_clip is None or cfg.train.grad_clip > 0, "train.grad_clip must be positive or null")
    need(cfg.schedule.warmup_epochs >= 0, "schedule.warmup_epochs must be >= 0")
    need(0 < cfg.schedule.gamma <= 1, f"schedule.gamma must be in (0, 1], got {cfg.schedule.gamma}")
    need(cfg.optim.sam_rho >= 0, f"optim.sam_rho is SAM's radius, >= 0, got {cfg.optim.sam_rho}")
    need(not (cfg.model.warm_start and cfg.model.pretrained),
         "model.warm_start and model.pretrained both give the starting weights; set one of them")
    need(cfg.optim.stage_lr_decay is None or 0 < cfg.optim.stage_lr_decay <= 1,
         "optim.stage_lr_decay must be in (0, 1]")
    need(cfg.data.per_class is None or cfg.data.per_class >= 1, "data.per_class must be at least 1")
    need(cfg.data.image_size is None or cfg.data.image_size >= 1, "data.image_size must be positive")
    need(0 <= cfg.data.max_bad_share < 1, f"data.max_bad_share is the share of unreadable images tolerated, in "
         f"[0, 1), got {cfg.data.max_bad_share}")
    need(cfg.data.num_workers >= 0, f"data.num_workers must be 0 or more, got {cfg.data.num_workers}")
    need(cfg.run.checkpoint_every >= 1, "run.checkpoint_every must be at least 1")
    need(cfg.schedule.step_size > 0, f"schedule.step_size is epochs between decays, above 0, got {cfg.schedule.step_size}")
    need(all(m >= 0 for m in cfg.schedule.milestones), f"schedule.milestones are epochs, >= 0: {cfg.schedule.milestones}")
    need(0 <= cfg.schedule.min_lr < 1, f"schedule.min_lr is a fraction of the peak rate, in [0, 1), got {cfg.schedule.min_lr}")
    need(0 <= cfg.schedule.warmup_start <= 1, f"schedule.warmup_start is a fraction of the peak rate, in [0, 1], "
         f"got {cfg.schedule.warmup_start}")
    need(0 < cfg.schedule.pct_start < 1, f"schedule.pct_start must be in (0, 1), got {cfg.schedule.pct_start}")
    need("init" not in cfg.model.kwargs, f"model.kwargs.init: the initialisation is model.init "
         f"(--set model.init={cfg.model.kwargs.get('init')}); remove it from model.kwargs")
    reserved = sorted(set(cfg.model.kwargs) & {"num_classes", "in_chans", "pretrained", "features_only", "out_indices"})
    need(not reserved, f"model.kwargs.{reserved[0] if reserved else ''} is set by the run itself (classes and channels come "
         "from the data, weights from model.pretrained); remove it from model.kwargs")
    need(cfg.train.early_stop_patience is None or cfg.train.early_stop_patience >= 1,
         f"train.early_stop_patience is a patience in epochs, at least 1, got {cfg.train.early_stop_patience}")
    need(cfg.train.early_stop_min_delta >= 0,
         f"train.early_stop_min_delta is an accuracy gain, >= 0, got {cfg.train.early_stop_min_delta}")
    need(cfg.train.keep_top >= 0, f"train.keep_top is a number of checkpoints, >= 0, got {cfg.train.keep_top}")
    # A folder's val/ gives validation without data.val_split: the trainer checks that case once the data is read.
    need(not (cfg.train.keep_best or cfg.train.early_stop_patience) or cfg.data.val_split > 0
         or cfg.data.name == "folder",
         "train.keep_best and train.early_stop_patience choose by validation accuracy: set data.val_split > 0")
    need(cfg.schedule.patience >= 0,
         f"schedule.patience is epochs without improvement, >= 0, got {cfg.schedule.patience}")
    need(cfg.schedule.threshold >= 0,
         f"schedule.threshold is a relative improvement, >= 0, got {cfg.schedule.threshold}")
    need(cfg.schedule.cooldown >= 0, f"schedule.cooldown is epochs, >= 0, got {cfg.schedule.cooldown}")
    need(cfg.model.data_init_images >= 1,
         f"model.data_init_images is a number of images, at least 1, got {cfg.model.data_init_images}")
    need(cfg.optim.norm_bias_lr_scale > 0,
         f"optim.norm_bias_lr_scale is a learning-rate multiplier, above 0, got {cfg.optim.norm_bias_lr_scale}")
    need(cfg.train.lookahead_every >= 1,
         f"train.lookahead_every is a number of steps, at least 1, got {cfg.train.lookahead_every}")
    need(0 <= cfg.train.lookahead_decay <= 1,
         f"train.lookahead_decay must be in [0, 1], got {cfg.train.lookahead_decay}")
    need(cfg.train.bn_momentum is None or 0 <= cfg.train.bn_momentum <= 1,
         f"train.bn_momentum is PyTorch's BatchNorm momentum, in [0, 1] (or null), got {cfg.train.bn_momentum}")
    need(0 < cfg.train.progressive_scale <= 1,
         f"train.progressive_scale is the starting side's fraction of the full one, in (0, 1] (1: off), got "
         f"{cfg.train.progressive_scale}")
    for key in ("progressive_delay", "progressive_finetune"):
        need(0 <= getattr(cfg.train, key) <= 1, f"train.{key} is a fraction of the steps, in [0, 1], got "
             f"{getattr(cfg.train, key)}")
    need(cfg.train.progressive_delay + cfg.train.progressive_finetune <= 1,
         f"train.progressive_delay + train.progressive_finetune is at most the whole run (1), got "
         f"{cfg.train.progressive_delay} + {cfg.train.progressive_finetune}")
    need(cfg.train.progressive_increment >= 1,
         f"train.progressive_increment is a number of pixels, at least 1, got {cfg.train.progressive_increment}")
    for pattern, epochs in cfg.train.freeze_after.items():  # a mapping's values are not type-checked when set
        need(isinstance(epochs, int) and not isinstance(epochs, bool) and epochs >= 0,
             f"train.freeze_after maps a parameter wildcard to a number of epochs (an integer >= 0); "
             f"{pattern!r} has {epochs!r}")
    need(cfg.train.replicas >= 1, f"train.replicas is a number of model replicas, at least 1, got {cfg.train.replicas}")
    need(cfg.train.replicas == 1 or not (cfg.optim.sam or cfg.train.compile),
         "train.replicas > 1 steps plain replicas in threads: it does not combine with optim.sam or train.compile; "
         "set train.replicas=1")
    cfg.data.augment.validate()
    return cfg


def parse_override(text: str) -> Tuple[str, Any]:
    """``"opt.lr=0.05"`` -> ``("opt.lr", 0.05)``; the value is read as YAML (numbers, true, null, [1, 2])."""
    if "=" not in text:
        raise UserError(f"--set takes key=value (e.g. --set optim.lr=0.05), got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def apply_overrides(cfg: Config, overrides: Dict[str, Any]) -> Config:
    for k, v in overrides.items():
        _set(cfg, k, v)
    return cfg


def config_from_dict(d: Dict[str, Any]) -> Config:
    cfg = Config()
    if not isinstance(d, dict):
        raise UserError("a config file must be a YAML mapping of sections (model:, data:, optim:, ...)")
    for k, v in d.items():
        _set(cfg, str(k), v)
    return cfg


def load_yaml(path: Union[str, Path]) -> Dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"config file {str(p)!r} not found; pass a YAML recipe such as configs/lenet5_fashion-mnist.yaml")
    try:
        d = yaml.safe_load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise UserError(f"{p} is not UTF-8 text (byte {e.start}: {e.reason}); save the recipe as UTF-8") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or "invalid YAML"
        raise UserError(f"YAML syntax error in {p}{where}: {problem}") from None
    return d or {}


def load_config(path: Optional[str] = None, overrides: Optional[Dict[str, Any]] = None) -> Config:
    """Defaults <- recipe file <- overrides, then validated."""
    cfg = config_from_dict(load_yaml(path)) if path else Config()
    return validate(apply_overrides(cfg, overrides or {}))


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v


def config_to_dict(cfg: Config) -> Dict[str, Any]:
    """The config as plain YAML-able data (tuples as lists)."""
    return _plain(dataclasses.asdict(cfg))


def resume_conflicts(stored: Config, new: Config) -> List[str]:
    """The settings that differ between a stored run and a resume request and may not."""
    a, b = _flat(config_to_dict(stored)), _flat(config_to_dict(new))
    return [f"{k} ({a[k]!r} -> {b[k]!r})" for k in a if k not in RESUME_MUTABLE and a[k] != b[k]]


def _flat(d: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    """``{"data": {"augment": {"hflip": True}}}`` -> ``{"data.augment.hflip": True}``; the settings that are
    mappings (``model.kwargs``, ``train.freeze_after``) stay whole."""
    out: Dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and key not in ("model.kwargs", "train.freeze_after"):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out
