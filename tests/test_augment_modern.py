"""Scale augmentation, RandAugment / TrivialAugment, mixup / CutMix and the soft-target loss (data/augment.py).

The references are torchvision's own kernels on single uint8 images (torchvision.transforms.v2.functional and
the ops of its RandAugment), torchvision's RandomResizedCrop sampling, and timm's Mixup as its code reads.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from torchvision.transforms.v2 import RandAugment, RandomResizedCrop, TrivialAugmentWide

from cnnzoo.data.augment import AUTO_OPS, AUTO_SIGNED, AugmentConfig, BatchAugment, auto_magnitudes, resample_boxes
from cnnzoo.errors import UserError
from cnnzoo.models import AuxOutputs
from cnnzoo.train.config import load_config
from cnnzoo.train.losses import classification_loss, target_classes


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n, c, h, w, seed=0) -> torch.Tensor:
    return torch.randint(0, 256, (n, c, h, w), generator=gen(seed)).float()


# ---------------------------------------------------------------- RandomResizedCrop and scale jitter

def test_rrc_boxes_inside_and_distributed_as_torchvision():
    h, w, n = 60, 80, 3000
    aug = BatchAugment(AugmentConfig(random_resized_crop=True), 3, None, "cpu")
    top, left, bh, bw = aug._rrc_boxes(n, h, w, gen(0), "cpu").unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (top + bh <= h).all() and (left + bw <= w).all()
    assert (bh >= 1).all() and (bw >= 1).all()
    assert all(torch.equal(v, v.round()) for v in (top, left, bh, bw))  # whole pixels, as torchvision's
    area, log_ratio = bh * bw / (h * w), torch.log(bw / bh)
    # Rounding the sides moves the area and ratio by at most about a pixel's share.
    assert area.min() >= 0.08 * 0.8 and area.max() <= 1.0
    assert log_ratio.abs().max() <= math.log(4 / 3) + 2 / 8  # 8 px: the smallest side of a box of 8% of 60 x 80
    torch.manual_seed(0)
    rrc = RandomResizedCrop(32)
    ref = [rrc.make_params([torch.zeros(3, h, w, dtype=torch.uint8)]) for _ in range(n)]
    ref_area = torch.tensor([p["height"] * p["width"] / (h * w) for p in ref])
    ref_ratio = torch.tensor([math.log(p["width"] / p["height"]) for p in ref])
    ref_top = torch.tensor([p["top"] / (h - p["height"] + 1) for p in ref])
    # Same distribution: means within 4 standard errors of each other.
    for ours, theirs in ((area, ref_area), (log_ratio, ref_ratio), (top / (h - bh + 1), ref_top)):
        se = math.sqrt((ours.var() + theirs.var()) / n)
        assert abs(ours.mean() - theirs.mean()) < 4 * se + 1e-6


def test_rrc_falls_back_to_the_central_crop():
    # No try can fit a box of 90-100% of a 1 x 50 image at ratios near 1: the fallback box of torchvision.
    aug = BatchAugment(AugmentConfig(random_resized_crop=True, rrc_scale=(0.9, 1.0), rrc_ratio=(0.9, 1.1)), 1, None,
                       "cpu")
    boxes = aug._rrc_boxes(5, 1, 50, gen(0), "cpu")
    ref = RandomResizedCrop(8, scale=(0.9, 1.0), ratio=(0.9, 1.1)).make_params([torch.zeros(1, 1, 50)])
    want = torch.tensor([[ref["top"], ref["left"], ref["height"], ref["width"]]]).float()
    assert torch.equal(boxes, want.expand(5, 4))


def test_resample_boxes_against_torchvision_resized_crop():
    """The batched matrices give torchvision's resized_crop (bilinear, antialiased) on the same whole-pixel boxes,
    enlarging and shrinking, up to float rounding; pixels outside a box do not contribute."""
    g = gen(0)
    x = torch.rand(24, 3, 140, 150, generator=g) * 255
    sizes = torch.randint(4, 129, (24, 2), generator=g)  # half enlarged to 32 x 32, half shrunk
    tops = (torch.rand(24, generator=g) * (140 - sizes[:, 0] + 1)).floor()
    lefts = (torch.rand(24, generator=g) * (150 - sizes[:, 1] + 1)).floor()
    boxes = torch.stack([tops, lefts, sizes[:, 0].float(), sizes[:, 1].float()], 1)
    got = resample_boxes(x, boxes, (32, 32))
    for i, (t, l, bh, bw) in enumerate(boxes.int().tolist()):
        want = TF.resized_crop(x[i], t, l, bh, bw, [32, 32], antialias=True)
        assert (got[i] - want).abs().max() < 1e-3, (t, l, bh, bw)
    # What lies outside a box (here 1e6) does not reach its output, at the edges of the box either.
    box = torch.tensor([[20.0, 30, 50, 60]])
    framed = torch.full((1, 3, 140, 150), 1e6)
    framed[:, :, 20:70, 30:90] = x[:1, :, 20:70, 30:90]
    for out_size in ((32, 32), (80, 90)):
        assert torch.allclose(resample_boxes(framed, box, out_size), resample_boxes(x[:1], box, out_size))
    # A whole-pixel box of the output's size is an exact crop.
    x = images(2, 3, 40, 30)
    out = resample_boxes(x, torch.tensor([[3.0, 5, 20, 16], [0, 14, 20, 16]]), (20, 16))
    assert torch.equal(out[0], x[0, :, 3:23, 5:21]) and torch.equal(out[1], x[1, :, 0:20, 14:30])


def test_resized_crop_is_the_drawn_box():
    aug = BatchAugment(AugmentConfig(random_resized_crop=True), 3, None, "cpu")
    x = images(6, 3, 48, 40)
    out = aug.resized_crop(x, (24, 20), gen(5))
    assert out.shape == (6, 3, 24, 20) and out.dtype == x.dtype and aug.crops
    boxes = aug._rrc_boxes(6, 48, 40, gen(5), "cpu")  # the same first draws of the same generator
    assert torch.equal(out, resample_boxes(x, boxes, (24, 20)))
    assert not torch.equal(out, aug.resized_crop(x, (24, 20), gen(6)))


def test_scale_jitter_of_256_px_to_224_is_a_plain_random_crop():
    """s = 256 / 224: the shorter side is rescaled to 256 (k = 1), so each output is x[:, t:t+224, l:l+224]."""
    aug = BatchAugment(AugmentConfig(scale_jitter=(256 / 224, 256 / 224)), 1, None, "cpu")
    x = images(4, 1, 256, 256)
    out = aug.resized_crop(x, (224, 224), gen(3))
    boxes = aug._jitter_boxes(4, 256, 256, 224, 224, gen(3), "cpu")
    assert torch.equal(boxes[:, 2:], torch.full((4, 2), 224.0, dtype=boxes.dtype))
    for img, res, (t, l, _, _) in zip(x, out, boxes.tolist()):
        assert t == int(t) and l == int(l) and 0 <= t <= 32 and 0 <= l <= 32
        assert torch.equal(res, img[:, int(t):int(t) + 224, int(l):int(l) + 224])
    assert len({tuple(b) for b in boxes[:, :2].tolist()}) > 1


def test_scale_jitter_box_geometry():
    """Shorter side m, crop c, ratio s: a square box of side m / s at a position inside the image."""
    lo, hi = 1.25, 2.5
    aug = BatchAugment(AugmentConfig(scale_jitter=(lo, hi)), 3, None, "cpu")
    h, w, c = 120, 90, 30
    top, left, bh, bw = aug._jitter_boxes(2000, h, w, c, c, gen(1), "cpu").unbind(1)
    s = w / bh  # m / box side
    assert torch.allclose(bh, bw) and s.min() >= lo - 1e-9 and s.max() <= hi + 1e-9
    assert s.min() < lo + 0.05 and s.max() > hi - 0.05  # the whole range is used
    assert (top >= 0).all() and (left >= 0).all() and (top + bh <= h + 1e-9).all() and (left + bw <= w + 1e-9).all()
    out = aug.resized_crop(images(3, 3, h, w), (c, c), gen(0))
    assert out.shape == (3, 3, c, c)


# ---------------------------------------------------------------- RandAugment / TrivialAugment

RA = RandAugment()


def torchvision_op(img: torch.Tensor, name: str, magnitude: float) -> torch.Tensor:
    """The op as torchvision's RandAugment applies it to one uint8 image (its defaults: nearest, zero fill)."""
    return RA._apply_image_or_video_transform(img, name, magnitude, interpolation=RA.interpolation, fill=RA._fill)


