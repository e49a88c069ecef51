"""Your own photos (issue 13): the folder layout said out loud, decoding, the decode-once cache, the header's counts.

Existing checks this file does not repeat: non-image files ignored and the loader over a folder
(tests/test_data.py::test_folder_dataset), an empty class (test_data.py::test_folder_errors,
test_reliability.py::test_folder_with_empty_class), one class and symbolic-link loops (test_lifecycle.py),
decompression bombs and phone-sized photos (test_lifecycle.py).
"""

from __future__ import annotations

import io
import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnzoo.cli import main
from cnnzoo.data import AugmentConfig, ImageData, load_dataset, make_loader
from cnnzoo.data import folder as folder_mod
from cnnzoo.data.cache import DecodedCache, decoded_size
from cnnzoo.errors import UserError
from cnnzoo.io import RunDir, load_weights
from cnnzoo.train.config import load_config
from cnnzoo.train.trainer import Trainer, fit, load_splits

QUIET = ["--no-progress", "--precision", "fp32"]


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path, monkeypatch):
    """Every cache of these tests lives in the test's own directory, never in ~/.cache."""
    monkeypatch.setenv("CNNZOO_CACHE", str(tmp_path / "cache"))


def _png(path: Path, value, size=(20, 24), mode="RGB") -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(abs(hash(str(path))) % 2**32)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    img = np.clip(rng.normal(value, 25, shape), 0, 255).astype(np.uint8)
    Image.fromarray(img, mode).save(path)


def _folder(root: Path, splits=("train",), n=6, classes=("dark", "light"), size=(20, 24)) -> Path:
    """Images of ``size`` (W x H) in ``root/<split>/<class>/``; dark ones near 40, light ones near 200."""
    for split in splits:
        for c in classes:
            for i in range(n if split == "train" else 2):
                _png(root / split / c / f"{i}.png", 40 if c == "dark" else 200, size)
    return root


def _eval_batches(data, **kw):
    args = dict(batch_size=4, train=False, image_size=(16, 16), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
                num_workers=0)
    args.update(kw)
    return [(x.clone(), y.clone()) for x, y in make_loader(data, **args)]


def _same(a, b) -> bool:
    return len(a) == len(b) and all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b))


class _Counting:
    """decode_image, counted (monkeypatched into cnnzoo.data.folder)."""

    def __init__(self, monkeypatch):
        self.real, self.calls = folder_mod.decode_image, []
        monkeypatch.setattr(folder_mod, "decode_image", self)

    def __call__(self, path, *a, **k):
        self.calls.append(Path(path).name)
        return self.real(path, *a, **k)


# ----------------------------------------------------------------------------------------- layout


@pytest.mark.parametrize("splits", [("train",), ("train", "val"), ("train", "val", "test"), ("train", "test")])
def test_each_layout_is_read_and_said(tmp_path, splits):
    root = _folder(tmp_path / "f", splits)
    ds = load_dataset("folder", str(root))
    assert (ds.val is not None) == ("val" in splits) and (ds.test is not None) == ("test" in splits)
    cfg = load_config(None, {"data.name": "folder", "data.dir": str(root)})
    s = load_splits(cfg)
    lines = folder_mod.describe_splits(str(root), s.dataset, s.val, cfg.data.val_split)
    if "val" in splits:  # val/ is the validation split, whole, and nothing is carved from train/
        assert s.val is s.dataset.val and len(s.train) == 12 and "val/ 4 images" in lines[0]
    else:
        assert len(s.val) == 1 and len(s.train) == 11
        assert "val/ none (1 carved from train/, data.val_split 0.1)" in lines[0]
    assert lines[0].startswith(f"folder {root}: train/ 12 images, ")
    if "test" in splits:
        assert s.test is s.dataset.test and len(lines) == 1 and lines[0].endswith("test/ 4 images")
    else:
        assert s.test is None and lines[1] == f"no test/ folder: no test pass (put test images in {root / 'test'}/<class>/)"


