"""airbench's training method as options of any run: the whitening stem from data (``model.data_init``), dirac
initialisation, frozen BatchNorm scale and its momentum, fast normalisation biases, freezing after N epochs and
lookahead (Jordan 2024, arXiv 2404.00498)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Callable

import pytest
import torch
import yaml
from torch import nn

from cnnzoo.builder import create_model, initialize
from cnnzoo.cli import main
from cnnzoo.errors import UserError
from cnnzoo.io import RunDir, load_weights
from cnnzoo.train.config import (Config, apply_overrides, config_to_dict, load_config, parse_override,
                                 resume_conflicts, validate)
from cnnzoo.train.optim import Lookahead, build_optimizer, lr_factor, param_groups, set_lr
from cnnzoo.train.trainer import Interrupted, Trainer, fit

BN = nn.modules.batchnorm._BatchNorm

# The whole method on airbench_cpu, as the command line takes it (digits are 8 px; airbench needs 9).
METHOD = ["--set", "model.data_init=true", "--set", "model.init=dirac", "--set", "train.freeze_bn_scale=true",
          "--set", "train.bn_momentum=0.4", "--set", "optim.norm_bias_lr_scale=64", "--set", "train.lookahead=true",
          "--set", "train.freeze_after.stem.0.bias=1"]


def tiny_cfg(out: Path, **over) -> Config:
    ov = {"model.name": "airbench_cpu", "data.name": "digits", "data.image_size": 16, "train.epochs": 2,
          "run.output": str(out), "run.progress": "none", "run.tensorboard": False, "train.precision": "fp32"}
    ov.update(over)
    return load_config(None, ov)


def set_up(cfg: Config) -> Trainer:
    """The run as it starts: the model after its initialisation, the optimiser (nothing is written)."""
    trainer = Trainer(cfg, RunDir(cfg.run.output), log=lambda line: None)
    trainer.setup()
    return trainer


def weights(run: Path, tag: str = "") -> dict:
    return load_weights(run / "checkpoints" / tag / "model.safetensors" if tag else run / "model.safetensors")[0]


@pytest.fixture(scope="module")
def method_run(tmp_path_factory):
    """Two epochs of airbench_cpu with the whole method, from the command line; and the same run as set up."""
    out = tmp_path_factory.mktemp("method") / "run"
    rc = main(["train", "--model", "airbench_cpu", "--data", "digits", "--epochs", "2", "--image-size", "16",
               "--no-progress", "--precision", "fp32", "--output", str(out), "--set", "run.tensorboard=false",
               *METHOD])
    assert rc == 0
    cfg = load_config(str(out / "config.yaml"))
    cfg.run.output = str(out.parent / "unused")
    return out, set_up(cfg)


# ----------------------------------------------------------------------------------------- whitening


def correlated_images(n: int = 48, c: int = 3, size: int = 10) -> torch.Tensor:
    """Images whose channels and neighbouring pixels are correlated, with every eigenvalue of the 2x2 patches'
    second moments far above airbench's eps."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, c, size + 1, size + 1, generator=g)
    x = 0.6 * x[..., 1:, 1:] + 0.4 * x[..., :-1, :-1]  # neighbours share a part
    mix = torch.eye(c) + 0.5 * torch.rand(c, c, generator=g)
    return torch.einsum("ij,njhw->nihw", mix, x) + 0.3


@pytest.mark.parametrize("channels_last", [False, True])
def test_whitening_makes_the_stem_output_white(channels_last):
    model = create_model("airbench_cpu", num_classes=10, in_chans=3)
    x = correlated_images()
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    line = model.init_from_data(x)
    assert "\n" not in line and "whitened" in line
    conv = model.stem[0]
    d = 3 * 2 * 2
    with torch.no_grad():
        out = conv(x)  # before the GELU
    flat = out.permute(0, 2, 3, 1).reshape(-1, 2 * d).double()
    second = flat.T @ flat / flat.shape[0]
    assert (second[:d, :d] - torch.eye(d, dtype=torch.float64)).abs().max() < 0.05
    assert torch.allclose(out[:, d:], -out[:, :d], atol=1e-6)  # the next d filters are the negatives
    assert torch.equal(conv.weight[d:], -conv.weight[:d]) and torch.equal(conv.bias, torch.zeros(2 * d))
    assert not conv.weight.requires_grad and conv.bias.requires_grad


