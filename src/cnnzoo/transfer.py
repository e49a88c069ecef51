"""Transfer learning: pretrained weights, freezing, and the two-stage fine-tuning recipe.

``finetune(cfg, ...)`` is the recipe of ``cnnzoo finetune`` (the command is a thin wrapper): stage 1 trains only
the classifier (the body frozen, a large learning rate); stage 2 unfreezes the network (all of it, or from a
chosen stage on) and fine-tunes it, optionally with discriminative per-stage rates. Both stages are ordinary
training runs, kept in ``RUN_DIR/stage1`` and ``RUN_DIR/stage2``; the final weights and results are copied to
``RUN_DIR`` itself, so ``eval``, ``predict`` and ``viz`` take ``RUN_DIR`` as they take any run.

Loading weights is the builder's (:mod:`cnnzoo.pretrained`) and freezing the trainer's
(:mod:`cnnzoo.train.freeze`); both are re-exported here under the names the docs use. So is VGG's warm start
(:func:`warm_start`, Simonyan & Zisserman section 3.1: a deeper VGG started from the first four convolutional
layers and the three FC layers of a trained VGG-11), which lives in :mod:`cnnzoo.builder` because the trainer,
below this module, applies it for ``model.warm_start``.
"""

from __future__ import annotations

import copy
import shutil
from typing import Any, Callable, Dict, List, Optional

from .builder import WarmStart, model_info, warm_start
from .errors import ParamError, UserError
from .io import RunDir, atomic_write
from .pretrained import LoadReport, adapt_input_conv, load_pretrained, read_state_dict
from .train.config import Config
from .train.freeze import format_table, freeze, freeze_bn, stage_lr_scale, trainable_table
from .train.trainer import fit, prepare_run_dir
from .viz.curves import plot_run_curves

__all__ = ["finetune", "warm_start", "WarmStart", "LoadReport", "read_state_dict", "load_pretrained", "adapt_input_conv",
           "freeze", "freeze_bn", "trainable_table", "format_table", "stage_lr_scale"]


def _first_frozen_stage(stages: List[str], unfreeze: str) -> Optional[str]:
    """The last stage kept frozen when stage 2 trains from ``unfreeze`` on (None: train everything)."""
    if unfreeze == "all":
        return None
    i = stages.index(unfreeze)
    return stages[i - 1] if i > 0 else None


# Stage 2 fine-tunes the whole network at a tenth of stage 1's rate unless told otherwise: the pretrained body
# must move little (the Keras transfer-learning guide trains the head at 1e-3 and fine-tunes at 1e-5 with Adam;
# with SGD and momentum, as here, 1e-2 then 1e-3 is the usual pair).
STAGE2_LR_FACTOR = 0.1


def _join_metrics(runs: List[RunDir], root: RunDir) -> None:
    """The stages' metrics.csv one after the other (epochs counted on, a ``stage`` column) and their curves."""
    import csv
    import io

    rows: List[Dict[str, str]] = []
    offset = 0
    for n, run in enumerate(runs, start=1):
        with open(run.metrics, newline="") as f:
            stage_rows = list(csv.DictReader(f))
        for r in stage_rows:
            rows.append({"stage": str(n), **r, "epoch": str(int(r["epoch"]) + offset)})
        offset += len(stage_rows)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["stage", "epoch"])
    w.writeheader()
    w.writerows(rows)
    root.write_text(root.metrics, buf.getvalue())
    plot_run_curves(root.metrics, root.curves)