@pytest.mark.parametrize("wide", [False, True])
def test_magnitude_tables_are_torchvision_s(wide):
    space = (TrivialAugmentWide if wide else RandAugment)._AUGMENTATION_SPACE
    assert tuple(space) == AUTO_OPS and tuple(s for _, s in space.values()) == AUTO_SIGNED
    table = auto_magnitudes(wide, 20, 17)
    for k, (fn, _) in enumerate(space.values()):
        ref = fn(31, 20, 17)
        assert torch.equal(table[k], torch.zeros(31) if ref is None else ref.float())


# Largest difference from torchvision's uint8 kernel, in levels of 0..255: the float ops do not truncate to
# uint8 (and Color / Contrast do not floor the grey, Sharpness does not round the blur as torchvision does).
OP_TOLERANCE = {"Brightness": 1.0, "AutoContrast": 1.0, "Color": 2.5, "Contrast": 2.5, "Sharpness": 2.5}


@pytest.mark.parametrize("name", AUTO_OPS)
def test_each_op_matches_torchvision_on_uint8(name):
    k = AUTO_OPS.index(name)
    tol = OP_TOLERANCE.get(name, 0.0)  # geometry (nearest), Posterize, Solarize, Equalize: exact
    for c in (3, 1):
        img = torch.randint(0, 256, (3, c, 20, 17), generator=gen(k), dtype=torch.uint8)
        img[1] = img[1] // 4 + 60  # a low-contrast image for AutoContrast and Equalize
        img[2, :, :4] = 255
        aug = BatchAugment(AugmentConfig(trivialaugment=True), c, None, "cpu")
        for wide in (False, True):
            table = auto_magnitudes(wide, 20, 17)
            for level in (0, 4, 9, 20, 27, 30):
                for sign in ((1, -1) if AUTO_SIGNED[k] else (1,)):
                    mag = float(table[k, level]) * sign
                    want = torch.stack([torchvision_op(i, name, mag) for i in img]).float()
                    op = torch.full((3,), k)
                    group = torch.tensor((0, 1, 1, 1, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9))[op]
                    got = aug._apply_auto(img.float(), op, group, torch.full((3,), mag))
                    diff = (got - want).abs()
                    assert diff.max() <= tol + 1e-3, (name, c, wide, level, sign, diff.max())
                    if name in OP_TOLERANCE:
                        # Against torchvision's float kernel (0..1) the blends agree to float rounding (and the
                        # grey's weights: LUMA's 0.299 where torchvision has 0.2989).
                        ref = torch.stack([torchvision_op(i.float() / 255, name, mag) for i in img]) * 255
                        assert (got - ref).abs().max() <= 0.05, (name, c, wide, level, sign)