@pytest.mark.parametrize("split", ["val", "test"])
def test_a_class_that_train_lacks_is_one_error(tmp_path, split):
    root = _folder(tmp_path / "f", ("train", split))
    _png(root / split / "wolf" / "0.png", 90)
    with pytest.raises(UserError, match=rf"{split} has classes that .*train lacks: wolf; use the class directory"):
        load_dataset("folder", str(root))


def test_an_empty_class_in_val_is_named(tmp_path):
    root = _folder(tmp_path / "f", ("train", "val"))
    (root / "val" / "light" / "0.png").unlink()
    (root / "val" / "light" / "1.png").unlink()
    with pytest.raises(UserError, match="val/light has no image files"):
        load_dataset("folder", str(root))


def test_a_run_says_where_validation_and_test_come_from(tmp_path, capsys):
    """The layout lines, the size and its source, --image-size, the test pass only with test/."""
    root = _folder(tmp_path / "f", ("train", "val"))
    out = tmp_path / "run"
    assert main(["train", "--model", "simple_convnet", "--data", "folder", "--data-dir", str(root), "--epochs", "1",
                 "--batch-size", "4", "--output", str(out), "--set", "data.num_workers=0", *QUIET]) == 0
    printed = capsys.readouterr().out
    assert f"folder {root}: train/ 12 images, val/ 4 images, test/ none" in printed
    assert "no test/ folder: no test pass" in printed
    assert "| 24px (the images' size), batch 4" in printed and "folder: 12 train, 4 val |" in printed
    assert "test_top1" not in json.loads((out / "results.json").read_text())
    _folder(root, ("test",))
    assert main(["train", "--model", "simple_convnet", "--data", "folder", "--data-dir", str(root), "--epochs", "1",
                 "--batch-size", "4", "--output", str(tmp_path / "run2"), "--image-size", "16",
                 "--set", "data.num_workers=0", *QUIET]) == 0
    printed = capsys.readouterr().out
    assert "| 16px (data.image_size), batch 4" in printed and "no test/ folder" not in printed
    res = json.loads((tmp_path / "run2" / "results.json").read_text())
    assert res["image_size"] == [16, 16] and "test_top1" in res
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "run2"), "--split", "val", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 4


# ----------------------------------------------------------------------------------------- decoding


def _jpeg_bytes(arr: np.ndarray, **kw) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=95, **kw)
    return buf.getvalue()


