"""``cnnzoo train``: train a model on a dataset into a run directory."""

from __future__ import annotations

import argparse
import os
import sys

from ..choices import DATASETS, INITS, PRECISIONS, canonical_dataset

# Common flags and the config key each one sets.
FLAGS = {
    "model": "model.name",
    "data": "data.name",
    "data_dir": "data.dir",
    "epochs": "train.epochs",
    "batch_size": "data.batch_size",
    "lr": "optim.lr",
    "output": "run.output",
    "seed": "train.seed",
    "device": "train.device",
    "precision": "train.precision",
    "val_split": "data.val_split",
    "pretrained": "model.pretrained",
    "init": "model.init",
    "warm_start": "model.warm_start",
    "image_size": "data.image_size",
}


def add_common(p: argparse.ArgumentParser) -> None:
    """The flags ``train`` and ``finetune`` share."""
    p.add_argument("-c", "--config", metavar="YAML", help="a recipe, e.g. configs/resnet20_fashion-mnist.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any setting, e.g. --set optim.lr=0.05 --set model.kwargs.drop_rate=0.2")
    p.add_argument("--model", help="registry name (cnnzoo list)")
    p.add_argument("--data", type=canonical_dataset, choices=DATASETS, metavar="DATA", help=" | ".join(DATASETS))
    p.add_argument("--data-dir", help="where the dataset's files are")
    p.add_argument("--download", action="store_true", help="download the dataset with torchvision (needs a network)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, help="peak learning rate")
    p.add_argument("--val-split", type=float, help="fraction of train held out for validation (default 0.1)")
    p.add_argument("--output", "-o", help="run directory (default runs/<model>-<data>-<time>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run where it stopped")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    p.add_argument("--seed", type=int)
    p.add_argument("--deterministic", action="store_true", help="deterministic algorithms: bit-exact reruns")
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--precision", choices=PRECISIONS)
    p.add_argument("--pretrained", metavar="TAG|PATH",
                   help="start from these weights: a catalogue tag (imagenet, tv1, ...: cnnzoo weights MODEL), a run "
                        "directory (its model, without --model), .safetensors or a torchvision/timm .pth; "
                        "see docs/transfer.md")
    p.add_argument("--no-progress", action="store_true", help="no progress bar, epoch lines only")
    p.add_argument("--tensorboard", action="store_true", help="write TensorBoard event files (needs tensorboard)")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model", description="Train a model on a dataset. Settings come from "
                       "defaults, a YAML recipe (-c), the flags below and --set overrides, in that order.")
    add_common(p)
    p.add_argument("--init", choices=INITS, help="initialisation: paper (the family's own, default), torchvision "
                   "(its twin's scheme), xavier_uniform, xavier_normal, kaiming_fan_in, kaiming_fan_out, dirac "
                   "(identity first filters, airbench); see docs/training.md")
    p.add_argument("--warm-start", metavar="RUN_DIR",
                   help="VGG: start from a trained shallower VGG's run: its first four conv and three FC layers, "
                        "the rest initialised (Simonyan & Zisserman section 3.1)")
    p.add_argument("--image-size", type=int, metavar="N",
                   help="train and evaluate at N x N pixels (data.image_size; default: the model's input size, or "
                        "the images' own size for small images, as the small-image plan says)")
    p.add_argument("--nproc", type=int, default=1, help="DDP worker processes on this machine (as torchrun --standalone starts them)")
    p.set_defaults(func=run)


def overrides_from_args(args: argparse.Namespace) -> dict:
    from ..train.config import parse_override

    ov = {}
    for flag, key in FLAGS.items():
        v = getattr(args, flag, None)
        if v is not None:
            ov[key] = v
    if args.download:
        ov["data.download"] = True
    if args.deterministic:
        ov["train.deterministic"] = True
    if args.no_progress:
        ov["run.progress"] = "none"
    if args.tensorboard:
        ov["run.tensorboard"] = True
    for item in args.set:
        k, v = parse_override(item)
        ov[k] = v
    return ov


def build_config(args: argparse.Namespace):
    from ..train.config import load_config

    config = args.config
    if args.resume and not config:
        config = os.path.join(args.resume, "config.yaml")
        if not os.path.isfile(config):
            from ..errors import UserError

            raise UserError(f"cannot resume {args.resume}: no config.yaml there; is it a cnnzoo run directory?")
    ov = overrides_from_args(args)
    if args.resume:
        ov.pop("run.output", None)
    cfg = load_config(config, ov)
    model_chosen = "model.name" in ov or (config and "name" in ((_yaml(config).get("model")) or {}))
    if cfg.model.pretrained and not model_chosen and not args.resume:
        # --pretrained RUN_DIR (or our .safetensors) without --model: the model those weights are of.
        from ..io import stored_meta

        meta = stored_meta(cfg.model.pretrained)
        if meta is not None:
            cfg.model.name = meta["model"]
    return cfg


def _yaml(path: str) -> dict:
    from ..train.config import load_yaml

    d = load_yaml(path)
    return d if isinstance(d, dict) else {}


def launch_workers(nproc: int) -> int:
    """Re-run this command as ``nproc`` DDP worker processes on this machine (``--nproc`` removed)."""
    from ..train.distributed import launch

    cleaned, skip = [], False
    for a in sys.argv[1:]:
        if skip:
            skip = False
            continue
        if a == "--nproc":
            skip = True
            continue
        if a.startswith("--nproc="):
            continue
        cleaned.append(a)
    return launch(nproc, cleaned)


def run(args: argparse.Namespace) -> int:
    from ..train.trainer import Interrupted, fit

    if getattr(args, "nproc", 1) > 1 and "RANK" not in os.environ:
        return launch_workers(args.nproc)
    cfg = build_config(args)
    try:
        fit(cfg, resume=args.resume, overwrite=args.overwrite)
    except Interrupted as e:
        if os.environ.get("RANK", "0") == "0":  # under torchrun every rank stops; one says so
            print(f"cnnzoo: {e}", file=sys.stderr)
        return 128 + e.signum
    return 0
