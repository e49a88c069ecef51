"""Faults and scale: SIGKILL at any point, SIGTERM, DDP on two CPU processes, bad input, safe loading."""

from __future__ import annotations

import gzip
import json
import os
import pickle
import re
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cnnzoo.io import RunDir, load_weights

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT / "src"), PYTHONUNBUFFERED="1")
# Runs a test signals mid-way: each step pauses 30 ms, so an epoch (about 50 steps) lasts well over the test's
# 0.3 s wait on any machine (an epoch of digits takes 0.1 s without it: a run could end before the signal).
SLOW = dict(ENV, CNNZOO_STEP_DELAY="0.03")
BASE = ["train", "--model", "lenet5", "--data", "digits", "--epochs", "3", "--batch-size", "32", "--deterministic",
        "--no-progress", "--precision", "fp32", "--set", "run.tensorboard=false"]


def cli(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "cnnzoo", *args], capture_output=True, text=True,
                          env=env or ENV, timeout=timeout, cwd=ROOT)


def same_weights(a: Path, b: Path) -> bool:
    wa, wb = load_weights(a / "model.safetensors")[0], load_weights(b / "model.safetensors")[0]
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    r = cli(*BASE, "--output", str(out))
    assert r.returncode == 0, r.stderr
    return out


# ----------------------------------------------------------------------------------------- faults


