"""airbench's data-side method as options of any run (Jordan 2024, arXiv 2404.00498): the alternating flip
(``data.augment.alt_flip``) and the six-view test-time augmentation (``train.tta=flip_translate``)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnzoo import choices
from cnnzoo.data import AugmentConfig, FolderData, ImageData, make_loader
from cnnzoo.errors import UserError
from cnnzoo.train.config import Config, apply_overrides, validate
from cnnzoo.train.evaluate import predict_logits

N = 64
# Raw pixel values out of the loader (mean 0, std 1/255), so a flip is recognised by exact comparison.
RAW = dict(mean=(0.0,), std=(1 / 255,))
ALT = AugmentConfig(hflip=True, alt_flip=True)


def _distinct(n=N, c=1, h=6, w=5, seed=0) -> torch.Tensor:
    """n random uint8 images; at these sizes no two coincide and none is its own mirror."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, c, h, w), generator=g, dtype=torch.uint8)


def _flips(batches, images: torch.Tensor) -> torch.Tensor:
    """Per image (its label is its index): True if the pass showed it mirrored, False if as it is."""
    seen = torch.full((len(images),), -1)
    for x, y in batches:
        for xi, i in zip(x.round().to(torch.uint8), y.tolist()):
            mirrored, plain = torch.equal(xi, images[i].flip(-1)), torch.equal(xi, images[i])
            assert mirrored != plain and seen[i] == -1, f"image {i}: neither itself nor its mirror, or seen twice"
            seen[i] = int(mirrored)
    assert (seen >= 0).all(), "an image was left out of the pass"
    return seen.bool()


def _tensor_loader(augment=ALT, **kw):
    images = _distinct()
    args = dict(batch_size=16, train=True, image_size=tuple(images.shape[-2:]), seed=3, augment=augment, **RAW)
    args.update(kw)
    return images, make_loader(ImageData(images, torch.arange(N)), **args)


# ---------------------------------------------------------------- alternating flip

def test_alt_flip_shows_each_image_once_each_way_per_pair_of_epochs():
    images, loader = _tensor_loader()
    passes = [[(x.clone(), y.clone()) for x, y in loader] for _ in range(4)]  # each pass moves to the next epoch
    assert not torch.equal(passes[0][0][1], passes[1][0][1])  # reshuffled: the flip follows the image, not its place
    f = [_flips(p, images) for p in passes]
    assert (f[0] ^ f[1]).all()
    assert torch.equal(f[2], f[0]) and torch.equal(f[3], f[1])
    assert abs(int(f[0].sum()) - N // 2) <= 10  # a random half, not all or none


def test_alt_flip_is_the_same_on_every_rank_and_in_a_replayed_epoch():
    images, whole = _tensor_loader()
    whole.set_epoch(1)
    expected = _flips(list(whole), images)
    ranks = []
    for rank in (0, 1):
        _, part = _tensor_loader(batch_size=8, rank=rank, world_size=2)
        part.set_epoch(1)
        ranks += list(part)
    assert torch.equal(_flips(ranks, images), expected)
    _, resumed = _tensor_loader()
    resumed.set_epoch(1)
    full = [x.clone() for x, _ in resumed]
    resumed.set_epoch(1, start_batch=2)
    assert all(torch.equal(a, b) for a, b in zip(full[2:], [x for x, _ in resumed], strict=True))


def test_alt_flip_decides_the_flip_under_translate_and_rotate():
    """The given flip goes through each geometry path: folded into translate's gather, into rotate's affine map."""
    images, alone = _tensor_loader()
    expected = _flips(list(alone), images)  # epoch 0
    _, shifted = _tensor_loader(AugmentConfig(hflip=True, alt_flip=True, translate=2))
    for x, y in shifted:
        for xi, i in zip(x.round().to(torch.uint8), y.tolist()):
            img = images[i].flip(-1) if expected[i] else images[i]
            padded = torch.nn.functional.pad(img, (2, 2, 2, 2))
            assert any(torch.equal(xi, padded[:, dy:dy + 6, dx:dx + 5]) for dy in range(5) for dx in range(5))
    _, turned = _tensor_loader(AugmentConfig(hflip=True, alt_flip=True, rotate=1e-4))  # all but no turn
    for x, y in turned:
        want = torch.stack([images[i].flip(-1) if expected[i] else images[i] for i in y.tolist()]).float()
        torch.testing.assert_close(x, want, atol=0.05, rtol=0)


def test_alt_flip_on_a_folder_follows_the_sample_from_decoding_to_the_cache(tmp_path):
    from PIL import Image

    images = _distinct(n=8, c=3, h=16, w=16, seed=1)  # 16 = the decoded size of a 14 px crop: no resampling
    samples = []
    for i, img in enumerate(images):
        path = tmp_path / "train" / f"c{i}" / "0.png"
        path.parent.mkdir(parents=True)
        Image.fromarray(img.permute(1, 2, 0).numpy(), "RGB").save(path)
        samples.append((str(path), i))
    loader = make_loader(FolderData(samples), batch_size=4, train=True, image_size=(14, 14), mean=(0.0,) * 3,
                         std=(1 / 255,) * 3, augment=ALT, seed=5, num_workers=0, cache_dir=str(tmp_path / "cache"))
    crops = images[..., 1:15, 1:15]  # the centre crop
    decoded = _flips(list(loader), crops)  # epoch 0: decoded by the (in-process) workers
    assert loader.cache is not None and (loader._known()).all()
    cached = _flips(list(loader), crops)  # epoch 1: read from the cache
    assert (decoded ^ cached).all()


def test_alt_flip_needs_hflip_and_is_off_by_default():
    assert AugmentConfig().alt_flip is False
    with pytest.raises(UserError, match=r"alt_flip .*hflip is off") as err:
        AugmentConfig(alt_flip=True)
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match=r"hflip is off"):
        validate(apply_overrides(Config(), {"data.augment.alt_flip": True}))
    validate(apply_overrides(Config(), {"data.augment.hflip": True, "data.augment.alt_flip": True}))
    with pytest.raises(UserError, match=r"alt_flip='yes'"):
        AugmentConfig(hflip=True, alt_flip="yes")