def test_the_run_whitens_freezes_and_keeps_the_stem(method_run):
    out, start = method_run
    stem = start.model.stem[0]
    assert not stem.weight.requires_grad
    in_optimizer = {id(p) for g in start.optimizer.param_groups for p in g["params"]}
    assert id(stem.weight) not in in_optimizer and id(stem.bias) in in_optimizer
    final = weights(out)
    assert torch.equal(final["stem.0.weight"], stem.weight.detach())  # unchanged through training (and lookahead)
    # The images are the training ones, normalised: the whitened directions have unit second moments on them.
    from cnnzoo.train.trainer import data_init_images

    images = data_init_images(start.cfg, start.splits, start.image_size, start.in_chans, start.device,
                              (start.mean, start.std))
    assert len(images) == min(start.cfg.model.data_init_images, len(start.splits.train))
    with torch.no_grad():
        flat = nn.functional.conv2d(images, stem.weight).permute(0, 2, 3, 1).reshape(-1, 8).double()
    moments = torch.diagonal(flat.T @ flat / flat.shape[0])[:4]
    assert ((moments - 1).abs() < 0.1).all(), moments  # l / (l + eps): the smallest eigenvalue is ~0.007


def test_data_init_needs_the_models_hook(tmp_path):
    with pytest.raises(UserError, match=r"model.data_init: lenet5 has no data-dependent initialisation "
                                        r"\(init_from_data\); set model.data_init=false"):
        fit(tiny_cfg(tmp_path / "r", **{"model.name": "lenet5", "data.image_size": None, "model.data_init": True}),
            log=lambda line: None)
    assert not (tmp_path / "r").exists()


# ----------------------------------------------------------------------------------------- dirac


def test_dirac_passes_the_inputs_through_the_first_filters():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.Conv2d(6, 8, 3, padding=1, groups=2),
                          nn.Conv2d(8, 3, 3, padding=1))
    before = [m.weight.detach().clone() for m in model]
    initialize(model, "dirac")
    for m in model:
        nn.init.zeros_(m.bias)
    x = torch.randn(2, 4, 7, 7)
    with torch.no_grad():
        assert torch.allclose(model[0](x)[:, :4], x, atol=1e-6)
        y = torch.randn(2, 6, 7, 7)
        out = model[1](y)  # two groups of 3 inputs and 4 filters: filters 0-2 and 4-6 pass inputs 0-2 and 3-5 on
        assert torch.allclose(out[:, 0:3], y[:, 0:3], atol=1e-6) and torch.allclose(out[:, 4:7], y[:, 3:6], atol=1e-6)
    assert torch.equal(model[0].weight[4:], before[0][4:])  # the other filters keep their draw
    assert torch.equal(model[1].weight[[3, 7]], before[1][[3, 7]])
    assert torch.equal(model[2].weight, before[2])  # fewer filters than inputs: left alone


def test_dirac_on_airbench_is_its_reference_start():
    torch.manual_seed(0)
    paper = create_model("airbench_cpu", num_classes=10, in_chans=1)
    torch.manual_seed(0)
    dirac = create_model("airbench_cpu", num_classes=10, in_chans=1, init="dirac")
    for group in range(3):
        for i in (0, 4):  # both 3x3 convolutions of each group
            w = dirac.layers[group][i].weight
            c = w.shape[1]
            expected = torch.zeros_like(w[:c])
            nn.init.dirac_(expected)
            assert torch.equal(w[:c], expected)
            assert torch.equal(w[c:], paper.layers[group][i].weight[c:])


# ----------------------------------------------------------------------------------------- BatchNorm, rates


