"""Run life cycle and bad input (issue 16, first part): each case one `cnnzoo: error:` line, exit 2, nothing lost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnzoo.cli import main
from cnnzoo.io import RunDir, load_weights, save_weights

QUIET = ["--no-progress", "--precision", "fp32"]


def train(out: Path, *extra: str) -> int:
    return main(["train", "--model", "lenet5", "--data", "digits", "--output", str(out), *QUIET, *extra])


def one_error_line(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("cnnzoo: error: "), err
    for n in needles:
        assert n in err, err
    return err


@pytest.mark.parametrize("args, needle", [
    (["train", "--device", "bogus"], "unknown device 'bogus'; use auto, cpu, cuda or cuda:N"),
    (["benchmark", "lenet5", "--device", "bogus", "--repeats", "1"], "unknown device 'bogus'"),
    (["train", "--set", "schedule.name=step", "--set", "schedule.step_size=0"], "schedule.step_size"),
    (["train", "--set", "schedule.min_lr=-1"], "schedule.min_lr is a fraction of the peak rate"),
    (["train", "--set", "model.kwargs.in_chans=3"], "model.kwargs.in_chans is set by the run itself"),
])
def test_bad_settings_are_one_line(args, needle, capsys):
    assert main(args) == 2
    one_error_line(capsys, needle)


def test_eval_with_a_bogus_device(tmp_path, capsys):
    save_weights(tmp_path / "w.safetensors", __import__("cnnzoo").create_model("lenet5", num_classes=10, in_chans=1))
    assert main(["eval", str(tmp_path / "w.safetensors"), "--data", "digits", "--device", "bogus"]) == 2
    one_error_line(capsys, "unknown device 'bogus'")


def test_results_json_is_strict(tmp_path):
    out = tmp_path / "r"
    assert train(out, "--epochs", "1", "--val-split", "0") == 0  # no validation: val_top1 is not measured

    def refuse(name):
        raise AssertionError(f"{name} in results.json")

    res = json.loads((out / "results.json").read_text(), parse_constant=refuse)
    assert res["val_top1"] is None and res["total_seconds"] >= res["train_seconds"]


def test_metadata_never_chooses_a_file_to_open(tmp_path):
    """A crafted model_args.pretrained in a weights file is ignored: cnnzoo opens only what the user names."""
    from cnnzoo.builder import load_model

    bait = tmp_path / "bait.pth"  # it does not exist: opening it would fail
    m = __import__("cnnzoo").create_model("lenet5", num_classes=10, in_chans=1)
    m.model_args = dict(m.model_args, pretrained=str(bait), features_only=True)
    save_weights(tmp_path / "crafted.safetensors", m)
    model, meta = load_model(tmp_path / "crafted.safetensors")
    assert meta["model_args"]["pretrained"] == str(bait)  # it is in the file ...
    assert "pretrained" not in model.model_args and type(model).__name__ != "FeatureExtractor"  # ... and not used


def test_broken_pipe_ends_quietly():
    p = subprocess.run(f"{sys.executable} -m cnnzoo list --format markdown | head -n 1", shell=True,
                       capture_output=True, text=True)
    assert p.stdout.startswith("| name |") and "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr


def test_resume_of_a_finished_run_changes_nothing(tmp_path, capsys):
    out = tmp_path / "done"
    assert train(out, "--epochs", "2") == 0
    before = {f: (out / f).read_bytes() for f in ("config.yaml", "model.safetensors", "results.json")}
    capsys.readouterr()
    assert main(["train", "--resume", str(out), *QUIET]) == 2
    one_error_line(capsys, "has finished its 2 epochs", "pass --epochs with more than 2")
    assert main(["train", "--resume", str(out), "--epochs", "1", *QUIET]) == 2
    one_error_line(capsys, "has finished its 2 epochs")
    assert {f: (out / f).read_bytes() for f in before} == before


def test_a_run_killed_before_its_first_checkpoint_says_to_overwrite(tmp_path, capsys):
    out = tmp_path / "early"
    out.mkdir()
    (out / "config.yaml").write_text("model:\n  name: lenet5\ndata:\n  name: digits\n")
    assert main(["train", "--resume", str(out), *QUIET]) == 2
    one_error_line(capsys, "stopped before its first checkpoint", "--overwrite")
    assert train(out, "--epochs", "1") == 2
    one_error_line(capsys, "holds no checkpoint to resume; --overwrite to start it again")


def test_a_damaged_latest_checkpoint_gives_way_to_the_previous_one(tmp_path, capsys):
    out = tmp_path / "dmg"
    assert train(out, "--epochs", "2") == 0
    state = out / "checkpoints" / "epoch-0002" / "state.pt"
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])  # a disk that filled, a copy cut short
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--epochs", "3", *QUIET]) == 0
    text = capsys.readouterr().out
    assert "checkpoint epoch-0002" in text and "is damaged: resuming from epoch-0001" in text
    assert "continuing at epoch 2" in text
    res = json.loads((out / "results.json").read_text())
    assert res["epochs"] == 3 and res["total_seconds"] >= res["train_seconds"]
    assert len((out / "metrics.csv").read_text().splitlines()) == 4  # header + epochs 1, 2 (again), 3


def test_a_stop_at_the_last_step_of_an_epoch_keeps_that_epochs_rate(tmp_path, monkeypatch):
    """A signal on an epoch's last batch: the resumed epoch has no batch left, and its metrics row keeps its lr."""
    import signal

    from cnnzoo.train import trainer as T
    from cnnzoo.train.config import load_config

    cfg = load_config(None, {"model.name": "lenet5", "data.name": "digits", "train.epochs": 2, "train.precision": "fp32",
                             "run.output": str(tmp_path / "r"), "run.progress": "none", "schedule.name": "constant"})
    step = T.Trainer.train_step

    def stop_on_last_batch(self, x, y):
        step(self, x, y)
        if self.epoch == 0 and self.batch_in_epoch == self.steps_per_epoch - 1:
            self._stop = signal.SIGTERM

    monkeypatch.setattr(T.Trainer, "train_step", stop_on_last_batch)
    with pytest.raises(T.Interrupted):
        T.fit(cfg, log=lambda m: None)
    monkeypatch.setattr(T.Trainer, "train_step", step)
    T.fit(load_config(str(tmp_path / "r" / "config.yaml")), resume=str(tmp_path / "r"), log=lambda m: None)
    rows = (tmp_path / "r" / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    first = dict(zip(header, rows[1].split(",")))
    assert float(first["lr"]) == pytest.approx(cfg.optim.lr)


# ------------------------------------------------------------------------------ the run directory's integrity


def test_two_trainings_into_one_output_one_refuses(tmp_path, capsys):
    """A second process may not train into a directory the first one holds (the lock names its owner)."""
    out = tmp_path / "shared"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom cnnzoo.io import RunDir\n"
        f"with RunDir({str(out)!r}).lock():\n    print('locked', flush=True)\n    time.sleep(30)\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert train(out, "--epochs", "1") == 2
        one_error_line(capsys, "is in use by another cnnzoo process (pid", "choose another --output")
    finally:
        holder.kill()
        holder.wait()
    assert train(out, "--epochs", "1") == 0  # the kernel dropped the dead owner's lock: no stale lock to clear


def test_overwrite_that_fails_leaves_the_old_run_intact(tmp_path, capsys):
    out = tmp_path / "keep"
    assert train(out, "--epochs", "1") == 0
    (out / "model.onnx").write_bytes(b"an export of the old run")
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != RunDir.LOCK}
    capsys.readouterr()
    # A learning rate that diverges at once: the new run fails before its first checkpoint.
    assert main(["train", "--model", "resnet20", "--data", "digits", "--output", str(out), "--overwrite", *QUIET,
                 "--lr", "1e6", "--set", "schedule.name=constant", "--epochs", "2"]) == 2
    assert "loss became non-finite" in capsys.readouterr().err
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != RunDir.LOCK}
    assert after == before and not list(out.glob(".replaced-*"))
    # A good overwrite replaces every file of the old run, exports included.
    assert train(out, "--epochs", "1", "--overwrite") == 0
    assert not (out / "model.onnx").exists() and not list(out.glob(".replaced-*"))


