"""Data package: sources (digits, IDX, CIFAR pickles, folders), the validation split, loaders, augmentation."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import re
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnzoo.data import (DATASETS, AugmentConfig, FolderData, ImageData, load_dataset, load_image, make_loader,
                         split_validation)
from cnnzoo.data.sources import read_cifar_pickle, read_idx
from cnnzoo.errors import UserError
from conftest import FASHION_DIR, needs_fashion



@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    # ~/.cache/cnnzoo is one of the places searched: keep the user's cache out of the tests.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def synthetic(n=60, c=1, h=8, w=8, classes=3, seed=0) -> ImageData:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, c, h, w), generator=g, dtype=torch.uint8)
    return ImageData(images, torch.arange(n) % classes)


def batches(loader):
    return [(x.clone(), y.clone()) for x, y in loader]


# ------------------------------------------------------------------------------------------------ digits

def test_dataset_names():
    assert DATASETS == ("digits", "mnist", "fashion-mnist", "kmnist", "cifar10", "cifar100", "folder")
    with pytest.raises(UserError, match="unknown dataset"):
        load_dataset("imagenet21k")


def test_digits(digits):
    assert digits.classes == [str(i) for i in range(10)]
    assert digits.in_chans == 1 and digits.image_size == (8, 8)
    tr, te = digits.train, digits.test
    assert tr.images.dtype == torch.uint8 and tr.labels.dtype == torch.int64
    assert tr.images.shape[1:] == (1, 8, 8) and len(tr) + len(te) == 1797
    assert len(te) == round(1797 * 0.2)
    assert int(tr.images.max()) == 255  # 16 -> 255
    counts = torch.bincount(te.labels, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # stratified
    again = load_dataset("digits")
    assert torch.equal(again.test.images, te.images)  # a fixed split
    assert len(digits.mean) == 1 and 0 < digits.mean[0] < 1 and 0 < digits.std[0] < 1


# ------------------------------------------------------------------------------------------------ IDX

def write_idx(path: Path, array: np.ndarray, gz: bool) -> Path:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def write_mnist(d: Path, n_train=20, n_test=10, gz=False, seed=0):
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for stem, n in (("train", n_train), ("t10k", n_test)):
        img = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        lab = (np.arange(n) % 10).astype(np.uint8)
        write_idx(d / f"{stem}-images-idx3-ubyte", img, gz)
        write_idx(d / f"{stem}-labels-idx1-ubyte", lab, gz)
        arrays[stem] = (img, lab)
    return arrays


@pytest.mark.parametrize("gz", [False, True])
def test_idx_small_files(tmp_path, gz):
    arrays = write_mnist(tmp_path / "mnist" / "raw", gz=gz)
    ds = load_dataset("mnist", str(tmp_path))
    assert ds.classes == [str(i) for i in range(10)] and ds.in_chans == 1 and ds.image_size == (28, 28)
    assert torch.equal(ds.train.images[:, 0], torch.from_numpy(arrays["train"][0]))
    assert torch.equal(ds.test.labels, torch.from_numpy(arrays["t10k"][1].astype(np.int64)))
    assert abs(ds.mean[0] - arrays["train"][0].mean() / 255) < 1e-6


def test_idx_errors(tmp_path):
    d = tmp_path / "d"
    write_mnist(d)
    images = d / "train-images-idx3-ubyte"
    good = images.read_bytes()
    images.write_bytes(good[:-5])
    with pytest.raises(UserError, match="train-images-idx3-ubyte is truncated"):
        load_dataset("kmnist", str(d))
    images.write_bytes(b"\x01\x02" + good[2:])
    with pytest.raises(UserError, match="train-images-idx3-ubyte is not an IDX file"):
        load_dataset("kmnist", str(d))
    images.write_bytes(good)
    write_idx(d / "train-labels-idx1-ubyte", np.zeros(19, np.uint8), gz=False)
    with pytest.raises(UserError, match="20 images but .*train-labels-idx1-ubyte has 19 labels"):
        load_dataset("kmnist", str(d))
    gzpath = write_idx(tmp_path / "x-idx1-ubyte", np.zeros(100, np.uint8), gz=True)
    gzpath.write_bytes(gzpath.read_bytes()[:-12])
    with pytest.raises(UserError, match="x-idx1-ubyte.gz"):
        read_idx(gzpath, 1)
    with pytest.raises(UserError, match="dimensions"):
        read_idx(d / "train-labels-idx1-ubyte", 3)


def test_idx_missing(tmp_path):
    with pytest.raises(UserError, match="--download"):
        load_dataset("mnist", str(tmp_path))


@needs_fashion
def test_fashion_mnist_real_files():
    ds = load_dataset("fashion-mnist", str(FASHION_DIR))
    assert ds.train.images.shape == (60000, 1, 28, 28) and ds.test.images.shape == (10000, 1, 28, 28)
    assert ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot"
    assert torch.bincount(ds.train.labels).tolist() == [6000] * 10
    assert abs(ds.mean[0] - 0.2860) < 1e-3 and abs(ds.std[0] - 0.3530) < 1e-3
    img = load_image("fashion-mnist:123")
    assert torch.equal(img, ds.test.images[123])


# ------------------------------------------------------------------------------------------------ CIFAR

class Py2Pickler(pickle._Pickler):
    """Writes what Python 2's cPickle wrote for the CIFAR batches: strings as BINSTRING, numpy.core globals."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj):
        data = obj if isinstance(obj, bytes) else obj.encode("latin1")
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str
    dispatch[str] = save_py2_str