def finetune(cfg: Config, *, head_epochs: int = 3, head_lr: float = 1e-2, lr: Optional[float] = None,
             unfreeze: str = "all", stage_lr_decay: Optional[float] = None, freeze_bn: bool = False,
             keep_best: bool = True, patience: Optional[int] = None, overwrite: bool = False,
             log: Callable[[str], None] = print) -> Dict[str, Any]:
    """Fine-tune ``cfg.model.pretrained`` on ``cfg.data`` in two stages; returns the final results.

    Args:
        cfg: a validated training config; ``cfg.model.pretrained`` names the weights to start from,
            ``cfg.train.epochs`` is stage 2's.
        head_epochs: stage 1's epochs, classifier only (0 skips stage 1).
        head_lr: stage 1's learning rate.
        lr: stage 2's learning rate (default: ``head_lr`` x 0.1).
        keep_best: each stage keeps (and hands on) the weights of its best validation epoch, not its last.
        patience: stop a stage after this many epochs without a better validation accuracy.
        unfreeze: stage 2 trains ``"all"`` the network, ``"none"`` of it (a linear probe: stage 1 only), or the
            stages from this one on (the earlier ones stay frozen).
        stage_lr_decay: stage 2: each earlier stage gets this times the next one's learning rate.
        freeze_bn: keep BatchNorm statistics and affine parameters frozen in both stages.
        overwrite: replace an existing run directory.
        log: where progress lines go.

    Raises:
        ParamError: a missing ``pretrained``, a negative ``head_epochs``, an ``unfreeze`` that is no stage, or
            nothing to train; all before any training.
    """
    if not cfg.model.pretrained:
        raise ParamError("pretrained", None, "fine-tuning starts from weights: a run directory, a .safetensors file "
                         "or a torchvision/timm .pth state dict")
    if head_epochs < 0:
        raise ParamError("head_epochs", head_epochs, "must be >= 0")
    stages = list(model_info(cfg.model.name).stages)
    if unfreeze not in ("all", "none", *stages):
        raise ParamError("unfreeze", unfreeze, f"is neither all, none nor a stage of {cfg.model.name} "
                         f"({', '.join(stages)})")
    if head_epochs == 0 and unfreeze == "none":
        raise ParamError("unfreeze", unfreeze, "with head_epochs=0 leaves nothing to train")
    if head_lr <= 0 or (lr is not None and lr <= 0):
        raise ParamError("head_lr" if head_lr <= 0 else "lr", head_lr if head_lr <= 0 else lr, "must be positive")
    if (keep_best or patience) and cfg.data.val_split <= 0:
        raise ParamError("keep_best", keep_best, "chooses by validation accuracy: set data.val_split > 0")
    cfg, root_path = prepare_run_dir(copy.deepcopy(cfg), None, overwrite)
    root = RunDir(root_path)
    with root.lock():
        aside = root.set_aside() if overwrite else None
        try:
            results = _two_stages(cfg, root, stages, head_epochs, head_lr, lr, unfreeze, stage_lr_decay, freeze_bn,
                                  keep_best, patience, log)
        except BaseException:
            if aside is not None:  # the old fine-tune comes back whole
                root.restore_aside(aside)
            raise
        if aside is not None:
            root.drop_aside(aside)
    return results


def _two_stages(cfg: Config, root: RunDir, stages: List[str], head_epochs: int, head_lr: float,
                lr: Optional[float], unfreeze: str, stage_lr_decay: Optional[float], freeze_bn: bool,
                keep_best: bool, patience: Optional[int], log: Callable[[str], None]) -> Dict[str, Any]:
    if freeze_bn:
        cfg.model.freeze_bn = True
    cfg.train.keep_best = keep_best
    cfg.train.early_stopping = patience
    cfg.optim.lr = lr if lr is not None else head_lr * STAGE2_LR_FACTOR

    runs: List[RunDir] = []
    if head_epochs > 0:
        s1 = copy.deepcopy(cfg)
        s1.train.epochs = head_epochs
        s1.optim.lr = head_lr
        s1.model.freeze_until = stages[-2]
        s1.run.output = str(root.stage(1))
        log(f"stage 1: head only, {head_epochs} epochs at lr {head_lr}")
        fit(s1, log=log)
        runs.append(root.stage(1))
    if unfreeze != "none":
        s2 = copy.deepcopy(cfg)
        if runs:
            s2.model.pretrained = str(runs[-1])
        s2.model.freeze_until = _first_frozen_stage(stages, unfreeze)
        if stage_lr_decay:
            s2.optim.stage_lr_decay = stage_lr_decay
        s2.run.output = str(root.stage(2))
        log(f"stage 2: training {'everything' if unfreeze == 'all' else 'from ' + unfreeze}, "
            f"{s2.train.epochs} epochs at lr {s2.optim.lr:g}")
        fit(s2, log=log)
        runs.append(root.stage(2))
    last = runs[-1]
    for src, dst in ((last.weights, root.weights), (last.config, root.config)):
        atomic_write(dst, lambda tmp, src=src: shutil.copy2(src, tmp))
    _join_metrics(runs, root)
    results = last.read_json(last.results)
    if not results:
        raise UserError(f"{last.root} has no results.json after training")
    results["stages"] = [r.read_json(r.results) for r in runs]
    results["train_seconds"] = sum(s["train_seconds"] for s in results["stages"])
    root.write_json(root.results, results)
    log(f"fine-tuned run saved to {root}")
    return results