@pytest.mark.parametrize("cfg", [dict(randaugment=2, randaugment_magnitude=15), dict(trivialaugment=True)],
                         ids=["randaugment", "trivialaugment"])
@pytest.mark.parametrize("channels", [3, 1])
def test_auto_keeps_shape_dtype_and_is_reproducible(cfg, channels):
    aug = BatchAugment(AugmentConfig(**cfg), channels, None, "cpu")
    x = images(32, channels, 16, 12)
    a, b, other = aug.colour(x, gen(1)), aug.colour(x, gen(1)), aug.colour(x, gen(2))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b) and not torch.equal(a, other)
    assert a.min() >= 0 and a.max() <= 255
    assert (a != x).flatten(1).any(1).float().mean() > 0.5


def test_auto_draws_per_image():
    """Copies of one image in a batch come out in many different ways (a per-batch op would give one)."""
    x = images(1, 3, 16, 16).expand(64, -1, -1, -1).contiguous()
    for cfg in (AugmentConfig(trivialaugment=True), AugmentConfig(randaugment=1)):
        out = BatchAugment(cfg, 3, None, "cpu").auto(x, gen(0))
        assert len({tuple(o.flatten()[::7].tolist()) for o in out}) > 10


def test_randaugment_applies_n_ops():
    """RandAugment's N: N rounds, each with its own draw of ops for the images."""
    aug = BatchAugment(AugmentConfig(randaugment=3, randaugment_magnitude=30), 1, None, "cpu")
    calls = []
    orig = aug._apply_auto
    aug._apply_auto = lambda x, op, group, mag: calls.append(op) or orig(x, op, group, mag)
    aug.auto(images(16, 1, 8, 8), gen(0))
    assert len(calls) == 3 and not all(torch.equal(calls[0], c) for c in calls[1:])


