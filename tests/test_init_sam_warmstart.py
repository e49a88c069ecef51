"""Initialisation as a choice (``init=``), SAM around any optimiser, VGG's warm start (section 3.1)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from cnnzoo.builder import create_model, initialize, warm_start
from cnnzoo.choices import INITS
from cnnzoo.errors import ParamError, UserError
from cnnzoo.io import RunDir, load_state, load_weights, save_weights
from cnnzoo.train.config import load_config
from cnnzoo.train.optim import SAM, bn_stats_frozen, build_optimizer, param_groups
from cnnzoo.train.trainer import RunningSums, Trainer, fit

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT / "src"), PYTHONUNBUFFERED="1")


def cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "cnnzoo", *args], capture_output=True, text=True, env=ENV,
                          timeout=timeout, cwd=ROOT)


def one_error_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cnnzoo: error: ") and "Traceback" not in r.stderr, r.stderr
    return lines[0]


# ----------------------------------------------------------------------------------------- initialisation


def _fans(w: torch.Tensor):
    return nn.init._calculate_fan_in_and_fan_out(w)


@pytest.fixture(scope="module")
def vgg_inits():
    """vgg11_bn (convolutions with biases, BatchNorm, linear layers) under each generic scheme."""
    out = {}
    for init in ("xavier_uniform", "xavier_normal", "kaiming_fan_in", "kaiming_fan_out"):
        torch.manual_seed(0)
        out[init] = create_model("vgg11_bn", num_classes=10, in_chans=1, small_input=True, init=init)
    return out


@pytest.mark.parametrize("init", ["xavier_uniform", "xavier_normal", "kaiming_fan_in", "kaiming_fan_out"])
def test_weight_statistics_follow_the_scheme(vgg_inits, init):
    model = vgg_inits[init]
    # A 512x512x3x3 convolution (2.4M weights: the sample std is within 0.1% of the true one) and FC7 (512x512).
    for w in (model.features[-4].weight.detach(), model.classifier[3].weight.detach()):
        fan_in, fan_out = _fans(w)
        std = {"xavier_uniform": math.sqrt(2 / (fan_in + fan_out)), "xavier_normal": math.sqrt(2 / (fan_in + fan_out)),
               "kaiming_fan_in": math.sqrt(2 / fan_in), "kaiming_fan_out": math.sqrt(2 / fan_out)}[init]
        assert float(w.std()) == pytest.approx(std, rel=0.02), (init, tuple(w.shape))
        assert abs(float(w.mean())) < 0.02 * std
        if init == "xavier_uniform":
            bound = math.sqrt(6 / (fan_in + fan_out))
            assert float(w.abs().max()) <= bound and float(w.abs().max()) > 0.999 * bound
        else:  # normal: about 0.27% of draws lie beyond 3 std
            assert float((w.abs() > 3 * std).float().mean()) == pytest.approx(0.0027, abs=0.001)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            assert torch.count_nonzero(m.bias) == 0
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.count_nonzero(m.bias) == 0


def test_generic_schemes_differ_from_the_papers():
    """The NiN recipe's xavier_uniform really replaces the family's Kaiming fan-out (classifier: 10 outputs)."""
    torch.manual_seed(0)
    paper = create_model("nin", num_classes=10, in_chans=1)
    torch.manual_seed(0)
    xavier = create_model("nin", num_classes=10, in_chans=1, init="xavier_uniform")
    w0, w1 = paper.classifier.weight.detach(), xavier.classifier.weight.detach()
    assert float(w0.std()) == pytest.approx(math.sqrt(2 / 10), rel=0.1)  # fan-out of a 1x1 conv to 10 maps
    assert float(w1.abs().max()) <= math.sqrt(6 / (192 + 10))
    assert xavier.init_scheme == "xavier_uniform" and paper.init_scheme == "paper"


@pytest.mark.parametrize("name", ["nin", "vgg11_bn", "resnet20", "alexnet", "googlenet", "lenet5"])
def test_paper_is_todays_default_bit_for_bit(name):
    torch.manual_seed(0)
    default = create_model(name, num_classes=10)
    after_default = torch.rand(3)
    torch.manual_seed(0)
    paper = create_model(name, num_classes=10, init="paper")
    after_paper = torch.rand(3)
    a, b = default.state_dict(), paper.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(after_default, after_paper)  # and it draws nothing more from the generator


def test_bad_init_is_one_clear_error():
    with pytest.raises(ParamError, match=r"init='he' is not an initialisation; choose one of paper, torchvision, "
                                         r"xavier_uniform, xavier_normal, kaiming_fan_in, kaiming_fan_out"):
        create_model("lenet5", init="he")
    with pytest.raises(ParamError, match=r"init='torchvision' needs a model with a torchvision twin: nin has none"
                                         r"|nin has no torchvision twin"):
        create_model("nin", init="torchvision")
    with pytest.raises(UserError, match=r"model.init must be one of paper, torchvision, .*got 'xavier'"):
        load_config(None, {"model.init": "xavier"})
    with pytest.raises(UserError, match=r"the initialisation is model.init"):
        load_config(None, {"model.kwargs.init": "xavier_uniform"})
    line = one_error_line(cli("train", "--set", "model.init=glorot"))
    assert "model.init must be one of paper, torchvision, xavier_uniform" in line and "'glorot'" in line


def test_init_choices_are_the_one_list():
    import argparse

    from cnnzoo.cli import build_parser
    from cnnzoo.train.config import CHOICES

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    flag = next(a for a in sub.choices["train"]._actions if "--init" in a.option_strings)
    assert tuple(flag.choices) == INITS == CHOICES["model.init"]


@pytest.mark.parametrize("name", ["resnet18", "squeezenet1_1", "mobilenet_v2", "googlenet", "densenet121",
                                  "efficientnet_b0", "alexnet_owt"])
def test_torchvision_scheme_matches_torchvision(name):
    """Every same-named tensor has torchvision's statistics: constants equal, random draws the same std."""
    tv_models = pytest.importorskip("torchvision.models")
    from cnnzoo import model_info

    torch.manual_seed(0)
    extra = {"init_weights": True} if name == "googlenet" else {}
    theirs = tv_models.get_model(model_info(name).torchvision, num_classes=10, **extra).state_dict()
    torch.manual_seed(1)
    ours = create_model(name, num_classes=10, init="torchvision").state_dict()
    shared = [k for k in theirs if k in ours and ours[k].shape == theirs[k].shape and theirs[k].is_floating_point()]
    assert len(shared) >= 0.9 * sum(t.is_floating_point() for t in theirs.values()), name
    checked = 0
    for k in shared:
        t, o = theirs[k].float(), ours[k].float()
        if "running_" in k or t.numel() < 2:
            continue
        if torch.all(t == t.flatten()[0]):  # a constant: zeros or ones
            assert torch.equal(o, t), k
        elif t.numel() >= 1000:
            assert float(o.std()) == pytest.approx(float(t.std()), rel=0.1), k
            checked += 1
    assert checked >= 3, name