def test_frozen_bn_scale_and_momentum(method_run):
    out, start = method_run
    bns = [m for m in start.model.modules() if isinstance(m, BN)]
    assert bns and all(not m.weight.requires_grad and m.momentum == 0.4 for m in bns)
    final = weights(out)
    names = [n for n, m in start.model.named_modules() if isinstance(m, BN)]
    assert all(torch.equal(final[f"{n}.weight"], torch.ones_like(final[f"{n}.weight"])) for n in names)
    assert all(final[f"{n}.bias"].abs().sum() > 0 for n in names)  # the biases did train


def small_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))


def group_of(optimizer, p):
    return next(g for g in optimizer.param_groups if any(q is p for q in g["params"]))


@pytest.mark.parametrize("decay_norm_and_bias", [False, True])
def test_norm_biases_learn_64x_faster_at_every_step_of_the_schedule(decay_norm_and_bias):
    net = small_net()
    cfg = Config()
    cfg.schedule.name, cfg.schedule.warmup_epochs = "onecycle", 0.0
    opt = build_optimizer(param_groups(net, 5e-4, decay_norm_and_bias, None, 64.0), cfg.optim)
    conv_w, conv_b, bn_w, bn_b = net[0].weight, net[0].bias, net[1].weight, net[1].bias
    for step in (0, 3, 17, 40, 99):
        base = set_lr(opt, cfg.optim.lr, lr_factor(step, 10, 10, cfg.schedule))
        assert group_of(opt, bn_b)["lr"] == pytest.approx(64 * base)
        for p in (conv_w, conv_b, bn_w):
            assert group_of(opt, p)["lr"] == pytest.approx(base)
    if decay_norm_and_bias:  # lr x weight decay per step as without the multiplier
        assert group_of(opt, bn_b)["weight_decay"] == pytest.approx(5e-4 / 64)
        assert group_of(opt, bn_w)["weight_decay"] == pytest.approx(5e-4)
    else:
        assert group_of(opt, bn_b)["weight_decay"] == 0.0


def test_norm_bias_scale_multiplies_the_stage_scales_and_defaults_to_the_old_groups():
    net = small_net()
    old = param_groups(net, 5e-4)
    assert [(len(g["params"]), g["weight_decay"], g["lr_scale"]) for g in old] == [(2, 5e-4, 1.0), (4, 0.0, 1.0)]
    groups = param_groups(net, 5e-4, lr_scale={"0.": 0.5, "1.": 0.25, "3.": 1.0}, norm_bias_lr_scale=64.0)
    bias_group = next(g for g in groups if any(p is net[1].bias for p in g["params"]))
    assert bias_group["lr_scale"] == 0.25 * 64 and len(bias_group["params"]) == 1


def test_the_trainer_builds_the_bias_groups(method_run):
    _, start = method_run
    bn_biases = [m.bias for m in start.model.modules() if isinstance(m, BN)]
    assert all(group_of(start.optimizer, b)["lr_scale"] == 64.0 for b in bn_biases)
    assert group_of(start.optimizer, start.model.stem[0].bias)["lr_scale"] == 1.0  # a bias, not a norm's


# ----------------------------------------------------------------------------------------- freezing after N epochs


def test_freeze_after_stops_a_parameter_at_the_end_of_epoch_n(tmp_path):
    """A convolution's weight (momentum and weight decay on) frozen after 1 of 2 epochs."""
    cfg = tiny_cfg(tmp_path / "r", **{"train.freeze_after": {"layers.0.0.weight": 1}})
    start = set_up(tiny_cfg(tmp_path / "unused"))
    fit(cfg, log=lambda line: None)
    initial = start.model.layers[0][0].weight.detach()
    after_one = weights(tmp_path / "r", "epoch-0001")["layers.0.0.weight"]
    assert not torch.equal(after_one, initial)  # it trained during epoch 1
    assert torch.equal(weights(tmp_path / "r")["layers.0.0.weight"], after_one)  # and not in epoch 2
    assert not torch.equal(weights(tmp_path / "r")["layers.0.4.weight"],
                           weights(tmp_path / "r", "epoch-0001")["layers.0.4.weight"])  # the rest did


