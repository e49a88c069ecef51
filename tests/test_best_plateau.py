"""Checkpoints and schedules tied to validation: checkpoints/best/, keep_top, early stopping, the plateau schedule;
progress bars; discriminative learning rates reaching every parameter.

Validation accuracy is scripted where a test needs known numbers (``Trainer.validate`` patched): the decisions
(best epoch, pruning, stopping, the rate) follow from the history alone, which is what makes them resumable.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch
from torch import nn

from cnnzoo.errors import UserError
from cnnzoo.io import Progress, RunDir, load_state, load_weights, progress_enabled, read_weights_meta
from cnnzoo.train.config import load_config
from cnnzoo.train.optim import lr_factor, param_groups, plateau_factor, plateau_steps
from cnnzoo.train.trainer import Interrupted, Trainer, fit


def tiny_cfg(out: Path, **over):
    """LeNet-5 on 20 digits per class: an epoch is a fraction of a second."""
    ov = {"model.name": "lenet5", "data.name": "digits", "data.per_class": 20, "train.epochs": 4,
          "data.batch_size": 50, "optim.lr": 0.05, "schedule.name": "constant", "run.output": str(out),
          "run.progress": "none", "train.precision": "fp32"}
    ov.update(over)
    return load_config(None, ov)


def scripted(monkeypatch, accs):
    """``Trainer.validate`` returns ``accs[epoch]`` (and a loss falling with it)."""
    def validate(self):
        a = accs[self.epoch]
        return {"val_loss": 1.0 - a, "val_acc": a}

    monkeypatch.setattr(Trainer, "validate", validate)


def weights(path: Path):
    return load_weights(path)[0]


def same(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------------------- best/, keep_top


def test_best_is_the_best_epoch_survives_pruning_and_keep_top_keeps_n(tmp_path, monkeypatch):
    scripted(monkeypatch, [0.5, 0.8, 0.6, 0.7, 0.55, 0.52])
    out = tmp_path / "run"
    res = fit(tiny_cfg(out, **{"train.epochs": 6, "train.keep_top": 2, "train.keep_best": True}), log=lambda m: None)
    run = RunDir(out)
    meta = read_weights_meta(run.best / RunDir.WEIGHTS)
    assert meta["epoch"] == 2 and meta["val_acc"] == 0.8  # not replaced by epochs 3-6, all worse
    # keep_top 2: the best epochs (2, 4) stay beside the newest two (5, 6); epochs 1 and 3 are pruned.
    kept = sorted(d.name for d in run.checkpoints.iterdir() if d.is_dir())
    assert kept == ["best", "epoch-0002", "epoch-0004", "epoch-0005", "epoch-0006"]
    assert same(weights(run.best / RunDir.WEIGHTS), weights(run.checkpoints / "epoch-0002" / RunDir.WEIGHTS))
    # keep_best: the test pass and model.safetensors have epoch 2's weights; results.json says so.
    assert res["best_epoch"] == 2 and res["weights_epoch"] == 2 and res["val_top1"] == 0.8
    assert same(weights(run.weights), weights(run.best / RunDir.WEIGHTS))
    assert not run.legacy_best.exists()


def test_best_survives_pruning_without_keep_top(tmp_path, monkeypatch):
    scripted(monkeypatch, [0.9, 0.5, 0.6, 0.7])
    out = tmp_path / "run"
    res = fit(tiny_cfg(out), log=lambda m: None)
    run = RunDir(out)
    assert sorted(d.name for d in run.checkpoints.iterdir() if d.is_dir()) == ["best", "epoch-0003", "epoch-0004"]
    assert read_weights_meta(run.best / RunDir.WEIGHTS)["epoch"] == 1
    # Without keep_best the last weights are tested: they are not epoch 1's.
    assert res["weights_epoch"] == 4 and not same(weights(run.weights), weights(run.best / RunDir.WEIGHTS))


def test_best_write_is_atomic_and_a_kill_between_renames_is_recovered(tmp_path):
    run = RunDir(tmp_path)
    model = nn.Linear(2, 2)
    run.save_best(model, {"epoch": 1})
    with torch.no_grad():
        model.weight.add_(1)
    run.save_best(model, {"epoch": 3})
    assert read_weights_meta(run.best_weights())["epoch"] == 3
    assert [p.name for p in run.checkpoints.iterdir()] == ["best"]  # no temporary or old directory left
    os.replace(run.best, run.checkpoints / ".best.old-999")  # killed after moving the old one aside
    assert run.best_weights() == run.best / RunDir.WEIGHTS and read_weights_meta(run.best_weights())["epoch"] == 3


def test_an_old_runs_best_safetensors_is_still_read(tmp_path):
    from cnnzoo.io import save_weights

    run = RunDir(tmp_path)
    assert run.best_weights() is None
    save_weights(run.legacy_best, nn.Linear(2, 2), {"epoch": 2})
    assert run.best_weights() == run.legacy_best


# ----------------------------------------------------------------------------------------- early stopping


@pytest.mark.parametrize("over, epochs", [
    ({"train.early_stop_patience": 2}, 5),  # 0.505 and 0.51 improve: the best is epoch 3, two epochs later it stops
    ({"train.early_stop_patience": 2, "train.early_stop_min_delta": 0.02}, 3),  # +0.005, +0.01 are below the delta
    ({"train.early_stopping": 2, "train.early_stop_min_delta": 0.02}, 3),  # the older name is the same setting
])
def test_early_stop_patience_and_min_delta(tmp_path, monkeypatch, over, epochs):
    scripted(monkeypatch, [0.5, 0.505, 0.51, 0.51, 0.509, 0.5, 0.5, 0.5])
    lines = []
    res = fit(tiny_cfg(tmp_path / "run", **{"train.epochs": 8, **over}), log=lines.append)
    assert res["epochs"] == epochs
    assert any(ln.startswith(f"early stopping after epoch {epochs}:") for ln in lines)


def test_config_of_the_new_settings():
    cfg = load_config(None, {"train.early_stopping": 3})
    assert cfg.train.early_stop_patience == 3 and cfg.train.early_stopping == 3
    from cnnzoo.train.config import config_from_dict, config_to_dict

    old = config_from_dict({"train": {"early_stopping": 4}})  # an older run's config.yaml
    assert old.train.early_stop_patience == 4 and "early_stopping" not in config_to_dict(old)["train"]
    for over, message in [({"train.early_stop_patience": 0}, "train.early_stop_patience is a patience"),
                          ({"train.early_stop_min_delta": -0.1}, "train.early_stop_min_delta is an accuracy gain"),
                          ({"train.keep_top": -1}, "train.keep_top is a number of checkpoints"),
                          ({"schedule.plateau_metric": "val_top5"}, "schedule.plateau_metric must be one of"),
                          ({"schedule.patience": -1}, "schedule.patience is epochs"),
                          ({"schedule.cooldown": -1}, "schedule.cooldown is epochs"),
                          ({"schedule.threshold": -1}, "schedule.threshold is a relative improvement"),
                          ({"train.early_stop_patience": 2, "data.val_split": 0.0}, "set data.val_split > 0")]:
        with pytest.raises(UserError, match=message):
            load_config(None, over)


# ----------------------------------------------------------------------------------------- plateau


def plateau_cfg(**over):
    return load_config(None, {"schedule.name": "plateau", **over}).schedule


@pytest.mark.parametrize("over", [{}, {"schedule.patience": 0, "schedule.cooldown": 2},
                                  {"schedule.plateau_metric": "val_loss", "schedule.patience": 1,
                                   "schedule.gamma": 0.5, "schedule.min_lr": 0.2, "schedule.threshold": 0.01}])
def test_plateau_replays_torchs_reduce_lr_on_plateau(over):
    """The pure function against torch's stateful scheduler on the same values."""
    cfg = plateau_cfg(**over)
    g = torch.Generator().manual_seed(0)
    values = (torch.rand(40, generator=g) * 0.3 + torch.linspace(0, 0.5, 40)).tolist()
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(
        opt, mode="max" if cfg.plateau_metric == "val_acc" else "min", factor=cfg.gamma, patience=cfg.patience,
        threshold=cfg.threshold, threshold_mode="rel", cooldown=cfg.cooldown, min_lr=cfg.min_lr, eps=0)
    ours = plateau_steps(values, cfg)
    for v, step in zip(values, ours):
        ref.step(v)
        assert step.factor == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12)
    assert 1 < len({s.factor for s in ours})  # the sequence did reduce the rate