def _start(out: Path, env=None):
    return subprocess.Popen([sys.executable, "-m", "cnnzoo", *BASE, "--output", str(out)], env=env or SLOW, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigkill_mid_epoch_then_resume_is_bit_exact(reference, tmp_path):
    out = tmp_path / "run"
    p = _start(out)
    for line in p.stdout:
        if line.startswith("epoch 1/3"):
            time.sleep(0.3)  # into epoch 2
            p.kill()
            break
    p.wait(timeout=60)
    assert p.returncode == -signal.SIGKILL
    assert RunDir(out).latest_checkpoint() is not None
    r = cli("train", "--resume", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert same_weights(reference, out)


def test_sigkill_while_writing_a_checkpoint(reference, tmp_path):
    """Killed inside a checkpoint write: the previous checkpoint stays intact and the resume is bit-exact."""
    out = tmp_path / "run"
    env = dict(SLOW, CNNZOO_CHECKPOINT_DELAY="3")
    p = _start(out, env)
    ck = out / "checkpoints"
    deadline = time.time() + 120
    while time.time() < deadline:  # the second checkpoint's temporary directory appears: kill inside the write
        if ck.is_dir() and RunDir(out).latest_checkpoint() is not None and any(ck.glob(".epoch-0002.tmp-*")):
            break
        time.sleep(0.05)
    p.kill()
    p.communicate(timeout=60)
    last = RunDir(out).latest_checkpoint()
    assert last is not None and last.name == "epoch-0001", last
    load_weights(last / "model.safetensors")  # whole, readable
    r = cli("train", "--resume", str(out), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert not list(ck.glob(".*.tmp-*")), "stale temporary checkpoint left behind"
    assert same_weights(reference, out)


def test_sigterm_saves_and_says_how_to_resume(reference, tmp_path):
    out = tmp_path / "run"
    p = _start(out)
    for line in p.stdout:
        if line.startswith("epoch 1/3"):
            p.send_signal(signal.SIGTERM)
            break
    _, err = p.communicate(timeout=60)
    assert p.returncode == 128 + signal.SIGTERM, err
    assert f"resume with `cnnzoo train --resume {out}`" in err and "Traceback" not in err
    assert cli("train", "--resume", str(out), "--no-progress").returncode == 0
    assert same_weights(reference, out)


def test_the_quick_exit_keeps_every_line_and_the_status(capsys):
    """`python -m cnnzoo` leaves by os._exit once PyTorch is loaded (cli.entry, skipping the interpreter's
    teardown): a pipe still gets every line the command printed, and the exit status is the command's."""
    from cnnzoo.cli import main

    r = cli("summary", "lenet5")
    assert r.returncode == 0, r.stderr
    assert main(["summary", "lenet5"]) == 0
    assert r.stdout == capsys.readouterr().out and r.stdout.count("\n") > 10
    bad = cli("summary", "lenet5", "--input", "nonsense")
    assert bad.returncode == 2 and bad.stderr.startswith("cnnzoo: error:") and bad.stderr.count("\n") == 1, bad.stderr


# ----------------------------------------------------------------------------------------- distributed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_cpu_processes_match_one_process(tmp_path):
    """2 ranks x batch 32 (gloo on loopback) == 1 process x batch 64: same data, same steps, same weights.

    Without augmentation: each rank draws its own augmentation, so with it the runs differ by design.
    """
    common = ["--model", "lenet5", "--data", "digits", "--epochs", "2", "--deterministic", "--no-progress",
              "--precision", "fp32", "--set", "run.tensorboard=false"]
    one = tmp_path / "one"
    r = cli("train", *common, "--batch-size", "64", "--output", str(one))
    assert r.returncode == 0, r.stderr
    two = tmp_path / "two"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}", "-m", "cnnzoo", "train", *common,
           "--batch-size", "32", "--output", str(two)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=dict(ENV, OMP_NUM_THREADS="1"), timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((two / "results.json").read_text())
    assert res["world_size"] == 2 and res["global_batch"] == 64 and res["ranks_identical"] is True
    assert r.stdout.count("epoch 1/2") == 1, "only rank 0 logs"
    wa, wb = load_weights(one / "model.safetensors")[0], load_weights(two / "model.safetensors")[0]
    for k in wa:  # the gradient all-reduce sums in another order: equal up to float rounding
        torch.testing.assert_close(wa[k], wb[k], atol=2e-4, rtol=1e-3)


def test_ddp_ranks_end_identical_with_batchnorm(tmp_path):
    """Each rank's BatchNorm updates its running statistics from its own batches; the trainer gives every rank
    rank 0's after each epoch, so the ranks validate and end on one model (ranks_identical was false for every
    network with BatchNorm before) and the validation accuracy rank 0 logs is the saved model's."""
    out = tmp_path / "bn"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}", "-m", "cnnzoo", "train", "--model", "resnet20",
           "--data", "digits", "--epochs", "1", "--batch-size", "32", "--no-progress", "--precision", "fp32",
           "--set", "run.tensorboard=false", "--output", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=dict(ENV, OMP_NUM_THREADS="1"), timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((out / "results.json").read_text())
    assert res["world_size"] == 2 and res["ranks_identical"] is True


DDP = [*BASE[:5], "--epochs", "4", *BASE[7:], "--nproc", "2"]


def _workers_of(out: Path) -> list:
    """The cnnzoo processes still running for output ``out`` (any orphaned worker among them)."""
    r = subprocess.run(["pgrep", "-f", "--", f"--output {out}"], capture_output=True, text=True)
    return [int(x) for x in r.stdout.split()]


def _start_ddp(out: Path):
    return subprocess.Popen([sys.executable, "-m", "cnnzoo", *DDP, "--output", str(out)], env=SLOW, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _after_first_epoch(p: subprocess.Popen) -> None:
    for line in p.stdout:
        if line.startswith("epoch 1/4"):
            time.sleep(0.3)  # into epoch 2
            return
    raise AssertionError(p.communicate()[1][-3000:])


def _two_rank_trainer(monkeypatch, tmp_path, **overrides):
    """A Trainer that believes it is one of 2 ranks (no process group: nothing is sent); DDP's wrap recorded."""
    from cnnzoo.train import distributed as dist
    from cnnzoo.train.config import load_config
    from cnnzoo.train.trainer import Trainer

    monkeypatch.setattr(dist, "world_size", lambda: 2)
    wrapped = []
    monkeypatch.setattr(dist, "wrap", lambda model, device, sync_bn=False: wrapped.append(sync_bn) or model)
    cfg = load_config(None, {"model.name": "resnet20", "data.name": "digits", "train.epochs": 1,
                             "run.output": str(tmp_path / "run"), "run.progress": "none", **overrides})
    lines = []
    return Trainer(cfg, RunDir(cfg.run.output), log=lines.append), wrapped, lines


def test_sync_bn_on_cpu_ranks_is_one_line_before_any_data(monkeypatch, tmp_path):
    """PyTorch's SyncBatchNorm raises in the first forward on the CPU ("only work with GPU modules", once a rank,
    after the data is read): the trainer says so first, with what to set."""
    from cnnzoo.errors import UserError

    trainer, wrapped, _ = _two_rank_trainer(monkeypatch, tmp_path, **{"train.sync_bn": True})
    with pytest.raises(UserError, match=r"train\.sync_bn.*GPUs only.*set train\.sync_bn=false"):
        trainer.setup()
    assert wrapped == [] and not hasattr(trainer, "splits")


def test_sync_bn_leaves_frozen_batchnorm_alone(monkeypatch, tmp_path):
    """model.freeze_bn keeps BatchNorm in eval mode through forward hooks that SyncBatchNorm's new modules would not
    have: with both set, the BatchNorm layers are not converted (frozen statistics need no synchronising)."""
    trainer, wrapped, lines = _two_rank_trainer(monkeypatch, tmp_path, **{"train.sync_bn": True,
                                                                         "model.freeze_bn": True})
    trainer.setup()
    assert wrapped == [False]
    assert any("nothing to synchronise" in line for line in lines), lines
    assert not any(isinstance(m, torch.nn.SyncBatchNorm) for m in trainer.model.modules())


def test_sigterm_to_a_ddp_run_stops_every_worker_and_resumes_exactly(tmp_path):
    """SIGTERM to `cnnzoo train --nproc 2`: both workers checkpoint after the same step and exit; none is left
    running; the resumed run's weights are bit-identical to an uninterrupted two-process run."""
    ref = tmp_path / "ref"
    r = cli(*DDP, "--output", str(ref))
    assert r.returncode == 0, r.stderr[-3000:]
    out = tmp_path / "run"
    p = _start_ddp(out)
    _after_first_epoch(p)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert not _workers_of(out), "a worker kept training after the launcher stopped"
    assert err.count("SIGTERM received: checkpoint saved") == 1 and "Traceback" not in err, err[-3000:]
    r = cli("train", "--resume", str(out), "--no-progress", "--nproc", "2")
    assert r.returncode == 0, r.stderr[-3000:]
    assert same_weights(ref, out)


def test_a_killed_ddp_launcher_leaves_no_orphan(tmp_path):
    """SIGKILL cannot be passed on: the kernel sends the workers SIGTERM (PR_SET_PDEATHSIG) and they checkpoint."""
    out = tmp_path / "run"
    p = _start_ddp(out)
    _after_first_epoch(p)
    p.kill()
    p.wait(timeout=60)
    deadline = time.time() + 60
    while _workers_of(out) and time.time() < deadline:
        time.sleep(0.2)
    assert not _workers_of(out), "workers outlived their launcher"
    assert RunDir(out).latest_checkpoint() is not None


# ----------------------------------------------------------------------------------------- bad input


def _idx(path: Path, arr: bytes, dims, magic_type=0x08, gz=True, truncate=0):
    header = struct.pack(">BBBB", 0, 0, magic_type, len(dims)) + b"".join(struct.pack(">I", d) for d in dims)
    data = (header + arr)[: len(header + arr) - truncate]
    (gzip.open if gz else open)(path, "wb").write(data)


@pytest.fixture
def bad_mnist(tmp_path):
    def make(n_img=20, n_lab=20, truncate=0, magic=0x08):
        d = tmp_path / "mnist"
        d.mkdir(exist_ok=True)
        for split in ("train", "t10k"):
            _idx(d / f"{split}-images-idx3-ubyte.gz", bytes(n_img * 784), (n_img, 28, 28), magic, truncate=truncate)
            _idx(d / f"{split}-labels-idx1-ubyte.gz", bytes(n_lab), (n_lab,))
        return d
    return make


def _one_line(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cnnzoo: error: "), r.stderr[-2000:]
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def test_missing_dataset_says_where_it_looked(tmp_path):
    _one_line(cli("train", "--data", "kmnist", "--data-dir", str(tmp_path)), "kmnist", str(tmp_path))


def test_truncated_idx(bad_mnist):
    d = bad_mnist(truncate=100)
    _one_line(cli("train", "--data", "mnist", "--data-dir", str(d)), "images-idx3-ubyte")


def test_idx_count_mismatch(bad_mnist):
    d = bad_mnist(n_img=20, n_lab=19)
    _one_line(cli("train", "--data", "mnist", "--data-dir", str(d)))


def test_corrupt_cifar(tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    for name in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
                 "batches.meta"]:
        (d / name).write_bytes(b"\x80\x02}q\x00(X\x04\x00")  # a pickle cut short
    _one_line(cli("train", "--data", "cifar10", "--data-dir", str(tmp_path)), "cifar")


def test_folder_with_empty_class(tmp_path):
    from PIL import Image

    (tmp_path / "train" / "cat").mkdir(parents=True)
    (tmp_path / "train" / "dog").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "train" / "cat" / "a.png")
    _one_line(cli("train", "--data", "folder", "--data-dir", str(tmp_path)), "dog")


def test_input_too_small_for_the_model():
    _one_line(cli("train", "--model", "alexnet_owt", "--set", "data.image_size=32", "--epochs", "1"),
              "alexnet_owt needs inputs of at least")


def test_checkpoint_of_another_architecture(tmp_path):
    import torchvision

    p = tmp_path / "vgg.pth"
    torch.save(torchvision.models.vgg11(weights=None).state_dict(), p)
    _one_line(cli("train", "--model", "resnet20", "--pretrained", str(p), "--epochs", "1"), "another architecture")


def test_nonfinite_loss_exit_2(tmp_path):
    line = _one_line(cli("train", "--model", "simple_convnet", "--lr", "1e6", "--set", "schedule.name=constant",
                         "--epochs", "2", "--output", str(tmp_path / "nan"), "--no-progress"),
                     "non-finite", "epoch", "step", "lr")
    assert "checkpoint" in line


def test_predict_unreadable_image(reference, tmp_path):
    bad = tmp_path / "not-an-image.png"
    bad.write_text("hello")
    _one_line(cli("predict", str(reference), str(bad)), "not-an-image.png")


def test_yaml_error_line_number(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("model:\n  name: lenet5\n  kwargs: {a: 1\n")
    assert re.search(r"at line \d+", _one_line(cli("train", "-c", str(p))))


# ----------------------------------------------------------------------------------------- safe loading


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_crafted_training_state_is_refused_without_running(reference, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(reference, run)
    marker = tmp_path / "pwned"
    ck = RunDir(run).latest_checkpoint()
    (ck / "state.pt").write_bytes(pickle.dumps({"epoch": _Evil(marker)}))
    _one_line(cli("train", "--resume", str(run), "--epochs", "4"), "refusing to load")
    assert not marker.exists()


def test_no_unsafe_loading_in_the_source():
    """No torch.load without weights_only=True, no bare pickle.load, YAML only through safe_load."""
    src = ROOT / "src" / "cnnzoo"
    for f in src.rglob("*.py"):
        text = f.read_text()
        for m in re.finditer(r"torch\.load\(", text):
            depth, i = 1, m.end()
            while depth and i < len(text):
                depth += {"(": 1, ")": -1}.get(text[i], 0)
                i += 1
            call = text[m.start():i]
            assert "weights_only=True" in call, f"{f}: {call}"
        assert "pickle.load(" not in text and "pickle.loads(" not in text, f
        assert "yaml.load(" not in text and "yaml.unsafe_load" not in text, f