def test_the_stem_bias_freezes_after_its_epoch(method_run):
    out, start = method_run
    assert torch.equal(start.model.stem[0].bias.detach(), torch.zeros(8))
    after_one = weights(out, "epoch-0001")["stem.0.bias"]
    assert after_one.abs().sum() > 0 and torch.equal(weights(out)["stem.0.bias"], after_one)


def test_freeze_after_a_wildcard_matching_nothing_is_one_error(tmp_path):
    with pytest.raises(UserError, match=r"freeze_after='stem\.9\.\*' matches no parameter; names look like stem"):
        fit(tiny_cfg(tmp_path / "r", **{"train.freeze_after": {"stem.9.*": 1}}), log=lambda line: None)


# ----------------------------------------------------------------------------------------- lookahead


def test_lookahead_follows_its_formula():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    every, decay, total = 2, 0.7, 7
    la = Lookahead(net, every, decay, total)
    slow = {k: v.clone() for k, v in net.state_dict().items() if v.is_floating_point()}
    for t in range(1, total + 1):
        with torch.no_grad():  # a stand-in for the optimiser's step, and the statistics of a batch
            for p in net.parameters():
                p.add_(torch.randn_like(p))
            net(torch.randn(5, 3))
        fast = {k: v.clone() for k, v in net.state_dict().items()}
        la.step(net, t)
        now = net.state_dict()
        if t % every:
            assert all(torch.equal(now[k], fast[k]) for k in fast)
            continue
        d = decay * (t / total) ** 3
        for k in slow:
            slow[k] = slow[k] + (1 - d) * (fast[k] - slow[k])
            assert torch.allclose(now[k], slow[k], atol=1e-6), (t, k)
        assert torch.equal(now["1.num_batches_tracked"], fast["1.num_batches_tracked"])  # integers: untouched
    with torch.no_grad():
        net[0].weight.add_(1.0)
    la.finish(net)
    assert all(torch.allclose(net.state_dict()[k], slow[k], atol=1e-6) for k in slow)


def test_lookahead_leaves_frozen_parameters_alone():
    net = nn.Sequential(nn.Linear(3, 4))
    la = Lookahead(net, 1, 0.9, 1)
    start = net[0].weight.detach().clone()
    with torch.no_grad():
        net[0].bias.add_(1.0)
        net[0].weight.add_(1.0)
    net[0].bias.requires_grad_(False)  # frozen after it moved: it keeps that value
    frozen = net[0].bias.detach().clone()
    la.step(net, 1)  # d = 0.9: the weight comes back to 0.1 of its way
    la.finish(net)
    assert torch.equal(net[0].bias, frozen) and torch.allclose(net[0].weight, start + 0.1, atol=1e-6)


def interrupt_at(monkeypatch, cfg: Config, n: int) -> None:
    """Run ``cfg`` until a SIGINT after step ``n`` stops it; its latest checkpoint is that step's."""
    step = Trainer.train_step

    def stop_at(self, x, y):
        step(self, x, y)
        if self.step + 1 == n:
            self._stop = signal.SIGINT

    monkeypatch.setattr(Trainer, "train_step", stop_at)
    with pytest.raises(Interrupted):
        fit(cfg, log=lambda line: None)
    monkeypatch.setattr(Trainer, "train_step", step)
    assert RunDir(cfg.run.output).latest_checkpoint().name == f"step-{n:08d}"