def test_image_modes_decode_to_grey_or_rgb(tmp_path):
    from PIL import Image

    grey = np.full((6, 8), 100, np.uint8)
    Image.fromarray(grey, "L").save(tmp_path / "grey.png")
    rgba = np.zeros((6, 8, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    pal = Image.fromarray(np.full((6, 8), 3, np.uint8), "L").convert("P")
    pal.putpalette([0, 0, 0] * 3 + [10, 20, 30] + [0, 0, 0] * 252)
    pal.save(tmp_path / "palette.png")
    Image.fromarray(np.full((6, 8), 32768, np.uint16)).save(tmp_path / "deep.png")  # 16-bit grey
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")

    assert folder_mod.decode_image(str(tmp_path / "grey.png")).shape == (1, 6, 8)
    assert folder_mod.decode_image(str(tmp_path / "grey.png"), "RGB")[:, 0, 0].tolist() == [100, 100, 100]
    assert folder_mod.decode_image(str(tmp_path / "rgba.png"))[:, 0, 0].tolist() == [200, 0, 0]
    assert folder_mod.decode_image(str(tmp_path / "palette.png"))[:, 0, 0].tolist() == [10, 20, 30]
    deep = folder_mod.decode_image(str(tmp_path / "deep.png"))
    assert deep.shape == (1, 6, 8) and deep.unique().tolist() == [128]  # scaled, not clipped to white


def test_an_exif_rotated_jpeg_comes_out_upright(tmp_path):
    from PIL import Image

    # Stored landscape, 40 wide x 20 high, left half dark; EXIF orientation 6: show it rotated 90 degrees clockwise.
    arr = np.full((20, 40, 3), 230, np.uint8)
    arr[:, :20] = 20
    exif = Image.Exif()
    exif[0x0112] = 6
    (tmp_path / "turned.jpg").write_bytes(_jpeg_bytes(arr, exif=exif.tobytes()))
    img = folder_mod.decode_image(str(tmp_path / "turned.jpg"), "RGB")
    assert img.shape == (3, 40, 20)  # portrait, as a camera's viewer shows it
    top, bottom = img[:, :15].float().mean(), img[:, 25:].float().mean()
    assert top < 60 and bottom > 190  # the dark left half is now on top


def test_broken_files_warn_once_each_and_a_summary(tmp_path, capsys):
    root = _folder(tmp_path / "f", n=5)
    (root / "train" / "dark" / "empty.jpg").write_bytes(b"")
    good = _jpeg_bytes(np.random.default_rng(0).integers(0, 256, (30, 30, 3), dtype=np.uint8))
    (root / "train" / "light" / "cut.jpg").write_bytes(good[: len(good) // 2])
    ds = load_dataset("folder", str(root))
    first = _eval_batches(ds.train)
    assert sum(len(y) for _, y in first) == 10
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3, err
    assert "empty.jpg" in err[0] and "cut.jpg" in err[1] and "truncated" in err[1]
    assert err[2] == "cnnzoo: warning: 2 of 12 images unreadable, skipped"
    # A second loader remembers them: no new attempt, one line that says so, the same batches.
    assert _same(_eval_batches(ds.train), first)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("cnnzoo: warning: 2 of 12 images unreadable (as the decoded cache ")
    with pytest.raises(UserError, match=r"2 images could not be read \(more than 1: the larger of 0 and "
                                        r"data.max_bad_share 0.1 of 12\)"):
        _eval_batches(ds.train, max_failures=0, max_bad_share=0.1)


# ----------------------------------------------------------------------------------------- the cache


def test_decoded_size_is_imagenets_ratio():
    assert decoded_size((224, 224)) == 256 and decoded_size((112, 112)) == 128 and decoded_size((32, 28)) == 37


def test_the_cache_is_built_by_workers_and_reused_without_decoding(tmp_path, monkeypatch):
    root = _folder(tmp_path / "f", size=(30, 20))  # not square: the fit and the centre crop matter
    ds = load_dataset("folder", str(root))
    decoded = _eval_batches(ds.train, cache=False)
    built = _eval_batches(ds.train, num_workers=1)  # a worker writes the rows into the memory map
    assert _same(built, decoded)  # cache or not, evaluation sees the same centre crops
    caches = list((tmp_path / "cache").iterdir())
    assert len(caches) == 1 and (caches[0] / "images.npy").stat().st_size >= 12 * 3 * 19 * 19
    rows = json.loads((caches[0] / "index.json").read_text())["rows"]
    assert all(r is not None and r[2] == "" for r in rows)
    count = _Counting(monkeypatch)
    assert _same(_eval_batches(ds.train), decoded) and count.calls == []  # read from the map, no decoding
    # A training split carved from train/ reads the same cache.
    from cnnzoo.data import split_validation

    part, _ = split_validation(ds.train, 0.25, seed=0)
    loader = make_loader(part, batch_size=4, train=True, image_size=(16, 16), mean=(0.5,) * 3, std=(0.25,) * 3,
                         num_workers=0, augment=AugmentConfig(hflip=True))
    assert sum(len(y) for _, y in loader) == 8 and count.calls == []
    assert len(list((tmp_path / "cache").iterdir())) == 1


def test_training_batches_are_the_same_with_or_without_the_cache(tmp_path):
    """Random crops and flips of the decoded squares: the cache changes the speed, never the batches."""
    ds = load_dataset("folder", str(_folder(tmp_path / "f", size=(30, 20))))
    aug = AugmentConfig(random_resized_crop=True, hflip=True, color=0.2)

    def epoch(cache: bool):
        loader = make_loader(ds.train, batch_size=4, train=True, image_size=(16, 16), mean=(0.5,) * 3,
                             std=(0.25,) * 3, num_workers=0, augment=aug, seed=5, cache=cache)
        loader.set_epoch(1)
        return [(x.clone(), y.clone()) for x, y in loader]

    plain, cold, warm = epoch(False), epoch(True), epoch(True)
    assert len(plain) == 3 and _same(plain, cold) and _same(plain, warm)


def test_a_changed_added_or_removed_file_is_noticed(tmp_path, monkeypatch):
    root = _folder(tmp_path / "f", n=3)
    first = _eval_batches(load_dataset("folder", str(root)).train)
    count = _Counting(monkeypatch)
    changed = root / "train" / "dark" / "1.png"
    _png(changed, 120, size=(22, 24))  # another size in bytes and another mtime
    st = changed.stat()
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    again = _eval_batches(load_dataset("folder", str(root)).train)
    assert count.calls == ["1.png"]  # only the changed row
    assert not torch.equal(again[0][0], first[0][0]) and torch.equal(again[1][0], first[1][0])
    count.calls.clear()
    _png(root / "train" / "light" / "9.png", 200)  # added: a new path list, the whole cache again
    assert sum(len(y) for _, y in _eval_batches(load_dataset("folder", str(root)).train)) == 7
    assert len(count.calls) == 7
    count.calls.clear()
    (root / "train" / "light" / "9.png").unlink()  # removed
    assert _same(_eval_batches(load_dataset("folder", str(root)).train), again) and len(count.calls) == 6


def test_an_interrupted_build_is_not_trusted(tmp_path, monkeypatch):
    root = _folder(tmp_path / "f", n=4)
    ds = load_dataset("folder", str(root))
    loader = make_loader(ds.train, batch_size=2, train=False, image_size=(16, 16), mean=(0.5,) * 3,
                         std=(0.25,) * 3, num_workers=0)
    it = iter(loader)
    next(it), next(it)
    it.close()  # stopped after two of four batches, as a killed run
    count = _Counting(monkeypatch)
    _eval_batches(ds.train)
    assert len(count.calls) == 8  # nothing of the interrupted pass was trusted
    count.calls.clear()
    _eval_batches(ds.train)
    assert count.calls == []


def test_a_first_training_pass_also_decodes_what_drop_last_leaves_out(tmp_path, monkeypatch):
    root = _folder(tmp_path / "f", n=5)
    ds = load_dataset("folder", str(root))
    loader = make_loader(ds.train, batch_size=4, train=True, image_size=(16, 16), mean=(0.5,) * 3,
                         std=(0.25,) * 3, num_workers=0)
    assert len(loader) == 2 and loader.num_samples == 8
    assert sum(len(y) for _, y in loader) == 8
    assert loader._known().all()  # the two images no batch used were decoded after the epoch's batches
    count = _Counting(monkeypatch)
    assert sum(len(y) for _, y in loader) == 8 and count.calls == []


def test_a_cache_larger_than_the_free_disk_is_refused(tmp_path, monkeypatch):
    import shutil

    root = _folder(tmp_path / "f", n=2)
    files = [str(p) for p in sorted((root / "train").rglob("*.png"))]
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(UserError, match=r"the decoded cache of 4 images at 256px needs 0.0 GiB, more than the 0.0 "
                                        r"GiB free in .*; set data.cache_dir to a larger disk"):
        DecodedCache(files, "RGB", 256)


# ----------------------------------------------------------------------------------------- training


def test_in_memory_crops_replace_the_resize():
    data = ImageData(torch.randint(0, 256, (8, 1, 12, 12), dtype=torch.uint8), torch.arange(8) % 2)
    common = dict(batch_size=8, train=True, image_size=(8, 8), mean=(0.5,), std=(0.25,), seed=3)
    plain, = list(make_loader(data, **common))
    crop = AugmentConfig(random_resized_crop=True)
    a, = list(make_loader(data, augment=crop, **common))
    b, = list(make_loader(data, augment=crop, **common))
    assert a[0].shape == (8, 1, 8, 8) and torch.equal(a[0], b[0]) and not torch.equal(a[0], plain[0])


def test_mixing_gives_soft_targets_and_needs_the_class_count():
    data = ImageData(torch.randint(0, 256, (8, 1, 8, 8), dtype=torch.uint8), torch.arange(8) % 2)
    common = dict(batch_size=8, train=True, image_size=(8, 8), mean=(0.5,), std=(0.25,))
    with pytest.raises(UserError, match="num_classes"):
        make_loader(data, augment=AugmentConfig(mixup=0.2), **common)
    (x, y), = list(make_loader(data, augment=AugmentConfig(mixup=0.2), num_classes=2, **common))
    assert y.shape == (8, 2) and y.dtype == torch.float32 and torch.allclose(y.sum(1), torch.ones(8))


def _header(tmp_path, **over) -> str:
    ov = {"model.name": "lenet5", "data.name": "digits", "train.device": "cpu", "run.output": str(tmp_path / "h")}
    ov.update(over)
    t = Trainer(load_config(None, ov), RunDir(tmp_path / "h"), log=lambda s: None)
    t.setup()
    return t.header()


def test_the_header_counts_what_an_epoch_uses(tmp_path):
    # digits: 1,438 training images, 144 carved for validation; 1,294 / 128 leaves 14 short of a batch.
    assert ("| digits: 1,280 of 1,294 train per epoch (14 short of a batch; data.drop_last=false keeps them), "
            "144 val | 32px (the model's input), batch 128") in _header(tmp_path)
    assert "| digits: 1,294 train, 144 val |" in _header(tmp_path, **{"data.drop_last": False})
    # 13 per class = 130 images; batches of 43 leave one image: never a batch of one (BatchNorm).
    line = _header(tmp_path, **{"data.drop_last": False, "data.per_class": 13, "data.batch_size": 43})
    assert "| digits: 129 of 130 train per epoch (a last batch of 1 left out: BatchNorm needs 2), 144 val |" in line


def test_without_drop_last_the_last_partial_batch_is_trained_on():
    data = ImageData(torch.zeros(10, 1, 4, 4, dtype=torch.uint8), torch.arange(10))
    common = dict(batch_size=4, train=True, image_size=(4, 4), mean=(0.5,), std=(0.5,))
    assert [len(y) for _, y in make_loader(data, drop_last=False, **common)] == [4, 4, 2]
    assert [len(y) for _, y in make_loader(data, **common)] == [4, 4]
    data = ImageData(torch.zeros(9, 1, 4, 4, dtype=torch.uint8), torch.arange(9))
    assert [len(y) for _, y in make_loader(data, drop_last=False, **common)] == [4, 4]


def _folder_run(out: Path, root: Path, epochs: int, cache_dir: Path):
    ov = {"model.name": "simple_convnet", "data.name": "folder", "data.dir": str(root), "data.batch_size": 4,
          "data.num_workers": 0, "data.cache_dir": str(cache_dir), "data.augment.hflip": True,
          "data.augment.random_resized_crop": True, "train.epochs": epochs, "train.precision": "fp32",
          "train.device": "cpu", "train.deterministic": True, "run.output": str(out), "run.progress": "none"}
    return fit(load_config(None, ov), log=lambda s: None)


def test_a_folder_run_interrupted_in_its_first_pass_resumes_exactly(tmp_path, monkeypatch):
    """SIGINT at the second step of the first epoch (the cache half built); the resumed run decodes what the
    interrupted pass did not commit and ends on the uninterrupted run's weights (as test_train's resume test)."""
    from cnnzoo.train.trainer import Interrupted

    root = _folder(tmp_path / "f", ("train", "test"), n=9, size=(24, 20))
    full = _folder_run(tmp_path / "full", root, 3, tmp_path / "cache-full")

    real_step, calls = Trainer.train_step, []

    def step(self, x, y):
        real_step(self, x, y)
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)  # the trainer's handler: finish the step, checkpoint, stop

    monkeypatch.setattr(Trainer, "train_step", step)
    with pytest.raises(Interrupted):
        _folder_run(tmp_path / "part", root, 3, tmp_path / "cache-part")
    monkeypatch.setattr(Trainer, "train_step", real_step)
    resumed = fit(load_config(str(tmp_path / "part" / "config.yaml")), resume=str(tmp_path / "part"),
                  log=lambda s: None)
    a = load_weights(tmp_path / "full" / "model.safetensors")[0]
    b = load_weights(tmp_path / "part" / "model.safetensors")[0]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["test_top1"] == full["test_top1"]
