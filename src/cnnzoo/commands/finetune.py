"""``cnnzoo finetune``: the two-stage transfer recipe (:func:`cnnzoo.transfer.finetune`) from the command line."""

from __future__ import annotations

import argparse
import sys

from .train import add_common, build_config


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finetune", help="fine-tune pretrained weights in two stages",
                       description="Two-stage fine-tuning: train the head with the body frozen, then unfreeze and "
                       "fine-tune at a tenth of its rate (--lr sets stage 2's). Each stage keeps its best validation "
                       "epoch's weights. Takes every `train` option; --pretrained is required (a catalogue tag, a "
                       "cnnzoo run or .safetensors, or a torchvision/timm state dict).")
    add_common(p)
    p.add_argument("--head-epochs", type=int, default=3, help="stage 1 epochs, head only (default 3; 0 skips)")
    p.add_argument("--head-lr", type=float, default=1e-2, help="stage 1 learning rate (default 1e-2)")
    p.add_argument("--unfreeze", default="all",
                   help="stage 2: 'all', 'none' (a linear probe: stage 1 only), or the first stage to train "
                        "(e.g. stage3: the earlier stages stay frozen)")
    p.add_argument("--stage-lr-decay", type=float, help="stage 2: each earlier stage gets this x the next's rate")
    p.add_argument("--freeze-bn", action="store_true", help="keep BatchNorm statistics and affine parameters frozen")
    p.add_argument("--patience", type=int, help="stop a stage after this many epochs without a better val accuracy")
    p.add_argument("--keep-last", action="store_true",
                   help="keep each stage's last weights (default: its best validation epoch's)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import UserError
    from ..train.trainer import Interrupted
    from ..transfer import finetune

    if args.resume:
        raise UserError("finetune cannot --resume; resume a stage with `cnnzoo train --resume RUN_DIR/stageN`")
    cfg = build_config(args)
    try:
        finetune(cfg, head_epochs=args.head_epochs, head_lr=args.head_lr, lr=args.lr, unfreeze=args.unfreeze,
                 stage_lr_decay=args.stage_lr_decay, freeze_bn=args.freeze_bn, keep_best=not args.keep_last,
                 patience=args.patience, overwrite=args.overwrite)
    except Interrupted as e:
        print(f"cnnzoo: {e}", file=sys.stderr)
        return 128 + e.signum
    return 0