def assert_resumes_exactly(monkeypatch, config: Callable[[], Config], full: Path, n: int) -> None:
    """``config()`` (a fresh Config each call) stopped after step ``n`` and resumed ends with the weights of the
    uninterrupted run in ``full``."""
    interrupt_at(monkeypatch, config(), n)
    part = Path(config().run.output)
    fit(config(), resume=str(part), log=lambda line: None)
    a, b = weights(full), weights(part)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_an_interrupted_lookahead_run_resumes_bit_for_bit(method_run, tmp_path, monkeypatch):
    """Stopped inside epoch 2 (after the stem bias froze, between two lookahead updates), then resumed: the
    weights and the epochs' numbers are the uninterrupted run's."""
    full, _ = method_run
    part = tmp_path / "part"

    def config() -> Config:
        cfg = load_config(str(full / "config.yaml"))
        cfg.run.output = str(part)
        return cfg

    assert_resumes_exactly(monkeypatch, config, full, 13)
    columns = lambda run: [r.split(",")[:6] for r in (run / "metrics.csv").read_text().splitlines()]  # noqa: E731
    assert columns(full) == columns(part)


# ----------------------------------------------------------------------------------------- configuration


NEW_SETTINGS = {
    "model.data_init=true": ("model", "data_init", True),
    "model.data_init_images=300": ("model", "data_init_images", 300),
    "optim.norm_bias_lr_scale=64": ("optim", "norm_bias_lr_scale", 64.0),
    "train.lookahead=true": ("train", "lookahead", True),
    "train.lookahead_every=3": ("train", "lookahead_every", 3),
    "train.lookahead_decay=0.5": ("train", "lookahead_decay", 0.5),
    "train.freeze_bn_scale=true": ("train", "freeze_bn_scale", True),
    "train.progressive_scale=0.7": ("train", "progressive_scale", 0.7),
    "train.progressive_increment=2": ("train", "progressive_increment", 2),
    "train.bn_momentum=0.4": ("train", "bn_momentum", 0.4),
    "train.freeze_after.stem.0.bias=3": ("train", "freeze_after", {"stem.0.bias": 3}),
    'train.freeze_after={"stem.0.bias": 3, "layers.0.*": 5}': ("train", "freeze_after",
                                                              {"stem.0.bias": 3, "layers.0.*": 5}),
}


def test_the_defaults_change_nothing():
    cfg = Config()
    assert (cfg.model.data_init, cfg.model.data_init_images, cfg.optim.norm_bias_lr_scale) == (False, 5000, 1.0)
    assert (cfg.train.lookahead, cfg.train.lookahead_every, cfg.train.freeze_bn_scale, cfg.train.bn_momentum,
            cfg.train.freeze_after) == (False, 5, False, None, {})
    assert cfg.train.lookahead_decay == pytest.approx(0.95 ** 5, abs=1e-15)


@pytest.mark.parametrize("text", list(NEW_SETTINGS))
def test_every_new_setting_round_trips(text, tmp_path):
    section, name, value = NEW_SETTINGS[text]
    key, raw = parse_override(text)  # what --set does
    cfg = load_config(None, {key: raw})
    assert getattr(getattr(cfg, section), name) == value
    recipe = tmp_path / "run.yaml"  # the run's config.yaml, which a resume and eval read back
    recipe.write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    again = load_config(str(recipe))
    assert getattr(getattr(again, section), name) == value and not resume_conflicts(cfg, again)


def test_a_changed_freeze_after_is_a_resume_conflict():
    a = load_config(None, {"train.freeze_after": {"stem.0.bias": 3}})
    assert resume_conflicts(a, Config()) == ["train.freeze_after ({'stem.0.bias': 3} -> {})"]


@pytest.mark.parametrize("overrides,message", [
    ({"model.data_init_images": 0}, r"model.data_init_images is a number of images, at least 1"),
    ({"optim.norm_bias_lr_scale": 0}, r"optim.norm_bias_lr_scale is a learning-rate multiplier, above 0"),
    ({"train.lookahead_every": 0}, r"train.lookahead_every is a number of steps, at least 1"),
    ({"train.lookahead_decay": 1.5}, r"train.lookahead_decay must be in \[0, 1\]"),
    ({"train.bn_momentum": 1.5}, r"train.bn_momentum is PyTorch's BatchNorm momentum, in \[0, 1\]"),
    ({"train.freeze_after.stem.0.bias": "three"}, r"train.freeze_after maps a parameter wildcard to a number of "
                                                  r"epochs .*'stem.0.bias' has 'three'"),
    ({"train.freeze_after": [1]}, r"'train.freeze_after' must be a dict"),
])
def test_bad_values_are_one_line(overrides, message):
    with pytest.raises(UserError, match=message):
        validate(apply_overrides(Config(), overrides))


