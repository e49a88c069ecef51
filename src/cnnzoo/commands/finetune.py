"""``cnnzoo finetune``: the two-stage transfer recipe in one command.

Stage 1 trains only the classifier (the body frozen, large learning rate); stage 2 unfreezes the
network (all of it, or from a chosen stage on) and fine-tunes with a smaller rate, optionally with
discriminative per-stage rates. Both stages are ordinary ``train`` runs, kept in
``RUN_DIR/stage1`` and ``RUN_DIR/stage2``; the final weights and results are copied to
``RUN_DIR`` itself, so ``eval``, ``predict`` and ``viz`` take ``RUN_DIR`` as they take any run.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
from pathlib import Path

from .train import add_common, build_config


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finetune", help="fine-tune pretrained weights in two stages",
                       description="Two-stage fine-tuning: train the head with the body frozen, then unfreeze and "
                       "fine-tune with a lower learning rate. Takes every `train` option; --pretrained is required "
                       "(a cnnzoo run or .safetensors, or a torchvision/timm state dict).")
    add_common(p)
    p.add_argument("--head-epochs", type=int, default=3, help="stage 1 epochs, head only (default 3; 0 skips)")
    p.add_argument("--head-lr", type=float, default=1e-2, help="stage 1 learning rate (default 1e-2)")
    p.add_argument("--unfreeze", default="all",
                   help="stage 2: 'all', 'none' (a linear probe: stage 1 only), or the first stage to train "
                        "(e.g. stage3: the earlier stages stay frozen)")
    p.add_argument("--stage-lr-decay", type=float, help="stage 2: each earlier stage gets this x the next's rate")
    p.add_argument("--freeze-bn", action="store_true", help="keep BatchNorm statistics and affine parameters frozen")
    p.set_defaults(func=run)


def _stages_before(name: str, stage: str):
    from ..registry import model_info

    stages = list(model_info(name).stages)
    if stage not in stages:
        from ..errors import UserError

        raise UserError(f"{name} has no stage {stage!r}; its stages are {', '.join(stages)}")
    i = stages.index(stage)
    return stages[i - 1] if i > 0 else None


def run(args: argparse.Namespace) -> int:
    from ..errors import UserError
    from ..registry import model_info
    from ..train.trainer import Interrupted, fit, prepare_run_dir

    cfg = build_config(args)
    if not cfg.model.pretrained:
        raise UserError("finetune needs --pretrained PATH (a run directory, .safetensors, or a .pth state dict)")
    if args.head_epochs < 0:
        raise UserError("--head-epochs must be >= 0")
    if args.resume:
        raise UserError("finetune cannot --resume; resume a stage with `cnnzoo train --resume RUN_DIR/stageN`")
    stages = list(model_info(cfg.model.name).stages)
    cfg, root = prepare_run_dir(cfg, None, args.overwrite)
    if args.overwrite and root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    if args.freeze_bn:
        cfg.model.freeze_bn = True

    runs = []
    try:
        if args.head_epochs > 0:
            s1 = copy.deepcopy(cfg)
            s1.train.epochs = args.head_epochs
            s1.optim.lr = args.head_lr
            s1.model.freeze_until = stages[-2]
            s1.run.output = str(root / "stage1")
            print(f"stage 1: head only, {args.head_epochs} epochs at lr {args.head_lr}")
            fit(s1)
            runs.append(Path(s1.run.output))
        if args.unfreeze != "none":
            s2 = copy.deepcopy(cfg)
            if runs:
                s2.model.pretrained = str(runs[-1])
            s2.model.freeze_until = None if args.unfreeze == "all" else _stages_before(cfg.model.name, args.unfreeze)
            if args.stage_lr_decay:
                s2.optim.stage_lr_decay = args.stage_lr_decay
            s2.run.output = str(root / "stage2")
            print(f"stage 2: training {'everything' if args.unfreeze == 'all' else 'from ' + args.unfreeze}, "
                  f"{s2.train.epochs} epochs at lr {s2.optim.lr}")
            fit(s2)
            runs.append(Path(s2.run.output))
    except Interrupted as e:
        print(f"cnnzoo: {e}", file=sys.stderr)
        return 128 + e.signum
    if not runs:
        raise UserError("nothing to train: --head-epochs 0 and --unfreeze none")
    last = runs[-1]
    for f in ("model.safetensors", "metrics.csv", "config.yaml", "curves.png"):
        if (last / f).exists():
            shutil.copy2(last / f, root / f)
    results = json.loads((last / "results.json").read_text())
    results["stages"] = [json.loads((r / "results.json").read_text()) for r in runs]
    results["train_seconds"] = sum(s["train_seconds"] for s in results["stages"])
    (root / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"fine-tuned run saved to {root}")
    return 0