def py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue().replace(b"cnumpy._core.multiarray\n_reconstruct\n", b"cnumpy.core.multiarray\n_reconstruct\n")


def write_cifar(root: Path, hundred=False, n=6, seed=0):
    rng = np.random.default_rng(seed)
    if hundred:
        d = root / "cifar-100-python"
        names = {"train": n, "test": n}
        key, meta, names_key, k = "fine_labels", "meta", "fine_label_names", 100
    else:
        d = root / "cifar-10-batches-py"
        names = {f"data_batch_{i}": n for i in range(1, 6)} | {"test_batch": n}
        key, meta, names_key, k = "labels", "batches.meta", "label_names", 10
    d.mkdir(parents=True)
    written = {}
    for name, count in names.items():
        data = rng.integers(0, 256, (count, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, k, count)]
        batch = {"batch_label": f"{name} of 5", "data": data, key: labels,
                 "filenames": [f"img_{i}.png" for i in range(count)]}
        if hundred:
            batch["coarse_labels"] = [v // 5 for v in labels]
        (d / name).write_bytes(py2_pickle(batch))
        written[name] = (data, labels)
    (d / meta).write_bytes(py2_pickle({names_key: [f"class_{i}" for i in range(k)], "num_vis": 3072}))
    return d, written


def test_cifar10_pickles(tmp_path):
    d, written = write_cifar(tmp_path)
    ds = load_dataset("cifar10", str(tmp_path))
    assert ds.classes == [f"class_{i}" for i in range(10)] and ds.in_chans == 3 and ds.image_size == (32, 32)
    assert ds.train.images.shape == (30, 3, 32, 32) and ds.test.images.shape == (6, 3, 32, 32)
    data, labels = written["data_batch_2"]
    img = ds.train.images[6]  # first image of the second batch
    assert torch.equal(img[0], torch.from_numpy(data[0, :1024].reshape(32, 32)))  # red plane first
    assert torch.equal(img[2], torch.from_numpy(data[0, 2048:].reshape(32, 32)))
    assert ds.train.labels[6:12].tolist() == labels
    # The same files straight from the tar.gz.
    arc_root = tmp_path / "arc"
    arc_root.mkdir()
    with tarfile.open(arc_root / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(d, arcname="cifar-10-batches-py")
    ds2 = load_dataset("cifar10", str(arc_root))
    assert torch.equal(ds2.train.images, ds.train.images) and torch.equal(ds2.test.labels, ds.test.labels)


def test_cifar100_pickles(tmp_path):
    _, written = write_cifar(tmp_path, hundred=True)
    ds = load_dataset("cifar100", str(tmp_path))
    assert len(ds.classes) == 100 and ds.classes[42] == "class_42"
    assert ds.train.labels.tolist() == written["train"][1]
    assert torch.equal(ds.test.images[1].reshape(-1), torch.from_numpy(written["test"][0][1]))


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_refused(tmp_path):
    d, _ = write_cifar(tmp_path)
    marker = tmp_path / "pwned"
    (d / "data_batch_3").write_bytes(pickle.dumps({"data": _Evil(marker), "labels": []}, protocol=2))
    with pytest.raises(UserError, match="data_batch_3.*refusing"):
        load_dataset("cifar10", str(tmp_path))
    assert not marker.exists()
    with pytest.raises(UserError, match="refusing"):
        read_cifar_pickle(pickle.dumps(_Evil(marker)), "evil")
    assert not marker.exists()


def test_cifar_corrupt(tmp_path):
    d, _ = write_cifar(tmp_path)
    good = (d / "test_batch").read_bytes()
    (d / "test_batch").write_bytes(good[: len(good) // 2])
    with pytest.raises(UserError, match="test_batch is truncated or corrupt"):
        load_dataset("cifar10", str(tmp_path))
    (d / "test_batch").write_bytes(py2_pickle({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}))
    with pytest.raises(UserError, match="test_batch: 'data' should be uint8 N x 3072"):
        load_dataset("cifar10", str(tmp_path))
    with pytest.raises(UserError, match="cifar100 not found"):
        load_dataset("cifar100", str(tmp_path))


# ------------------------------------------------------------------------------------------------ folder

def write_folder(root: Path, classes=("cat", "dog", "emu"), per_class=4, size=(12, 10), mode="RGB", val=True):
    from PIL import Image

    rng = np.random.default_rng(0)
    shape = (size[0], size[1], 3) if mode == "RGB" else size
    for split in ("train", "val") if val else ("train",):
        for c in classes:
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(per_class if split == "train" else 2):
                Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(d / f"{i}.png")
    return root


def test_folder_dataset(tmp_path):
    root = write_folder(tmp_path / "f")
    (root / "train" / "dog" / "notes.txt").write_text("not an image")  # ignored: not an image extension
    ds = load_dataset("folder", str(root))
    assert ds.classes == ["cat", "dog", "emu"] and ds.in_chans == 3 and ds.image_size == (12, 10)
    assert isinstance(ds.train, FolderData) and len(ds.train) == 12 and len(ds.val) == 6 and ds.test is None
    assert ds.mean == (0.485, 0.456, 0.406)
    loader = make_loader(ds.train, batch_size=5, train=False, image_size=(16, 16), mean=ds.mean, std=ds.std,
                         num_workers=0)
    got = batches(loader)
    assert [x.shape for x, _ in got] == [(5, 3, 16, 16), (5, 3, 16, 16), (2, 3, 16, 16)]
    assert torch.cat([y for _, y in got]).tolist() == [0] * 4 + [1] * 4 + [2] * 4
    train, val = split_validation(ds.train, 0.25, seed=1)
    assert len(train) == 9 and len(val) == 3 and sorted(val.labels.tolist()) == [0, 1, 2]


def test_folder_workers_and_augment(tmp_path):
    root = write_folder(tmp_path / "f", mode="L", val=False)
    ds = load_dataset("folder", str(root))
    assert ds.in_chans == 1 and ds.test is None and len(ds.mean) == 1
    aug = AugmentConfig(hflip=True, translate=2, color=0.3, erasing=0.5)
    loader = make_loader(ds.train, batch_size=4, train=True, image_size=(8, 8), mean=ds.mean, std=ds.std,
                         num_workers=1, augment=aug, in_chans=3, seed=3)
    first = batches(loader)
    loader.set_epoch(0)
    again = batches(loader)
    assert len(first) == 3 and first[0][0].shape == (4, 3, 8, 8)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))


def test_folder_unreadable_files(tmp_path, capsys):
    root = write_folder(tmp_path / "f", val=False)
    bad = root / "train" / "cat" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    ds = load_dataset("folder", str(root))
    loader = make_loader(ds.train, batch_size=20, train=False, image_size=(8, 8), mean=ds.mean, std=ds.std,
                         num_workers=0)
    (x, y), = batches(loader)
    assert len(y) == 12
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and err[0].startswith("cnnzoo: warning: skipping unreadable image ") and "broken.png" in err[0]
    assert re.fullmatch(r"cnnzoo: warning: 1 of \d+ images unreadable, skipped", err[1]), err[1]
    (root / "train" / "dog" / "broken2.jpg").write_bytes(b"garbage")
    ds = load_dataset("folder", str(root))
    loader = make_loader(ds.train, batch_size=20, train=False, image_size=(8, 8), mean=ds.mean, std=ds.std,
                         num_workers=0, max_failures=1)
    with pytest.raises(UserError, match="2 images could not be read"):
        batches(loader)


def test_folder_errors(tmp_path):
    with pytest.raises(UserError, match="--data-dir"):
        load_dataset("folder")
    with pytest.raises(UserError, match="train"):
        load_dataset("folder", str(tmp_path))
    root = write_folder(tmp_path / "f", val=False)
    (root / "train" / "empty").mkdir()
    with pytest.raises(UserError, match="empty has no image files"):
        load_dataset("folder", str(root))
    (root / "train" / "empty").rmdir()
    (root / "val" / "wolf").mkdir(parents=True)
    with pytest.raises(UserError, match="wolf"):
        load_dataset("folder", str(root))


# ------------------------------------------------------------------------------------------------ split

def test_split_validation(digits):
    tr, va = split_validation(digits.train, 0.1, seed=5)
    n = len(digits.train)
    assert len(va) == round(n * 0.1) and len(tr) + len(va) == n
    full = torch.bincount(digits.train.labels, minlength=10).double()
    held = torch.bincount(va.labels, minlength=10).double()
    assert ((held - full * 0.1).abs() <= 1).all()  # stratified
    tr2, va2 = split_validation(digits.train, 0.1, seed=5)
    assert torch.equal(va.images, va2.images) and torch.equal(tr.labels, tr2.labels)
    _, va3 = split_validation(digits.train, 0.1, seed=6)
    assert not torch.equal(va.images, va3.images)
    data = ImageData(torch.arange(100, dtype=torch.uint8).view(100, 1, 1, 1), torch.arange(100) % 4)
    a, b = split_validation(data, 0.3, seed=0)
    ids_a, ids_b = set(a.images.flatten().tolist()), set(b.images.flatten().tolist())
    assert not ids_a & ids_b and len(ids_a | ids_b) == 100 and len(b) == 30
    for bad in (0, 1, 1.5, -0.1):
        with pytest.raises(UserError, match="fraction"):
            split_validation(data, bad, seed=0)


# ------------------------------------------------------------------------------------------------ loader

def test_loader_shapes_and_normalisation(digits):
    loader = make_loader(digits.train, batch_size=100, train=False, image_size=(8, 8), mean=digits.mean,
                         std=digits.std)
    got = batches(loader)
    assert len(loader) == len(got) == 15 and loader.num_samples == len(digits.train)
    x = torch.cat([b[0] for b in got])
    assert x.dtype == torch.float32 and x.shape == (len(digits.train), 1, 8, 8)
    assert got[0][1].dtype == torch.int64
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 1e-3
    assert torch.equal(torch.cat([b[1] for b in got]), digits.train.labels)  # evaluation keeps the order
    big = make_loader(digits.train, batch_size=32, train=True, image_size=(20, 24), mean=digits.mean,
                      std=digits.std, in_chans=3, channels_last=True)
    x, y = next(iter(big))
    assert x.shape == (32, 3, 20, 24) and x.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(x[:, 0], x[:, 2])
    assert len(big) == len(digits.train) // 32  # training drops the last partial batch


def test_loader_rgb_to_grey():
    data = synthetic(c=3)
    loader = make_loader(data, batch_size=60, train=False, image_size=(8, 8), mean=(0.5, 0.5, 0.5),
                         std=(0.25, 0.25, 0.25), in_chans=1)
    x, _ = next(iter(loader))
    luma = (data.images.float() * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    assert torch.allclose(x, (luma / 255 - 0.5) / 0.25, atol=1e-4)


def test_sharding_disjoint():
    data = ImageData(torch.zeros(103, 1, 2, 2, dtype=torch.uint8), torch.arange(103))
    seen = []
    for rank in range(3):
        loader = make_loader(data, batch_size=8, train=True, image_size=(2, 2), mean=(0.5,), std=(0.5,),
                             rank=rank, world_size=3, seed=7, drop_last=False)
        loader.set_epoch(2)
        seen.append(torch.cat([y for _, y in loader]).tolist())
    assert [len(s) for s in seen] == [34, 34, 34]
    assert len(set(seen[0]) | set(seen[1]) | set(seen[2])) == 102
    evals = [torch.cat([y for _, y in make_loader(data, batch_size=8, train=False, image_size=(2, 2), mean=(0.5,),
                                                   std=(0.5,), rank=r, world_size=3)]).tolist() for r in range(3)]
    assert sorted(sum(evals, [])) == list(range(103))


def test_set_epoch_reproducible():
    data = synthetic(n=50)
    aug = AugmentConfig(hflip=True, translate=1, color=0.2, erasing=0.5, rotate=5)

    def run(epoch, start=0):
        loader = make_loader(data, batch_size=8, train=True, image_size=(8, 8), mean=(0.5,), std=(0.5,), seed=1,
                             augment=aug)
        loader.set_epoch(epoch, start_batch=start)
        return batches(loader)

    a, b, c = run(3), run(3), run(4)
    assert all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b))
    assert not torch.equal(a[0][1], c[0][1])
    resumed = run(3, start=2)
    assert len(resumed) == len(a) - 2 and all(torch.equal(p[0], q[0]) for p, q in zip(a[2:], resumed))
    loader = make_loader(data, batch_size=8, train=True, image_size=(8, 8), mean=(0.5,), std=(0.5,), seed=1)
    e0, e1 = batches(loader), batches(loader)  # without set_epoch each pass moves on to the next epoch
    assert not torch.equal(e0[0][1], e1[0][1])


AUGMENTS = {
    "hflip": AugmentConfig(hflip=True),
    "translate": AugmentConfig(translate=3),
    "rotate": AugmentConfig(rotate=30),
    "color": AugmentConfig(color=0.4),
    "pca_lighting": AugmentConfig(pca_lighting=0.5),
    "erasing": AugmentConfig(erasing=1.0),
}


@pytest.mark.parametrize("name", list(AUGMENTS))
def test_each_augmentation_changes_images(name):
    data = synthetic(n=32, c=3, h=12, w=10)
    common = dict(batch_size=32, train=True, image_size=(12, 10), mean=(0.5, 0.5, 0.5), std=(0.2, 0.2, 0.2), seed=4)
    plain, = batches(make_loader(data, **common))
    aug, = batches(make_loader(data, augment=AUGMENTS[name], **common))
    assert torch.equal(plain[1], aug[1])  # the same shuffle
    assert aug[0].shape == plain[0].shape and torch.isfinite(aug[0]).all()
    changed = (aug[0] != plain[0]).flatten(1).any(1)
    assert changed.float().mean() > 0.3


def test_hflip_is_mirror():
    img = torch.arange(12, dtype=torch.uint8).view(1, 1, 3, 4).repeat(16, 1, 1, 1) * 20
    data = ImageData(img, torch.zeros(16, dtype=torch.long))
    common = dict(batch_size=16, train=True, image_size=(3, 4), mean=(0.0,), std=(1 / 255,))
    x, _ = next(iter(make_loader(data, augment=AugmentConfig(hflip=True), **common)))
    x = x.round().to(torch.uint8)
    flipped = torch.tensor([torch.equal(xi, img[0].flip(-1)) for xi in x])
    same = torch.tensor([torch.equal(xi, img[0]) for xi in x])
    assert (flipped | same).all() and flipped.any() and same.any()


def test_translate_is_a_shifted_crop():
    img = torch.randint(1, 256, (8, 1, 6, 6), dtype=torch.uint8)
    data = ImageData(img, torch.zeros(8, dtype=torch.long))
    x, _ = next(iter(make_loader(data, batch_size=8, train=True, image_size=(6, 6), mean=(0.0,), std=(1 / 255,),
                                 augment=AugmentConfig(translate=2), drop_last=False)))
    y = next(iter(make_loader(data, batch_size=8, train=True, image_size=(6, 6), mean=(0.0,), std=(1 / 255,),
                              drop_last=False)))[0]
    for xi, yi in zip(x.round(), y.round()):
        padded = torch.nn.functional.pad(yi, (2, 2, 2, 2))
        crops = [padded[:, dy:dy + 6, dx:dx + 6] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(xi, c) for c in crops)


def test_pca_noop_on_grey():
    data = synthetic(n=16)
    common = dict(batch_size=16, train=True, image_size=(8, 8), mean=(0.5,), std=(0.5,))
    a, = batches(make_loader(data, **common))
    b, = batches(make_loader(data, augment=AugmentConfig(pca_lighting=0.5), **common))
    assert torch.equal(a[0], b[0])


def test_augment_config_validation():
    for bad in (dict(translate=-1), dict(rotate=200.0), dict(color=1.5), dict(erasing=2.0), dict(hflip="yes"),
                dict(erasing_scale=(0.5, 0.1)), dict(pca_lighting=-0.1)):
        with pytest.raises(UserError, match=r"data\.augment\.\w+=.* is out of range"):
            AugmentConfig(**bad)
    assert not AugmentConfig().active and AugmentConfig(rotate=5).active


# ------------------------------------------------------------------------------------------------ load_image

def test_load_image(tmp_path, digits):
    from PIL import Image

    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    img = load_image(str(tmp_path / "a.png"))
    assert img.dtype == torch.uint8 and img.shape == (3, 5, 7) and torch.equal(img.permute(1, 2, 0),
                                                                                 torch.from_numpy(rgb))
    assert load_image(str(tmp_path / "a.png"), in_chans=1).shape == (1, 5, 7)
    five = load_image("digits:5")
    assert torch.equal(five, digits.test.images[5])
    assert load_image("digits:5", in_chans=3).shape == (3, 8, 8)
    (tmp_path / "b.png").write_text("hello")
    with pytest.raises(UserError, match="b.png"):
        load_image(str(tmp_path / "b.png"))
    with pytest.raises(UserError, match="no such image file"):
        load_image(str(tmp_path / "missing.jpg"))
    with pytest.raises(UserError, match="out of range"):
        load_image("digits:100000")


@pytest.mark.parametrize("height,width", [(7, 9), (8, 8), (10, 5), (5, 5)])
@pytest.mark.parametrize("size", [(4, 4), (3, 5), (5, 2)])
def test_centre_offsets_are_torchvision_center_crops(height, width, size):
    """The folder loader's and predict's centre crop take the window torchvision's CenterCrop takes."""
    from torchvision.transforms.functional import center_crop

    from cnnzoo.data import centre_offsets

    img = torch.arange(height * width).view(1, height, width)
    top, left = centre_offsets(height, width, size)
    assert torch.equal(img[..., top:top + size[0], left:left + size[1]], center_crop(img, list(size)))