def test_initialize_leaves_meta_models_alone():
    with torch.device("meta"):
        m = create_model("resnet18", init="xavier_normal")
    assert m.fc.weight.is_meta
    with pytest.raises(ParamError, match="not an initialisation"):
        initialize(m, "orthogonal")


# ----------------------------------------------------------------------------------------- SAM


class TinyNet(nn.Module):
    """Two linear layers with a BatchNorm between: small enough to differentiate by hand with autograd."""

    def __init__(self, bn: bool = False) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 5), nn.Linear(5, 3)
        self.bn = nn.BatchNorm1d(5) if bn else nn.Identity()

    def forward(self, x):
        return self.fc2(torch.relu(self.bn(self.fc1(x))))


def bare_trainer(model: nn.Module, optimizer, **settings) -> Trainer:
    """The trainer's own ``train_step``, without data or a run directory."""
    t = Trainer.__new__(Trainer)
    t.cfg = load_config(None, {"run.progress": "none", **settings})
    t.model = t.step_model = model
    t.optimizer, t.scaler, t.ema = optimizer, torch.amp.GradScaler("cuda", enabled=False), None
    t.amp_dtype, t.device, t.aux_weight, t.step = None, torch.device("cpu"), 0.0, 0
    t.running = RunningSums(t.device)
    return t


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(8, 4, generator=g), torch.randint(0, 3, (8,), generator=g)