def test_plateau_reductions_at_the_right_epochs():
    cfg = plateau_cfg()  # patience 2: the third epoch without improvement reduces
    accs = [0.5, 0.6, 0.6, 0.6, 0.60003, 0.7, 0.7, 0.7, 0.7]  # +0.00003 is below the relative threshold 1e-4
    steps = plateau_steps(accs, cfg)
    assert [e + 1 for e, s in enumerate(steps) if s.reduced] == [5, 9]
    assert steps[4].bad_epochs == 3 and steps[4].factor == pytest.approx(0.1) and steps[-1].factor == pytest.approx(0.01)
    history = [{"val_acc": a, "val_loss": 1 - a} for a in accs]
    assert plateau_factor(history[:5], cfg) == pytest.approx(0.1) and plateau_factor([], cfg) == 1.0
    floor = plateau_steps([0.5] * 10, plateau_cfg(**{"schedule.patience": 0, "schedule.min_lr": 0.05}))
    assert [s.factor for s in floor][:4] == pytest.approx([1.0, 0.1, 0.05, 0.05]) and not floor[3].reduced
    # Warm-up still applies; after it the factor is the plateau's.
    warm = plateau_cfg(**{"schedule.warmup_epochs": 1})
    assert lr_factor(0, 10, 5, warm, 0.1) == pytest.approx(warm.warmup_start)
    assert lr_factor(15, 10, 5, warm, 0.1) == 0.1