def test_pruning_deletes_only_its_own_checkpoints(tmp_path):
    out = tmp_path / "prune"
    (out / "checkpoints" / "my-best-copy").mkdir(parents=True)
    (out / "checkpoints" / "my-best-copy" / "note.txt").write_text("mine")
    assert train(out, "--epochs", "4", "--overwrite") == 0
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert "epoch-0001" not in names and {"epoch-0003", "epoch-0004", "LATEST"} <= set(names)
    # the user's directory was set aside with the old run by --overwrite, then deleted with it; without
    # --overwrite it is never touched:
    out2 = tmp_path / "prune2"
    assert train(out2, "--epochs", "1") == 0
    (out2 / "checkpoints" / "my-best-copy").mkdir()
    assert main(["train", "--resume", str(out2), "--epochs", "4", *QUIET]) == 0
    assert (out2 / "checkpoints" / "my-best-copy").is_dir()


def test_latest_naming_a_path_outside_the_run_is_refused(tmp_path, capsys):
    out = tmp_path / "trav"
    assert train(out, "--epochs", "1") == 0
    (out / "checkpoints" / "LATEST").write_text("../../outside/ck\n")
    (out / "model.safetensors").unlink()  # so eval reads the checkpoint LATEST names
    capsys.readouterr()
    assert main(["eval", str(out), "--data", "digits"]) == 2
    one_error_line(capsys, "LATEST names '../../outside/ck', which is not a checkpoint of this run")