def _loss_at(params, x, y):
    w1, b1, w2, b2 = params
    return nn.functional.cross_entropy(torch.relu(x @ w1.T + b1) @ w2.T + b2, y)


def test_one_sam_step_is_the_formula():
    """w' = w - lr * grad L(w + rho g / ||g||), g = grad L(w): the paper's eq. 2 and 3, through train_step."""
    torch.manual_seed(0)
    model, (x, y) = TinyNet(), _batch()
    w = [p.detach().clone() for p in (model.fc1.weight, model.fc1.bias, model.fc2.weight, model.fc2.bias)]
    lr, rho = 0.1, 0.05

    leaf = [t.clone().requires_grad_() for t in w]
    g = torch.autograd.grad(_loss_at(leaf, x, y), leaf)
    norm = torch.sqrt(sum((t ** 2).sum() for t in g))
    at = [(t + rho * gi / norm).requires_grad_() for t, gi in zip(w, g)]
    g_sam = torch.autograd.grad(_loss_at(at, x, y), at)
    expected = [t - lr * gi for t, gi in zip(w, g_sam)]

    sam = SAM(torch.optim.SGD(model.parameters(), lr=lr), rho=rho)
    trainer = bare_trainer(model, sam)
    trainer.train_step(x, y)
    got = [model.fc1.weight, model.fc1.bias, model.fc2.weight, model.fc2.bias]
    for e, o in zip(expected, got):
        torch.testing.assert_close(o.detach(), e, rtol=1e-6, atol=1e-7)
    # Not the plain SGD step: the gradient was taken elsewhere.
    plain = [t - lr * gi for t, gi in zip(w, g)]
    assert not all(torch.allclose(o.detach(), p, rtol=1e-6, atol=1e-7) for o, p in zip(got, plain))
    loss, _ = trainer.running.means()
    assert loss == pytest.approx(float(_loss_at(w, x, y)), rel=1e-6)  # the loss recorded is the one at w


@pytest.mark.parametrize("optim", ["sgd", "adamw"])
def test_rho_zero_is_the_base_optimiser(optim):
    runs = []
    for sam in (False, True):
        torch.manual_seed(0)
        model = TinyNet(bn=True)
        cfg = load_config(None, {"optim.name": optim, "optim.lr": 0.05, "optim.sam": sam, "optim.sam_rho": 0.0})
        opt = build_optimizer(param_groups(model, cfg.optim.weight_decay), cfg.optim)
        assert isinstance(opt, SAM) == sam
        t = bare_trainer(model, opt, **{"optim.name": optim})
        for step in range(3):
            t.train_step(*_batch(step))
        runs.append(model.state_dict())
    plain, sam = runs
    assert all(torch.equal(plain[k], sam[k]) for k in plain)


def test_sam_leaves_batchnorm_statistics_to_the_first_pass():
    torch.manual_seed(0)
    model, (x, y) = TinyNet(bn=True), _batch()
    reference = TinyNet(bn=True)
    reference.load_state_dict(model.state_dict())
    reference.train()(x)  # one forward pass at w
    bare_trainer(model, SAM(torch.optim.SGD(model.parameters(), lr=0.1), 0.5)).train_step(x, y)
    torch.testing.assert_close(model.bn.running_mean, reference.bn.running_mean)
    torch.testing.assert_close(model.bn.running_var, reference.bn.running_var)
    assert int(model.bn.num_batches_tracked) == 1
    with bn_stats_frozen(model):
        model(x)
    assert int(model.bn.num_batches_tracked) == 1 and model.bn.momentum == 0.1


