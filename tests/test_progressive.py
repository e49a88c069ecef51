"""Progressive resizing (train.progressive_*): the schedule, the resized batch, and the trainer using them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cnnzoo.errors import UserError
from cnnzoo.io import RunDir
from cnnzoo.train.config import Config, apply_overrides, load_config, validate
from cnnzoo.train.progressive import ProgressiveResize
from cnnzoo.train.trainer import Trainer, fit
from test_method import assert_resumes_exactly

PROGRESSIVE = {"train.progressive_scale": 0.5, "train.progressive_delay": 0.25, "train.progressive_finetune": 0.25}


def test_the_schedule_holds_grows_and_ends_at_full_size():
    """Composer's schedule: the starting size for the first `delay` of the steps, full for the last `finetune`,
    linear between (sides rounded to the increment), never shrinking."""
    r = ProgressiveResize((28, 28), 100, scale=0.5, delay=0.3, finetune=0.2, increment=4)
    sizes = [r.size(s) for s in range(100)]
    assert set(sizes[:30]) == {(16, 16)}  # 0.5 x 28 = 14, rounded to a multiple of 4
    assert set(sizes[80:]) == {(28, 28)}
    assert all(a[0] <= b[0] for a, b in zip(sizes, sizes[1:]))
    assert all(h % 4 == 0 and h == w for h, w in sizes)
    assert r.scale_at(55) == pytest.approx(0.5 + 0.5 * (0.55 - 0.3) / 0.5)
    assert r.size(55) == (20, 20)  # 0.75 x 28 = 21 -> 20
    assert r.size(60) == (24, 24)  # 0.8 x 28 = 22.4 -> 24
    # No growth phase: a step from the starting size to full; the full side need not be a multiple (10 -> 12).
    jump = ProgressiveResize((30, 20), 10, scale=0.5, delay=0.6, finetune=0.4, increment=4)
    assert [jump.size(s) for s in range(10)] == [(16, 12)] * 6 + [(30, 20)] * 4


def test_the_resized_batch_is_bilinear_antialiased_and_keeps_its_layout():
    r = ProgressiveResize((12, 12), 10, scale=0.5, delay=0.5, finetune=0.2, increment=2)
    x = torch.randn(4, 3, 12, 12).contiguous(memory_format=torch.channels_last)
    small = r(x, 0)
    want = F.interpolate(x, size=(6, 6), mode="bilinear", align_corners=False, antialias=True)
    assert small.shape == (4, 3, 6, 6) and torch.allclose(small, want)
    assert small.is_contiguous(memory_format=torch.channels_last)
    assert r(x, 9) is x  # full size: the batch as it came
    plain = torch.randn(4, 3, 12, 12)
    assert r(plain, 0).is_contiguous()


def test_a_start_below_the_models_smallest_input_is_one_error():
    with pytest.raises(UserError, match=r"train.progressive_scale 0.5 starts at 8x8 px, below the model's smallest "
                                        r"input \(9 px\): raise the scale"):
        ProgressiveResize((16, 16), 10, scale=0.5, delay=0.5, finetune=0.2, increment=4, min_side=9)


def tiny(out, **over) -> Config:
    ov = {"model.name": "airbench_cpu", "data.name": "digits", "data.image_size": 24, "train.epochs": 2,
          "run.output": str(out), "run.progress": "none", "run.tensorboard": False, "train.precision": "fp32",
          "data.batch_size": 64, **PROGRESSIVE}
    ov.update(over)
    return load_config(None, ov)


def test_the_trainer_steps_on_small_batches_first_and_evaluates_at_full_size(tmp_path, monkeypatch):
    cfg = tiny(tmp_path / "run")
    seen, lines = [], []
    step = Trainer.train_step

    def record(self, x, y):
        seen.append((self.step, tuple(x.shape[-2:]), x.is_contiguous(memory_format=torch.channels_last)))
        step(self, x, y)

    monkeypatch.setattr(Trainer, "train_step", record)
    evals = []
    real_eval = Trainer.validate

    def val(self):
        handle = self.model.register_forward_pre_hook(lambda m, a: evals.append(tuple(a[0].shape[-2:])))
        try:
            return real_eval(self)
        finally:
            handle.remove()

    monkeypatch.setattr(Trainer, "validate", val)
    fit(cfg, log=lines.append)
    total = len(seen)
    sched = ProgressiveResize((24, 24), total, 0.5, 0.25, 0.25, 4)
    assert [hw for _, hw, _ in seen] == [sched.size(s) for s, _, _ in seen]
    assert seen[0][1] == (12, 12) and seen[-1][1] == (24, 24) and all(cl for *_, cl in seen)
    assert evals and set(evals) == {(24, 24)}
    assert any(line.startswith("progressive resizing: 12x12 px for steps 1-") for line in lines)


def test_an_interrupted_progressive_run_resumes_bit_for_bit(tmp_path, monkeypatch):
    """The size is a function of the step: a run stopped while the size grows and resumed ends as the
    uninterrupted one."""
    full = tmp_path / "full"
    fit(tiny(full), log=lambda line: None)
    assert_resumes_exactly(monkeypatch, lambda: tiny(tmp_path / "part"), full, 14)


@pytest.mark.parametrize("overrides,message", [
    ({"train.progressive_scale": 0}, r"train.progressive_scale is the starting side's fraction of the full one, "
                                     r"in \(0, 1\]"),
    ({"train.progressive_scale": 1.5}, r"in \(0, 1\] \(1: off\), got 1.5"),
    ({"train.progressive_delay": -0.1}, r"train.progressive_delay is a fraction of the steps, in \[0, 1\]"),
    ({"train.progressive_delay": 0.7, "train.progressive_finetune": 0.5},
     r"train.progressive_delay \+ train.progressive_finetune is at most the whole run \(1\), got 0.7 \+ 0.5"),
    ({"train.progressive_increment": 0}, r"train.progressive_increment is a number of pixels, at least 1"),
])
def test_bad_values_are_one_line(overrides, message):
    with pytest.raises(UserError, match=message):
        validate(apply_overrides(Config(), overrides))


def test_off_by_default(tmp_path):
    assert Config().train.progressive_scale == 1.0
    cfg = tiny(tmp_path / "off", **{"train.progressive_scale": 1.0})
    trainer = Trainer(cfg, RunDir(cfg.run.output), log=lambda line: None)
    trainer.setup()
    assert trainer.resizer is None
