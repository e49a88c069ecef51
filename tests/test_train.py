"""Training end to end on real data (scikit-learn's digits), config handling, checkpoints and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from cnnzoo.cli import main
from cnnzoo.errors import UserError
from cnnzoo.builder import load_model
from cnnzoo.io import RunDir, load_state, load_weights
from cnnzoo.train.config import Config, load_config, parse_override, resume_conflicts
from cnnzoo.train.optim import lr_factor
from cnnzoo.builder import create_model, plan_input
from cnnzoo import runtime as runtime_mod
from cnnzoo.runtime import has_depthwise_conv, resolve_precision
from cnnzoo.train.trainer import fit
from conftest import needs_fashion

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT / "src"), PYTHONUNBUFFERED="1")


def digits_cfg(out: Path, **over) -> Config:
    ov = {"model.name": "lenet5", "data.name": "digits", "train.epochs": 8, "data.batch_size": 64,
          "optim.lr": 0.05, "run.output": str(out), "run.progress": "none", "run.tensorboard": False,
          "train.precision": "fp32"}
    ov.update(over)
    return load_config(None, ov)


# ----------------------------------------------------------------------------------------- config


def test_config_defaults_and_overrides(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("model:\n  name: resnet20\noptim:\n  lr: 0.1\n  name: sgd\n")
    cfg = load_config(str(p), {"opt.lr": 0.05, "model.kwargs.drop_rate": 0.2, "sched.warmup_epochs": 1})
    assert cfg.model.name == "resnet20" and cfg.optim.lr == 0.05
    assert cfg.model.kwargs == {"drop_rate": 0.2} and cfg.schedule.warmup_epochs == 1.0


@pytest.mark.parametrize("overrides,message", [
    ({"optim.lrr": 0.1}, r"unknown config key 'optim.lrr'; did you mean 'lr'"),
    ({"optimizer.lr": 0.1}, r"unknown config section 'optimizer'; did you mean 'optim'"),
    ({"optim.lr": "fast"}, r"'optim.lr' must be a number, got 'fast'"),
    ({"optim.lr": -0.1}, r"optim.lr must be positive"),
    ({"data.batch_size": 0}, r"data.batch_size must be at least 1"),
    ({"train.epochs": 0}, r"train.epochs must be at least 1"),
    ({"train.epochs": 2.5}, r"'train.epochs' must be an integer"),
    ({"optim.name": "adagrad"}, r"optim.name must be one of sgd, adam, adamw, rmsprop"),
])
def test_config_errors(overrides, message):
    with pytest.raises(UserError, match=message):
        load_config(None, overrides)


def test_yaml_syntax_error_names_the_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("model:\n  name: lenet5\noptim:\n  lr: [0.1\n")
    with pytest.raises(UserError, match=r"YAML syntax error in .*bad.yaml at line \d+"):
        load_config(str(p))


def test_parse_override_types():
    assert parse_override("optim.lr=0.05") == ("optim.lr", 0.05)
    assert parse_override("train.ema=true") == ("train.ema", True)
    assert parse_override("schedule.milestones=[10, 20]") == ("schedule.milestones", [10, 20])
    with pytest.raises(UserError):
        parse_override("optim.lr")


def test_resume_conflicts():
    a, b = Config(), Config()
    b.train.epochs = 20
    assert resume_conflicts(a, b) == []
    b.model.name = "resnet20"
    assert any("model.name" in c for c in resume_conflicts(a, b))


@pytest.mark.parametrize("sched", ["constant", "step", "multistep", "exponential", "cosine", "onecycle"])
def test_schedules_are_sane(sched):
    cfg = load_config(None, {"schedule.name": sched, "schedule.warmup_epochs": 1 if sched != "onecycle" else 0,
                             "schedule.step_size": 3, "schedule.milestones": [3, 6]})
    f = [lr_factor(s, 10, 10, cfg.schedule) for s in range(100)]
    assert all(0 < v <= 1.0 + 1e-9 for v in f)
    if sched in ("cosine", "onecycle"):
        assert f[-1] < 0.05 and max(f) > 0.99
    if sched != "onecycle":
        assert f[0] == pytest.approx(0.1)  # warm-up starts at warmup_start x lr


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_on_cpu_is_chosen_per_model(monkeypatch, native):
    """auto on the CPU: bf16 where the CPU has native bf16 and the model no depthwise convolutions."""
    monkeypatch.setattr(runtime_mod, "cpu_has_native_bf16", lambda: native)
    cpu = torch.device("cpu")
    with torch.device("meta"):
        plain, depthwise = create_model("resnet18"), create_model("mobilenet_v2")
    assert not has_depthwise_conv(plain) and has_depthwise_conv(depthwise)
    assert resolve_precision("auto", cpu, plain) == (torch.bfloat16 if native else None)
    assert resolve_precision("auto", cpu, depthwise) is None
    assert resolve_precision("auto", cpu) is None  # no model: fp32
    assert resolve_precision("fp32", cpu, plain) is None and resolve_precision("bf16", cpu, depthwise) == torch.bfloat16
    with pytest.raises(UserError, match="fp16 training needs a CUDA device"):
        resolve_precision("fp16", cpu, plain)


@pytest.mark.parametrize("native", [True, False])
def test_bf16_asked_for_on_a_cpu_that_emulates_it_is_said(monkeypatch, native, tmp_path):
    """An explicit bf16 on a CPU without AVX512-BF16 or AMX runs, and the run says that PyTorch emulates it there
    (7-17x slower than fp32 measured on a Zen 3) and that auto picks fp32; fp32, auto and a GPU say nothing."""
    monkeypatch.setattr(runtime_mod, "cpu_has_native_bf16", lambda: native)
    cpu = torch.device("cpu")
    assert bool(runtime_mod.precision_note("bf16", cpu)) is not native
    assert not any(runtime_mod.precision_note(p, d) for p in ("auto", "fp32")
                   for d in (cpu, torch.device("cuda")))
    assert not runtime_mod.precision_note("bf16", torch.device("cuda"))
    lines = []
    cfg = load_config(None, {"model.name": "lenet5", "data.name": "digits", "train.epochs": 1,
                             "train.precision": "bf16", "run.output": str(tmp_path / "run"), "run.progress": "none"})
    fit(cfg, log=lines.append)
    said = [line for line in lines if "emulates" in line]
    assert len(said) == (0 if native else 1) and all("auto picks fp32" in line for line in said), lines[:3]


def test_plan_input_follows_model_info():
    assert plan_input("lenet5", 28).image_size == 28
    p = plan_input("resnet18", 28)
    assert p.kwargs == {"small_input": True} and p.image_size == 28
    assert plan_input("alexnet_owt", 28).image_size >= 63
    assert plan_input("lenet5", 8).image_size == 32  # digits: 8 px is below LeNet's minimum


# ----------------------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "lenet5-digits"
    results = fit(digits_cfg(out))
    return out, results


def test_lenet5_learns_digits(digits_run):
    out, results = digits_run
    assert results["val_top1"] >= 0.90, results
    assert results["test_top1"] >= 0.90, results
    for f in ("config.yaml", "metrics.csv", "results.json", "model.safetensors", "curves.png"):
        assert (out / f).is_file(), f
    rows = (out / "metrics.csv").read_text().splitlines()
    assert rows[0].split(",") == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "img_per_s",
                                  "seconds"]
    assert len(rows) == 1 + 8
    stored = yaml.safe_load((out / "config.yaml").read_text())
    assert stored["model"]["name"] == "lenet5" and stored["run"]["output"] == str(out)
    assert json.loads((out / "results.json").read_text())["test_top1"] == results["test_top1"]


@needs_fashion
def test_lenet5_learns_real_fashion_mnist(tmp_path):
    """The real IDX files, 300 labelled images per class, 4 epochs: tested on all 10,000 test images."""
    cfg = digits_cfg(tmp_path / "run", **{"data.name": "fashion-mnist", "data.per_class": 300, "train.epochs": 4,
                                          "data.batch_size": 64, "train.precision": "auto"})
    results = fit(cfg)
    assert results["image_size"] == [28, 28]
    assert results["test_top1"] >= 0.75, results  # chance is 0.10; a broken pipeline stays near it
    assert (tmp_path / "run" / "model.safetensors").is_file() and (tmp_path / "run" / "metrics.csv").is_file()


def test_weights_metadata_and_reload(digits_run):
    out, results = digits_run
    state, meta = load_weights(out / "model.safetensors")
    assert meta["model"] == "lenet5" and meta["model_args"]["num_classes"] == 10
    assert meta["classes"] == [str(i) for i in range(10)] and meta["in_chans"] == 1
    model, meta2 = load_model(out)
    assert model.model_name == "lenet5" and not model.training
    ck = RunDir(out).latest_checkpoint()
    st = load_state(ck / "state.pt")
    assert st["epoch"] == 8 and st["batch_in_epoch"] == 0


def test_existing_run_dir_is_refused(digits_run):
    out, _ = digits_run
    before = (out / "model.safetensors").read_bytes()
    with pytest.raises(UserError, match="already exists; use --resume"):
        fit(digits_cfg(out))
    assert (out / "model.safetensors").read_bytes() == before


def test_eval_and_predict_cli(digits_run, capsys):
    out, results = digits_run
    assert main(["eval", str(out), "--format", "json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["top1"] == pytest.approx(results["test_top1"], abs=1e-9)
    assert 0 <= rep["top1"] <= rep["top5"] <= 1 and len(rep["per_class"]) == 10
    assert (out / "eval" / "confusion.png").stat().st_size > 0
    assert len((out / "eval" / "confusion.csv").read_text().splitlines()) == 11
    assert main(["eval", str(out), str(out), "--tta", "flip"]) == 0
    assert "ensemble of 2" in capsys.readouterr().out
    assert main(["predict", str(out), "digits:3", "-k", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "digits:3" and len(lines) == 4 and lines[1].strip().endswith(tuple("0123456789"))


def test_nonfinite_loss_stops_and_keeps_checkpoint(tmp_path):
    out = tmp_path / "nan"
    with pytest.raises(UserError, match=r"loss became non-finite at epoch \d+, step \d+ \(lr"):
        fit(digits_cfg(out, **{"optim.lr": 1e6, "train.epochs": 3, "schedule.name": "constant",
                               "model.name": "simple_convnet"}))


def test_aux_loss_is_weighted_and_training_only():
    from cnnzoo import AuxOutputs
    from cnnzoo.train.losses import classification_loss

    torch.manual_seed(0)
    logits, a1, a2, y = torch.randn(4, 10), torch.randn(4, 10), torch.randn(4, 10), torch.tensor([0, 1, 2, 3])
    loss, main_logits = classification_loss(AuxOutputs(logits, [a2, a1]), y, aux_weight=0.3)
    # torchvision's tuples (GoogLeNetOutputs) get the same loss, and no weight means the main head alone.
    tv_loss, _ = classification_loss((logits, a2, a1), y, aux_weight=0.3)
    torch.testing.assert_close(tv_loss, loss)
    torch.testing.assert_close(classification_loss(AuxOutputs(logits, [a2, a1]), y)[0], torch.nn.functional.cross_entropy(logits, y))
    ce = torch.nn.functional.cross_entropy
    torch.testing.assert_close(loss, ce(logits, y) + 0.3 * (ce(a1, y) + ce(a2, y)))
    assert main_logits is logits


def test_googlenet_trains_its_aux_heads(tmp_path):
    """The auxiliary classifiers get gradients through the weighted loss and are saved with the model."""
    from cnnzoo import create_model

    out = tmp_path / "g"
    fit(digits_cfg(out, **{"model.name": "googlenet", "train.epochs": 1, "data.val_split": 0.5}))
    torch.manual_seed(0)  # the trainer seeds before building: the same initial weights
    init = create_model("googlenet", num_classes=10, in_chans=1, small_input=True).state_dict()
    final, meta = load_weights(out / "model.safetensors")
    assert meta["model_args"]["small_input"] is True
    for k in ("aux1.fc2.weight", "aux2.fc2.weight", "fc.weight"):
        assert not torch.equal(init[k], final[k]), f"{k} did not train"


# ----------------------------------------------------------------------------------------- CLI


def cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "cnnzoo", *args], capture_output=True, text=True, env=ENV,
                          timeout=timeout, cwd=ROOT)


@pytest.mark.parametrize("args,message", [
    (["train", "--model", "resnt18"], "unknown model 'resnt18'. Did you mean: resnet18"),
    (["train", "--data", "mnist", "--data-dir", "/nonexistent"], "mnist"),
    (["train", "--set", "optim.lrr=1"], "did you mean 'lr'"),
    (["train", "--lr", "-1"], "optim.lr must be positive"),
    (["train", "--batch-size", "0"], "data.batch_size must be at least 1"),
    (["train", "--epochs", "0"], "train.epochs must be at least 1"),
    (["train", "-c", "/nonexistent.yaml"], "not found"),
    (["eval", "/nonexistent_run"], "neither a run directory nor a .safetensors file"),
])
def test_cli_bad_input_is_one_line_exit_2(args, message):
    r = cli(*args)
    assert r.returncode == 2, r.stderr
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("cnnzoo: error: "), r.stderr
    assert message in err[0]
    assert "Traceback" not in r.stderr


def _weights(run: Path):
    return load_weights(run / "model.safetensors")[0]


def test_interrupt_and_resume_is_bit_exact(tmp_path):
    """SIGINT mid-run writes a resumable checkpoint; --resume ends on the uninterrupted run's weights."""
    common = ["train", "--model", "lenet5", "--data", "digits", "--epochs", "4", "--batch-size", "32",
              "--deterministic", "--no-progress", "--precision", "fp32", "--set", "run.tensorboard=false"]
    full = tmp_path / "full"
    assert cli(*common, "--output", str(full)).returncode == 0

    part = tmp_path / "part"
    p = subprocess.Popen([sys.executable, "-m", "cnnzoo", *common, "--output", str(part)], env=ENV, cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in p.stdout:
        if line.startswith("epoch 2/4"):
            p.send_signal(signal.SIGINT)
            break
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "resume with `cnnzoo train --resume" in err and "Traceback" not in err
    assert not (part / "model.safetensors").exists() and RunDir(part).latest_checkpoint() is not None

    r = cli("train", "--resume", str(part), "--no-progress")
    assert r.returncode == 0, r.stderr
    a, b = _weights(full), _weights(part)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    fm = (full / "metrics.csv").read_text().splitlines()
    pm = (part / "metrics.csv").read_text().splitlines()
    strip = lambda rows: [",".join(r.split(",")[:6]) for r in rows]  # noqa: E731  (timings differ)
    assert strip(fm) == strip(pm)


def test_resume_with_incompatible_change_is_refused(digits_run):
    out, _ = digits_run
    r = cli("train", "--resume", str(out), "--model", "resnet20")
    assert r.returncode == 2 and "cannot resume" in r.stderr and "model.name" in r.stderr


@pytest.mark.parametrize("recipe", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_recipes_are_valid(recipe):
    from cnnzoo import is_model

    cfg = load_config(str(recipe))
    assert is_model(cfg.model.name), cfg.model.name