def test_sam_non_finite_gradient_moves_nothing_and_misuse_is_caught():
    model = TinyNet()
    sam = SAM(torch.optim.SGD(model.parameters(), lr=0.1), 0.05)
    before = [p.detach().clone() for p in model.parameters()]
    for p in model.parameters():
        p.grad = torch.full_like(p, float("inf"))
    sam.perturb()
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))
    with pytest.raises(RuntimeError, match="restore"):
        sam.step()
    sam.restore()
    with pytest.raises(ParamError, match=r"rho=-1 is SAM's neighbourhood radius"):
        SAM(torch.optim.SGD(model.parameters(), lr=0.1), -1)
    with pytest.raises(UserError, match=r"optim.sam_rho is SAM's radius, >= 0"):
        load_config(None, {"optim.sam": True, "optim.sam_rho": -0.1})


def _sam_run(out: Path, epochs: int, **over):
    ov = {"model.name": "lenet5", "data.name": "digits", "train.epochs": epochs, "data.batch_size": 64,
          "optim.lr": 0.05, "optim.sam": True, "optim.sam_rho": 0.05, "schedule.name": "constant",
          "train.ema": True, "train.ema_decay": 0.9, "train.grad_clip": 5.0, "train.precision": "bf16",
          "train.deterministic": True, "run.output": str(out), "run.progress": "none"}
    ov.update(over)
    return fit(load_config(None, ov), log=lambda s: None)


def test_sam_run_trains_and_resumes_exactly(tmp_path):
    """bf16 autocast, gradient clipping and EMA with SAM; a resumed run ends on the uninterrupted run's weights."""
    full = _sam_run(tmp_path / "full", 4)
    rows = (tmp_path / "full" / "metrics.csv").read_text().splitlines()[1:]
    losses = [float(r.split(",")[1]) for r in rows]
    assert losses[-1] < 0.5 * losses[0], losses
    assert full["val_top1"] > 0.8 and full["precision"] == "bf16", full
    state = load_state(RunDir(tmp_path / "full").latest_checkpoint() / "state.pt")
    assert state["optimizer"]["state"], "the base optimiser's momentum is in the checkpoint"

    _sam_run(tmp_path / "part", 2)
    resumed = fit(load_config(str(tmp_path / "part" / "config.yaml"), {"train.epochs": 4}),
                  resume=str(tmp_path / "part"), log=lambda s: None)
    a = load_weights(tmp_path / "full" / "model.safetensors")[0]
    b = load_weights(tmp_path / "part" / "model.safetensors")[0]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["val_top1"] == full["val_top1"]


# ----------------------------------------------------------------------------------------- warm start


def _vgg(name: str, seed: int, **kw):
    torch.manual_seed(seed)
    return create_model(name, num_classes=kw.pop("num_classes", 10), in_chans=kw.pop("in_chans", 1),
                        small_input=True, **kw)


def _check_copied(target, before, source, copied):
    own, src = target.state_dict(), source.state_dict()
    done = set()
    for name in copied:
        for tp, sp in zip(target.layer_table[name], source.layer_table[name]):
            for k in [k for k in own if k.startswith(tp + ".")]:
                assert torch.equal(own[k], src[sp + k[len(tp):]]), k
                done.add(k)
    assert done
    for k in own:
        if k not in done:
            assert torch.equal(own[k], before[k]), f"{k} was changed"


def test_warm_start_copies_the_papers_layers_and_nothing_else(tmp_path):
    source, target = _vgg("vgg11", 1), _vgg("vgg16", 2)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    report = warm_start(target, source)
    assert report.copied == ("conv1_1", "conv2_1", "conv3_1", "conv3_2", "fc6", "fc7", "fc8")
    assert "conv1_2" in report.kept and len(report.kept) == 9
    assert report.summary().startswith("warm start from vgg11 (vgg11): copied conv1_1, conv2_1, conv3_1, conv3_2, "
                                       "fc6, fc7, fc8; 9 layers of vgg16 keep their initialisation (conv1_2, ")
    _check_copied(target, before, source, report.copied)

    # From a cnnzoo weights file, as --warm-start RUN_DIR reads it: the same tensors.
    save_weights(tmp_path / "v11.safetensors", source)
    again = _vgg("vgg16", 2)
    assert warm_start(again, tmp_path / "v11.safetensors").copied == report.copied
    _check_copied(again, before, source, report.copied)