# ---------------------------------------------------------------- mixup / CutMix

def mix_batch(n=8, h=10, w=12):
    """Image i is the constant i (normalised values may be anything), label i, so pixels tell their source."""
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 3, h, w).contiguous()
    return x, torch.arange(n)


def test_cutmix_lam_is_the_pasted_share():
    aug = BatchAugment(AugmentConfig(cutmix=1.0), 3, None, "cpu")
    x, y = mix_batch()
    seen = set()
    for seed in range(20):
        xm, soft = aug.mix(x, y, 8, 0, gen(seed))
        assert soft.dtype == torch.float32 and soft.shape == (8, 8)
        assert torch.allclose(soft.sum(1), torch.ones(8))
        own = (xm == x).float().mean((1, 2, 3))
        partner = (xm == x.flip(0)).float().mean((1, 2, 3))
        assert torch.allclose(soft[torch.arange(8), y], own) and torch.allclose(soft[torch.arange(8), y.flip(0)],
                                                                                 partner)
        assert ((own >= 0) & (own <= 1)).all()
        seen.add(round(float(own[0]), 4))
    assert len(seen) > 5


def test_mixup_blends_with_the_flipped_batch():
    aug = BatchAugment(AugmentConfig(mixup=0.4), 3, None, "cpu")
    x, y = mix_batch()
    xm, soft = aug.mix(x, y, 10, 3, gen(0))
    lam = soft[0, 0]
    assert 0 <= lam <= 1 and soft.shape == (8, 10) and torch.allclose(soft.sum(1), torch.ones(8))
    assert torch.allclose(xm, lam * x + (1 - lam) * x.flip(0), atol=1e-5)
    assert torch.equal(aug.mix(x, y, 10, 3, gen(0))[1], soft)  # reproducible
    assert not torch.equal(aug.mix(x, y, 10, 3, gen(1))[1], soft)


def test_mix_switches_and_stops():
    x, y = mix_batch()
    both = BatchAugment(AugmentConfig(mixup=1.0, cutmix=1.0, mix_off_epoch=5), 3, None, "cpu")
    kinds = set()
    for seed in range(30):
        xm, _ = both.mix(x, y, 8, 4, gen(seed))  # epoch 4 (0-based) < 5: mixed
        kinds.add("cutmix" if bool(((xm == x) | (xm == x.flip(0))).all()) else "mixup")
    assert kinds == {"cutmix", "mixup"}
    xm, labels = both.mix(x, y, 8, 5, gen(0))  # from epoch 5 on: unmixed, int labels back
    assert labels.dtype == torch.int64 and torch.equal(labels, y) and torch.equal(xm, x)
    rare = BatchAugment(AugmentConfig(mixup=1.0, mix_prob=0.3), 3, None, "cpu")
    mixed = [rare.mix(x, y, 8, 0, gen(s))[1].is_floating_point() for s in range(200)]
    assert 0.15 < sum(mixed) / 200 < 0.45
    assert not BatchAugment(AugmentConfig(mixup=1.0, mix_prob=0.0), 3, None, "cpu").mixes


# ---------------------------------------------------------------- settings