def test_plateau_run_lowers_the_rate_logs_it_and_resumes_exactly(tmp_path):
    over = {"schedule.name": "plateau", "schedule.patience": 0, "train.keep_top": 1, "optim.lr": 0.2}
    lines = []
    full = fit(tiny_cfg(tmp_path / "full", **over), log=lines.append)
    history = json.loads(load_state(RunDir(tmp_path / "full").latest_checkpoint() / RunDir.STATE)["history"])
    cfg = tiny_cfg(tmp_path / "x", **over).schedule
    # Each epoch trained at lr x the factor of the history before it: the pure function, applied.
    for e, row in enumerate(history):
        assert row["lr"] == pytest.approx(0.2 * plateau_factor(history[:e], cfg))
    reduced = [e + 1 for e, s in enumerate(plateau_steps([r["val_acc"] for r in history], cfg)) if s.reduced]
    logged = [ln for ln in lines if "has not improved" in ln]
    assert reduced and reduced[0] > 2  # a reduction falls after the interruption below
    assert [int(ln.split(":")[0].split()[1]) for ln in logged] == reduced

    # Interrupted after epoch 2 (SIGINT: the checkpoint is written), then resumed: the same rates, weights, best/.
    def log(msg):
        if msg.startswith("epoch 2/4"):
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(Interrupted):
        fit(tiny_cfg(tmp_path / "part", **over), log=log)
    part = fit(tiny_cfg(tmp_path / "part", **over), resume=str(tmp_path / "part"), log=lambda m: None)
    a, b = RunDir(tmp_path / "full"), RunDir(tmp_path / "part")
    assert same(weights(a.weights), weights(b.weights))
    assert same(weights(a.best / RunDir.WEIGHTS), weights(b.best / RunDir.WEIGHTS))
    strip = lambda p: [",".join(r.split(",")[:6]) for r in p.read_text().splitlines()]  # noqa: E731 (timings)
    assert strip(a.metrics) == strip(b.metrics)
    for k in ("best_epoch", "best_val_top1", "test_top1", "weights_epoch"):
        assert full.get(k) == part.get(k)


def test_plateau_with_a_tiny_rate_reduces_every_epoch_after_the_first(tmp_path):
    """A rate that changes nothing: validation accuracy stays put, so with patience 0 every later epoch reduces."""
    lines = []
    fit(tiny_cfg(tmp_path / "run", **{"schedule.name": "plateau", "schedule.patience": 0, "optim.lr": 1e-9}),
        log=lines.append)
    assert [ln for ln in lines if "has not improved" in ln] == [
        "epoch 2: validation accuracy has not improved for 1 epoch: learning rate 1e-09 -> 1e-10",
        "epoch 3: validation accuracy has not improved for 1 epoch: learning rate 1e-10 -> 1e-11",
        "epoch 4: validation accuracy has not improved for 1 epoch: learning rate 1e-11 -> 1e-12"]