# ---------------------------------------------------------------- flip_translate TTA

def _reflect_shift(x: torch.Tensor, d: int) -> torch.Tensor:
    """x moved by d pixels on both axes (out[i, j] = x[i + d, j + d]), reflected at the border, by index."""
    def reflect(k: torch.Tensor, n: int) -> torch.Tensor:
        return torch.where(k < 0, -k, torch.where(k >= n, 2 * (n - 1) - k, k))

    h, w = x.shape[-2:]
    rows = reflect(torch.arange(h) + d, h)
    cols = reflect(torch.arange(w) + d, w)
    return x[..., rows, :][..., cols]


@pytest.mark.parametrize("c,h,w", [(1, 6, 6), (3, 5, 7)])
def test_flip_translate_is_the_weighted_average_of_six_views(c, h, w):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 4)).eval()  # every pixel has its own weights
    x = torch.randn(3, c, h, w)
    views = [(x, 1 / 4), (x.flip(-1), 1 / 4)]
    for d in (-1, 1):
        shifted = _reflect_shift(x, d)
        views += [(shifted, 1 / 8), (shifted.flip(-1), 1 / 8)]
    expected = sum(weight * model(v).softmax(1) for v, weight in views).log()
    out = predict_logits(model, x, "flip_translate")
    assert out.shape == (3, 4) and out.dtype == torch.float32
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(out.exp().sum(1), torch.ones(3))
    # Each view matters: the flip mode alone differs.
    assert not torch.allclose(out, predict_logits(model, x, "flip"))


def test_flip_translate_is_accepted_wherever_tta_modes_are():
    assert "flip_translate" in choices.TTA_MODES
    assert validate(apply_overrides(Config(), {"train.tta": "flip_translate"})).train.tta == "flip_translate"
    from cnnzoo.cli import build_parser

    for command in (["eval", "run"], ["predict", "run", "digits:0"]):
        assert build_parser().parse_args([*command, "--tta", "flip_translate"]).tta == "flip_translate"