@pytest.mark.parametrize("bad", [
    dict(random_resized_crop=1), dict(rrc_scale=(0.5, 0.1)), dict(rrc_scale=(0.0, 1.0)), dict(rrc_ratio=(2.0, 1.0)),
    dict(rrc_ratio=(0.5,)), dict(scale_jitter=(0.5, 2.0)), dict(scale_jitter=(2.0, 1.5)), dict(randaugment=-1),
    dict(randaugment=2.0), dict(randaugment_magnitude=31), dict(trivialaugment="yes"), dict(mixup=-0.2),
    dict(cutmix=11.0), dict(mix_prob=1.5), dict(mix_switch_prob=-0.1), dict(mix_off_epoch=-1)])
def test_validation_names_the_setting(bad):
    with pytest.raises(UserError, match=rf"data\.augment\.{next(iter(bad))}=.* is out of range; use "):
        AugmentConfig(**bad)


def test_mutually_exclusive_settings():
    with pytest.raises(UserError, match="random_resized_crop and data.augment.scale_jitter are both on"):
        AugmentConfig(random_resized_crop=True, scale_jitter=(1.143, 2.286))
    with pytest.raises(UserError, match="trivialaugment and data.augment.randaugment=2 are both on"):
        AugmentConfig(trivialaugment=True, randaugment=2)


def test_new_settings_are_active_and_set_from_config():
    assert not AugmentConfig().active
    for on in (dict(random_resized_crop=True), dict(scale_jitter=(1.5, 2.0)), dict(randaugment=2),
               dict(trivialaugment=True), dict(mixup=0.2), dict(cutmix=1.0)):
        assert AugmentConfig(**on).active, on
    assert not AugmentConfig(mixup=0.2, mix_prob=0.0).active
    cfg = load_config(overrides={"data.augment.scale_jitter": [1.143, 2.286], "data.augment.randaugment": 2,
                                 "data.augment.cutmix": 1})
    aug = cfg.data.augment
    assert aug.scale_jitter == (1.143, 2.286) and aug.randaugment == 2 and aug.cutmix == 1.0 and aug.crops


# ---------------------------------------------------------------- the loss with soft targets

def test_soft_target_loss():
    g = gen(0)
    logits, aux = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    soft = torch.softmax(torch.randn(6, 5, generator=g), 1)
    loss, main = classification_loss(logits, soft)
    assert main is logits and torch.allclose(loss, -(soft * logits.log_softmax(1)).sum(1).mean())
    labels = torch.tensor([0, 3, 4, 1, 1, 2])
    one_hot = F.one_hot(labels, 5).float()
    for ls in (0.0, 0.1):
        out = AuxOutputs(logits, [aux])
        soft_loss, int_loss = classification_loss(out, one_hot, ls, 0.3)[0], classification_loss(out, labels, ls, 0.3)[0]
        assert torch.allclose(soft_loss, int_loss)
    smoothed = soft * 0.9 + 0.1 / 5
    assert torch.allclose(classification_loss(logits, soft, 0.1)[0], -(smoothed * logits.log_softmax(1)).sum(1).mean())
    half, _ = classification_loss(logits.bfloat16(), soft)  # soft targets keep float32 under bf16 logits
    assert half.dtype == torch.float32
    assert torch.equal(target_classes(soft), soft.argmax(1)) and target_classes(labels) is labels


# ---------------------------------------------------------------- the docs' picture

def test_augment_grid_draws_a_row_per_setting(tmp_path):
    from cnnzoo.viz._mpl import save
    from cnnzoo.viz.augment import augment_grid, default_rows

    imgs = torch.randint(0, 256, (3, 3, 40, 40), generator=gen(0), dtype=torch.uint8)
    fig = augment_grid(imgs, size=(32, 32), seed=1)
    assert len(fig.axes) == 3 * len(default_rows())
    assert [a.get_title() for a in fig.axes[-3:]] != ["", "", ""]  # CutMix's row shows each image's share
    assert (tmp_path / "grid.png").exists() is False and save(fig, tmp_path / "grid.png")
    with pytest.raises(UserError, match="uint8 images"):
        augment_grid(imgs.float())