def test_warm_start_between_batchnorm_nets_copies_their_statistics():
    source, target = _vgg("vgg11_bn", 1), _vgg("vgg13_bn", 2)
    with torch.no_grad():
        source.features[1].running_mean.add_(3.0)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    report = warm_start(target, source)
    _check_copied(target, before, source, report.copied)
    assert torch.equal(target.features[1].running_mean, source.features[1].running_mean)


@pytest.mark.parametrize("source,target,message", [
    (lambda: _vgg("resnet18", 1), lambda: _vgg("vgg16", 2), r"is a resnet18, not a VGG"),
    (lambda: _vgg("vgg11_bn", 1), lambda: _vgg("vgg16", 2),
     r"cannot start vgg16: vgg11_bn has BatchNorm and vgg16 has none"),
    (lambda: _vgg("vgg11", 1), lambda: _vgg("vgg16_bn", 2), r"vgg11 has no BatchNorm and vgg16_bn has"),
    (lambda: _vgg("vgg11", 1, in_chans=3), lambda: _vgg("vgg16", 2),
     r"does not fit vgg16: its conv1_1 \(features.0.weight\) is 64x3x3x3, vgg16's is 64x1x3x3"),
    (lambda: _vgg("vgg11", 1, num_classes=5), lambda: _vgg("vgg16", 2), r"its fc8 \(classifier.6.weight\) is 5x512"),
    (lambda: _vgg("vgg16", 1), lambda: _vgg("vgg11", 2), r"cannot start vgg11 from vgg16: vgg11 has no conv1_2"),
    (lambda: _vgg("vgg11", 1), lambda: _vgg("resnet18", 2),
     r"cannot start resnet18: warm start maps the layers of VGG"),
])
def test_warm_start_refuses_what_it_cannot_map(source, target, message):
    src, tgt = source(), target()
    before = {k: v.clone() for k, v in tgt.state_dict().items()}
    with pytest.raises(ParamError, match=r"warm_start=.* " + message):
        warm_start(tgt, src)
    after = tgt.state_dict()
    assert all(torch.equal(after[k], before[k]) for k in after)  # nothing copied before the refusal


def test_warm_start_refuses_a_model_name_and_pretrained_together():
    with pytest.raises(ParamError, match="is a model name, not trained weights"):
        warm_start(_vgg("vgg16", 0), "vgg11")
    with pytest.raises(UserError, match="model.warm_start and model.pretrained both"):
        load_config(None, {"model.warm_start": "runs/a", "model.pretrained": "runs/b"})


def test_train_warm_start_cli(tmp_path):
    """`cnnzoo train --model vgg16 --warm-start RUN`: the layers it copied on one line; a non-VGG run is refused."""
    common = ["--data", "digits", "--epochs", "1", "--set", "data.per_class=8", "--no-progress", "--set",
              "data.val_split=0.2"]

    def source(model: str, out: Path) -> None:  # the runs it starts from, trained in this process (it is quicker)
        fit(load_config(None, {"model.name": model, "data.name": "digits", "train.epochs": 1, "data.per_class": 8,
                               "data.val_split": 0.2, "run.output": str(out), "run.progress": "none",
                               "run.tensorboard": False}))

    source("vgg11", tmp_path / "v11")
    r = cli("train", "--model", "vgg16", "--warm-start", str(tmp_path / "v11"), *common,
            "--output", str(tmp_path / "v16"))
    assert r.returncode == 0, r.stderr
    assert (f"warm start from {tmp_path / 'v11'} (vgg11): copied conv1_1, conv2_1, conv3_1, conv3_2, fc6, fc7, fc8; "
            "9 layers of vgg16 keep their initialisation") in r.stdout
    assert "model.warm_start" not in r.stderr

    source("lenet5", tmp_path / "le")
    line = one_error_line(cli("train", "--model", "vgg16", "--warm-start", str(tmp_path / "le"), *common,
                              "--output", str(tmp_path / "bad")))
    assert f"--warm-start {tmp_path / 'le'} is a lenet5, not a VGG" in line