def test_a_symlinked_checkpoints_directory_is_refused(tmp_path, capsys):
    """Pruning never follows a symbolic link out of the run directory."""
    import shutil

    out = tmp_path / "sym"
    assert train(out, "--epochs", "1") == 0
    elsewhere = tmp_path / "elsewhere"
    shutil.move(str(out / "checkpoints"), str(elsewhere))
    (elsewhere / "precious").mkdir()
    (out / "checkpoints").symlink_to(elsewhere)
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--epochs", "4", *QUIET]) == 2
    one_error_line(capsys, "checkpoints is a symbolic link", "make it a plain directory")
    assert (elsewhere / "precious").is_dir() and (elsewhere / "epoch-0001").is_dir()


def test_disk_full_while_checkpointing_is_one_line_and_resumable(tmp_path, capsys, monkeypatch):
    import errno

    import cnnzoo.io as cio

    out = tmp_path / "full"
    assert train(out, "--epochs", "1") == 0
    real = cio.save_state
    monkeypatch.setattr(cio, "save_state", lambda path, state: (_ for _ in ()).throw(
        OSError(errno.ENOSPC, "No space left on device", str(path))))
    capsys.readouterr()
    assert main(["train", "--resume", str(out), "--epochs", "2", *QUIET]) == 2
    err = one_error_line(capsys, "no space left on the device writing", "the last good checkpoint is",
                         "epoch-0001", "--resume")
    assert not list((out / "checkpoints").glob(".*tmp*")), "a half-written checkpoint was left behind"
    monkeypatch.setattr(cio, "save_state", real)
    assert main(["train", "--resume", str(out), "--epochs", "2", *QUIET]) == 0
    assert json.loads((out / "results.json").read_text())["epochs"] == 2, err


def _png(path: Path, value: int = 0) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (8, 8), value).save(path)


def test_a_symlink_loop_in_an_image_folder_ends_the_scan(tmp_path):
    from cnnzoo.data import load_dataset

    for c in ("a", "b"):
        _png(tmp_path / "train" / c / "x.png", 10 if c == "a" else 200)
    (tmp_path / "train" / "a" / "loop").symlink_to(tmp_path / "train" / "a")  # a -> a -> a ...
    ds = load_dataset("folder", str(tmp_path))  # finishes (it used to walk the loop for ever)
    assert len(ds.train) == 2


def test_a_folder_with_one_class_is_refused(tmp_path, capsys):
    _png(tmp_path / "train" / "cats" / "x.png")
    assert main(["train", "--data", "folder", "--data-dir", str(tmp_path), *QUIET]) == 2
    one_error_line(capsys, "has one class (cats): a classifier needs at least two")