def test_plateau_without_validation_is_one_line_at_the_start(tmp_path):
    with pytest.raises(UserError, match=r"^schedule plateau needs validation: data.val_split > 0 or a val/ folder$"):
        fit(tiny_cfg(tmp_path / "run", **{"schedule.name": "plateau", "data.val_split": 0.0}), log=lambda m: None)
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------------------- progress


def test_progress_policy():
    class Stream:
        def __init__(self, tty):
            self.tty = tty

        def isatty(self):
            return self.tty

    assert progress_enabled("bar", Stream(False)) and not progress_enabled("none", Stream(True))
    assert progress_enabled("auto", Stream(True)) and not progress_enabled("auto", Stream(False))
    assert not progress_enabled("auto", object())  # a stream that cannot say: no bar


def _loader():
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(4, 3, generator=g), torch.randint(0, 3, (4,), generator=g)) for _ in range(3)]


def test_evaluate_draws_a_bar_only_when_asked_or_on_a_terminal(capsys):
    from cnnzoo.train.evaluate import evaluate

    model = nn.Linear(3, 3)
    plain = evaluate(model, _loader(), 3, torch.device("cpu"))
    auto = evaluate(model, _loader(), 3, torch.device("cpu"), progress="auto")
    cap = capsys.readouterr()
    assert cap.out == "" and cap.err == ""  # captured stderr is no terminal: nothing
    bar = evaluate(model, _loader(), 3, torch.device("cpu"), progress="bar", desc="validation")
    cap = capsys.readouterr()
    assert "validation:" in cap.err and "/3 [" in cap.err and cap.out == ""
    assert plain["top1"] == auto["top1"] == bar["top1"]


def test_progress_iterate_closes_its_bar_when_the_loop_stops_early(capsys):
    p = Progress("bar")
    for _ in p.iterate(range(5), desc="x"):
        break
    del _
    import gc

    gc.collect()
    assert p.bar is None


@pytest.mark.parametrize("mode", ["bar", "auto"])
def test_benchmark_and_compare_bars(capsys, mode):
    from cnnzoo.cli import main

    assert main(["benchmark", "lenet5", "-b", "2", "-i", "1x32x32", "--mode", "infer", "--repeats", "2",
                 "--steps", "1", "--warmup", "0", "--num-classes", "10", "--progress", mode]) == 0
    err = capsys.readouterr().err
    assert ("lenet5: infer" in err) == (mode == "bar")
    assert main(["compare", "lenet5", "--repeats", "1", "--batch-size", "1", "--progress", mode]) == 0
    err = capsys.readouterr().err
    assert ("timing" in err) == (mode == "bar")


# ----------------------------------------------------------------------------------------- stage learning rates


def test_stage_lr_decay_reaches_top_level_parameters_and_exact_prefixes():
    from cnnzoo import create_model
    from cnnzoo.train.freeze import stage_lr_scale

    model = create_model("vit_tiny_p4_32", num_classes=10)
    decay = 0.5
    scales = stage_lr_scale(model, decay)
    scale_of = {id(p): g["lr_scale"] for g in param_groups(model, 0.0, False, scales) for p in g["params"]}
    named = dict(model.named_parameters())
    stem = decay ** (len(model.stage_names) - 1)
    assert scale_of[id(named["class_token"])] == stem and scale_of[id(named["encoder.pos_embedding"])] == stem
    assert all(scale_of[id(p)] == 1.0 for n, p in named.items() if n.startswith("heads."))
    assert len(scale_of) == len(named)  # every parameter has its stage's scale

    toy = nn.Module()
    toy.conv1, toy.conv10 = nn.Linear(1, 1), nn.Linear(1, 1)
    groups = param_groups(toy, 0.0, False, {"conv1.": 0.1, "conv10": 0.5})
    got = {n: g["lr_scale"] for g in groups for p in g["params"] for n, q in toy.named_parameters() if q is p}
    assert got == {"conv1.weight": 0.1, "conv1.bias": 0.1, "conv10.weight": 0.5, "conv10.bias": 0.5}
    with pytest.raises(ValueError, match="'conv10.weight' is in no stage"):
        param_groups(toy, 0.0, False, {"conv1": 0.1})
