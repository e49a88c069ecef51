"""train.replicas: the batch split over model replicas stepping in threads (cnnzoo.train.replicas)."""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cnnzoo.errors import UserError
from cnnzoo.io import RunDir
from cnnzoo.train.config import Config, apply_overrides, load_config, validate
from cnnzoo.train.replicas import ThreadReplicas, threads_per_replica
from cnnzoo.train.trainer import Trainer, fit
from test_method import assert_resumes_exactly, weights


def loss_fn(m, x, y):
    logits = m(x)
    return F.cross_entropy(logits, y), logits


def no_bn_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 5))


def bn_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, 5))


def full_batch(model, x, y):
    model.zero_grad(set_to_none=True)
    loss, logits = loss_fn(model, x, y)
    loss.backward()
    return loss.detach(), logits.detach(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("n,batch", [(2, 8), (2, 7), (3, 8), (2, 1), (4, 3)])
def test_the_summed_gradient_is_the_whole_batchs(n, batch):
    """Without BatchNorm the chunks' weighted gradients sum to the whole batch's mean gradient, for equal and
    unequal chunks and batches smaller than the replicas; the loss and logits are the batch's, in order."""
    x, y = torch.randn(batch, 3, 6, 6), torch.randint(0, 5, (batch,))
    ref = no_bn_net()
    want_loss, want_logits, want_grads = full_batch(ref, x, y)
    model = no_bn_net()
    reps = ThreadReplicas(model, n, threads=1)
    try:
        loss, logits = reps.backward(x, y, loss_fn, contextlib.nullcontext)
    finally:
        reps.close()
    torch.testing.assert_close(loss, want_loss, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(logits, want_logits, rtol=1e-6, atol=1e-6)
    for g, w in zip([p.grad for p in model.parameters()], want_grads):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)


def test_batchnorm_normalises_each_chunk_and_averages_the_running_statistics():
    """As over DDP ranks: each chunk is normalised by its own statistics (the gradient is the chunks' mean
    gradient, each computed alone), and the running mean is the one a whole-batch update gives."""
    x, y = torch.randn(8, 3, 6, 6), torch.randint(0, 5, (8,))
    want = [torch.zeros_like(p) for p in bn_net().parameters()]
    for xs, ys in zip(x.tensor_split(2), y.tensor_split(2)):
        for acc, g in zip(want, full_batch(bn_net(), xs, ys)[2]):
            acc.add_(g / 2)
    whole = bn_net()
    full_batch(whole, x, y)
    model = bn_net()
    reps = ThreadReplicas(model, 2, threads=1)
    try:
        reps.backward(x, y, loss_fn, contextlib.nullcontext)
    finally:
        reps.close()
    for g, w in zip([p.grad for p in model.parameters()], want):
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model[1].running_mean, whole[1].running_mean, rtol=1e-6, atol=1e-7)
    assert int(model[1].num_batches_tracked) == 1


def test_replicas_are_bit_for_bit_reproducible_and_follow_the_model():
    x, y = torch.randn(16, 3, 6, 6), torch.randint(0, 5, (16,))
    grads = []
    for _ in range(2):
        model = bn_net()
        reps = ThreadReplicas(model, 2, threads=1)
        try:
            reps.backward(x, y, loss_fn, contextlib.nullcontext)
            grads.append([p.grad.clone() for p in model.parameters()])
            # What the model changes between steps reaches the copies: weights, frozen parameters, eval mode.
            with torch.no_grad():
                model[0].weight.mul_(2)
            model[0].bias.requires_grad_(False)
            model[1].eval()
            reps.backward(x, y, loss_fn, contextlib.nullcontext)
            copy = reps.copies[0]
            assert torch.equal(copy[0].weight, model[0].weight)
            assert not copy[0].bias.requires_grad and model[0].bias.grad is None
            assert not copy[1].training and copy[0].training
            assert torch.equal(copy[1].running_mean, model[1].running_mean)  # eval: the statistics stay as they were
        finally:
            reps.close()
    assert all(torch.equal(a, b) for a, b in zip(*grads))