def test_a_recipe_that_is_not_utf8_names_the_file(tmp_path, capsys):
    recipe = tmp_path / "latin1.yaml"
    recipe.write_bytes("model:\n  name: lenet5  # caf\xe9\n".encode("latin-1"))
    assert main(["train", "-c", str(recipe), *QUIET]) == 2
    one_error_line(capsys, "latin1.yaml is not UTF-8 text", "save the recipe as UTF-8")


# ----------------------------------------------------------------------------------------- data and sizes (issue 16)


def test_a_missing_data_dir_is_never_replaced_by_another_copy(tmp_path, capsys):
    """Fashion-MNIST is installed system-wide in CI; a --data-dir that lacks it must not fall back to that copy."""
    assert main(["train", "--data", "fashion-mnist", "--data-dir", str(tmp_path / "nowhere"), *QUIET]) == 2
    one_error_line(capsys, "--data-dir", "nowhere", "does not exist")
    (tmp_path / "empty").mkdir()
    assert main(["train", "--data", "fashion-mnist", "--data-dir", str(tmp_path / "empty"), *QUIET]) == 2
    err = one_error_line(capsys, "fashion-mnist not found", str(tmp_path / "empty"))
    assert "/usr/share" not in err and ".cache" not in err


def test_a_truncated_gzip_stream_is_refused(tmp_path, capsys):
    from test_reliability import _idx

    d = tmp_path / "mnist"
    d.mkdir()
    for split, n in (("train", 50), ("t10k", 10)):
        _idx(d / f"{split}-images-idx3-ubyte.gz", bytes(range(256)) * (n * 784 // 256) + bytes(n * 784 % 256),
             (n, 28, 28))
        _idx(d / f"{split}-labels-idx1-ubyte.gz", bytes(i % 10 for i in range(n)), (n,))
    whole = (d / "train-images-idx3-ubyte.gz").read_bytes()
    (d / "train-images-idx3-ubyte.gz").write_bytes(whole[: len(whole) * 2 // 3])  # a download cut short
    assert main(["train", "--data", "mnist", "--data-dir", str(d), "--epochs", "1", *QUIET]) == 2
    one_error_line(capsys, "train-images-idx3-ubyte.gz", "truncated or corrupt")


def test_a_truncated_cifar_batch_is_named(tmp_path, capsys):
    from test_data import write_cifar

    d, _ = write_cifar(tmp_path)
    good = (d / "data_batch_3").read_bytes()
    (d / "data_batch_3").write_bytes(good[: len(good) // 2])
    assert main(["train", "--data", "cifar10", "--data-dir", str(tmp_path), "--epochs", "1", *QUIET]) == 2
    err = one_error_line(capsys, "data_batch_3 is truncated or corrupt")
    assert "data_batch_1" not in err and "batches.meta" not in err


def test_an_absurd_image_size_is_refused_before_allocating(capsys):
    assert main(["train", "--model", "resnet20", "--set", "data.image_size=100000", *QUIET]) == 2
    one_error_line(capsys, "data.image_size=100000 is outside 1..4096 px")
    assert main(["train", "--model", "resnet20", "--set", "data.image_size=4096", "--batch-size", "4096",
                 *QUIET]) == 2
    one_error_line(capsys, "x 4096 x 4096 images needs", "GiB as float32", "lower data.batch_size")


def _photos(root: Path, size=(3000, 2000), n=3) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        (root / "train" / c).mkdir(parents=True)
        for i in range(n):
            small = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
            Image.fromarray(small).resize(size).save(root / "train" / c / f"{i}.jpg", quality=80)


def test_phone_sized_photos_train_at_the_models_size(tmp_path, capsys):
    _photos(tmp_path / "photos")
    out = tmp_path / "run"
    assert main(["train", "--model", "resnet20", "--data", "folder", "--data-dir", str(tmp_path / "photos"),
                 "--epochs", "1", "--batch-size", "4", "--output", str(out), *QUIET]) == 0
    printed = capsys.readouterr().out
    assert "2000px images: training at resnet20's input size, 32px" in printed
    assert json.loads((out / "results.json").read_text())["image_size"] == [32, 32]


def test_a_decompression_bomb_is_skipped_not_decoded(tmp_path, capsys):
    """A small PNG whose header says 10000 x 10000 is one warning line, not 300 MB per worker (or 24 GB)."""
    from PIL import Image

    from cnnzoo.data.folder import decode_image

    _photos(tmp_path / "photos", size=(40, 30))
    bomb = tmp_path / "photos" / "train" / "cat" / "bomb.png"
    Image.new("1", (10000, 10000)).save(bomb)
    assert bomb.stat().st_size < 100_000
    why = decode_image(str(bomb), "RGB", (32, 32))
    assert isinstance(why, str) and "10000x10000 is 100 megapixels" in why
    out = tmp_path / "run"
    assert main(["train", "--model", "resnet20", "--data", "folder", "--data-dir", str(tmp_path / "photos"),
                 "--epochs", "1", "--batch-size", "4", "--output", str(out), "--val-split", "0", *QUIET]) == 0
    assert "bomb.png" in capsys.readouterr().err


def test_a_kill_between_latest_and_pruning_is_finished_on_resume(tmp_path, monkeypatch):
    """LATEST is replaced before the old checkpoints are pruned: a kill in between leaves one too many, which the
    next resume removes (never the one it resumes from, nor the user's own files)."""
    run = RunDir(tmp_path / "run")
    model = torch.nn.Linear(2, 2)
    monkeypatch.setattr(RunDir, "_prune", lambda self, current, keep, protect=(): None)  # the process dies before pruning
    for epoch in (1, 2, 3):
        run.save_checkpoint(f"epoch-{epoch:04d}", model, {"epoch": epoch}, {})
    (run.checkpoints / "my-copy").mkdir()
    assert [d.name for d in run.own_checkpoints()] == ["epoch-0001", "epoch-0002", "epoch-0003"]
    monkeypatch.undo()
    ck, _, state, note = run.load_checkpoint()
    assert ck.name == "epoch-0003" and state["epoch"] == 3 and not note
    assert [d.name for d in run.own_checkpoints()] == ["epoch-0002", "epoch-0003"]
    assert (run.checkpoints / "my-copy").is_dir()


def test_resume_with_another_models_checkpoint_is_one_line(tmp_path, capsys):
    import shutil

    ours, other = tmp_path / "ours", tmp_path / "other"
    assert train(ours, "--epochs", "1") == 0
    assert main(["train", "--model", "simple_convnet", "--data", "digits", "--epochs", "1", "--output", str(other),
                 *QUIET]) == 0
    before = (ours / "model.safetensors").read_bytes()
    for f in ("model.safetensors", "state.pt"):
        shutil.copy(other / "checkpoints" / "epoch-0001" / f, ours / "checkpoints" / "epoch-0001" / f)
    capsys.readouterr()
    assert main(["train", "--resume", str(ours), "--epochs", "2", *QUIET]) == 2
    one_error_line(capsys, "epoch-0001 holds weights of simple_convnet, not of this run's lenet5", "--overwrite")
    assert (ours / "model.safetensors").read_bytes() == before


def test_a_run_killed_after_its_last_checkpoint_is_finished_by_resume(tmp_path, capsys):
    """Killed after the last epoch's checkpoint, before the test pass wrote results.json: --resume finishes it."""
    out = tmp_path / "r"
    assert train(out, "--epochs", "2", "--deterministic") == 0
    first = json.loads((out / "results.json").read_text())
    weights = load_weights(out / "model.safetensors")[0]
    for f in ("results.json", "model.safetensors"):
        (out / f).unlink()
    assert main(["train", "--resume", str(out), *QUIET]) == 0
    assert "training is done, finishing the run" in capsys.readouterr().out
    again = json.loads((out / "results.json").read_text())
    assert again["test_top1"] == first["test_top1"] and again["epochs"] == 2
    assert all(torch.equal(weights[k], v) for k, v in load_weights(out / "model.safetensors")[0].items())