def test_airbench_act_option_swaps_every_activation_and_keeps_the_parameters():
    """``act="relu"`` (measured 1.16x the GELU step on the CPU, benchmarks/lean_step.py acts) changes only the
    activations: the same parameters, no GELU left; an unknown name is refused."""
    gelu, relu = create_model("airbench_cpu", in_chans=1), create_model("airbench_cpu", in_chans=1, act="relu")
    assert [p.shape for p in gelu.parameters()] == [p.shape for p in relu.parameters()]
    kinds = lambda m: sorted({type(x).__name__ for x in m.modules() if isinstance(x, (nn.GELU, nn.ReLU))})
    assert kinds(gelu) == ["GELU"] and kinds(relu) == ["ReLU"]
    assert sum(isinstance(x, nn.ReLU) for x in relu.modules()) == 7  # the stem's and two in each of three groups
    with pytest.raises(ValueError, match="act must be one of gelu, relu"):
        create_model("airbench_cpu", act="swish")


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_optimisers_use_the_fused_update_and_match_the_loop(name):
    """SGD, Adam and AdamW take PyTorch's fused update on the CPU (one kernel, not a Python loop over tensors);
    ten steps of it give the loop's weights to float rounding."""
    from cnnzoo.train.optim import fused_kwargs

    def run(fused: bool):
        torch.manual_seed(0)
        # no bias right before the BatchNorm: its gradient is rounding noise, which Adam would scale up to +-lr
        m = nn.Sequential(nn.Linear(6, 5, bias=False), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))
        cfg = load_config(None, {"optim.name": name, "optim.lr": 0.05, "optim.weight_decay": 1e-3}).optim
        groups = param_groups(m, cfg.weight_decay)
        opt = build_optimizer(groups, cfg) if fused else _loop(name, groups, cfg)
        for i in range(10):
            torch.manual_seed(i)
            loss = m(torch.randn(8, 6)).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return opt, [p.detach().clone() for p in m.parameters()]

    def _loop(name, groups, cfg):
        kw = dict(lr=cfg.lr, foreach=False)
        if name == "sgd":
            return torch.optim.SGD(groups, momentum=cfg.momentum, nesterov=cfg.nesterov, **kw)
        return (torch.optim.Adam if name == "adam" else torch.optim.AdamW)(groups, betas=cfg.betas, eps=cfg.eps, **kw)

    opt, fused = run(True)
    assert all(g.get("fused") for g in opt.param_groups)
    _, loop = run(False)
    for a, b in zip(fused, loop):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert fused_kwargs([torch.zeros(2), torch.zeros(2, dtype=torch.long)]) == {}  # an integer tensor: the loop


def test_lean_step_hand_pool_is_pytorchs_pool(monkeypatch):
    """benchmarks/lean_step.py pools times a hand-written 2x2 max-pool against PyTorch's: it must be the same
    function (outputs and gradients, ties broken to the first maximum, odd sides cropped) for the timing to mean
    anything."""
    import torch.nn.functional as F
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from lean_step import _amax_pool, _MaxPool2x2

    x = torch.randn(3, 8, 27, 27).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    x[0, 0, 0, 0] = x[0, 0, 0, 1] = x[1, 2, 3, 4] = x[1, 2, 3, 5] = x[1, 2, 2, 5] = 9  # ties
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = F.max_pool2d(a, 2), _MaxPool2x2.apply(b)
    g = torch.randn_like(ya)
    ya.backward(g)
    yb.backward(g)
    assert torch.equal(ya, yb) and torch.equal(a.grad, b.grad)
    assert torch.equal(_amax_pool(x), ya.detach())