def test_stepping_runs_the_caller_on_one_thread_and_gives_its_threads_back():
    before = torch.get_num_threads()
    reps = ThreadReplicas(no_bn_net(), 2, threads=1)
    try:
        with reps.stepping():
            assert torch.get_num_threads() == 1
            reps.backward(torch.randn(4, 3, 6, 6), torch.randint(0, 5, (4,)), loss_fn, contextlib.nullcontext)
        assert torch.get_num_threads() == before
    finally:
        reps.close()
    assert threads_per_replica(2, 2) == 1 and threads_per_replica(2, 8) == 4 and threads_per_replica(4, 2) == 1
    with pytest.raises(ValueError, match="at least 2 replicas"):
        ThreadReplicas(no_bn_net(), 1)


def test_autocast_is_entered_in_each_worker():
    dtypes = []

    def lf(m, x, y):
        logits = m(x)
        dtypes.append(logits.dtype)
        return F.cross_entropy(logits.float(), y), logits

    reps = ThreadReplicas(no_bn_net(), 2, threads=1)
    try:
        reps.backward(torch.randn(4, 3, 6, 6), torch.randint(0, 5, (4,)), lf,
                      lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    finally:
        reps.close()
    assert dtypes == [torch.bfloat16] * 2


def tiny(out, **over) -> Config:
    ov = {"model.name": "airbench_cpu", "data.name": "digits", "data.image_size": 16, "train.epochs": 2,
          "run.output": str(out), "run.progress": "none", "run.tensorboard": False, "train.precision": "fp32",
          "data.batch_size": 64, "train.replicas": 2}
    ov.update(over)
    return load_config(None, ov)


def test_a_replicated_run_trains_says_so_and_repeats_exactly(tmp_path):
    lines, four = [], {"train.epochs": 4}
    a = fit(tiny(tmp_path / "a", **four), log=lines.append)
    b = fit(tiny(tmp_path / "b", **four), log=lambda line: None)
    assert any("batch 64 over 2 replicas x 1 thread" in line for line in lines)
    assert a["test_top1"] > 0.75 and a["test_top1"] == b["test_top1"]
    wa, wb = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    one = fit(tiny(tmp_path / "one", **four, **{"train.replicas": 1}), log=lambda line: None)
    assert abs(one["test_top1"] - a["test_top1"]) < 0.1  # the same training, BatchNorm over half batches


def test_an_interrupted_replicated_run_resumes_bit_for_bit(tmp_path, monkeypatch):
    full = tmp_path / "full"
    fit(tiny(full), log=lambda line: None)
    assert_resumes_exactly(monkeypatch, lambda: tiny(tmp_path / "part"), full, 20)


@pytest.mark.parametrize("overrides,message", [
    ({"train.replicas": 0}, r"train.replicas is a number of model replicas, at least 1, got 0"),
    ({"train.replicas": 2, "optim.sam": True}, r"does not combine with optim.sam or train.compile"),
    ({"train.replicas": 2, "train.compile": True}, r"does not combine with optim.sam or train.compile"),
])
def test_bad_values_are_one_line(overrides, message):
    with pytest.raises(UserError, match=message):
        validate(apply_overrides(Config(), overrides))


def test_off_by_default_and_cpu_only(tmp_path, monkeypatch):
    assert Config().train.replicas == 1
    cfg = tiny(tmp_path / "off", **{"train.replicas": 1})
    trainer = Trainer(cfg, RunDir(cfg.run.output), log=lambda line: None)
    trainer.setup()
    assert trainer.replicas is None
    import cnnzoo.train.trainer as trainer_mod

    monkeypatch.setattr(trainer_mod.dist, "device_for_rank", lambda dev: torch.device("cuda", 0))
    monkeypatch.setattr(trainer_mod, "_seed_and_backends", lambda cfg, dev: None)
    cfg = tiny(tmp_path / "gpu")
    with pytest.raises(UserError, match=r"train.replicas splits each batch over the CPU's cores in one process; "
                                        r"on cuda:0 set train.replicas=1"):
        Trainer(cfg, RunDir(cfg.run.output), log=lambda line: None).setup()
