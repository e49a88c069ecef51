"""`cnnzoo eval RUN` with no flags repeats the run's own test pass: same data, preprocessing, precision, number."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cnnzoo.cli import main


def _eval_json(capsys, *args: str) -> dict:
    capsys.readouterr()
    assert main(["eval", *args, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_eval_of_an_in_memory_run_equals_its_test_result(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", "lenet5", "--data", "digits", "--epochs", "2", "--no-progress",
                 "--precision", "bf16", "--set", "train.tta=flip", "--output", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    rep = _eval_json(capsys, str(out))
    assert rep["precision"] == "bf16" and rep["tta"] == "flip"
    assert rep["top1"] == res["test_top1"] and rep["n"] == 359
    fp32 = _eval_json(capsys, str(out), "--precision", "fp32")
    assert fp32["precision"] == "fp32"


def _folder(root: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 4)):
        for c, shade in (("dark", 40), ("light", 200)):
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                img = np.clip(rng.normal(shade, 30, (24, 20, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(root / split / c / f"{i}.png")


def test_eval_of_a_folder_run_needs_no_data_dir(tmp_path, capsys):
    _folder(tmp_path / "photos")
    out = tmp_path / "run"
    assert main(["train", "--model", "simple_convnet", "--data", "folder", "--data-dir", str(tmp_path / "photos"),
                 "--epochs", "2", "--batch-size", "8", "--no-progress", "--output", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    rep = _eval_json(capsys, str(out))  # the directory comes from the run's config.yaml
    assert rep["top1"] == res["test_top1"] and rep["n"] == 8
    assert rep["precision"] == res["precision"]
    capsys.readouterr()
    assert main(["eval", str(out)]) == 0
    assert f"(8 images, {res['precision']})" in capsys.readouterr().out


def test_predict_sees_a_folder_run_test_image_as_its_test_pass_did(tmp_path):
    """A folder run's weights carry S (the decoded side): prepare fits the image's centred square to S x S and takes
    its centre crop, as the folder loader's evaluation does; the run's input for the same file agrees to within
    PIL's and PyTorch's resampling (a level), far closer than the whole-square resize it replaced."""
    import torch
    from PIL import Image

    from cnnzoo.data.cache import decoded_size
    from cnnzoo.data import load_dataset, make_loader
    from cnnzoo.inference import prepare

    root = tmp_path / "photos"
    yy, xx = np.mgrid[0:90, 0:120]
    img = np.stack([(yy * 2.5) % 256, (xx * 2) % 256, (xx + yy) % 256], -1).astype(np.uint8)
    for c in ("a", "b"):  # a classifier's folder has two classes; the first image is a/0.png
        (root / "train" / c).mkdir(parents=True)
        Image.fromarray(img).save(root / "train" / c / "0.png")
    size, s = (32, 32), decoded_size((32, 32))
    rm = {"image_size": list(size), "in_chans": 3, "mean": [0.0] * 3, "std": [1 / 255] * 3, "resize": s}
    shown, x = prepare(torch.from_numpy(img).permute(2, 0, 1).contiguous(), rm)
    loader = make_loader(load_dataset("folder", str(root)).train, batch_size=1, train=False, image_size=size, mean=[0.0] * 3, std=[1 / 255] * 3,
                         device="cpu", num_workers=0, cache=False)
    want, _ = next(iter(loader))
    assert x.shape == want.shape == (1, 3, 32, 32) and shown.shape == (3, 32, 32)
    assert (x - want).abs().mean() < 0.5 and (x - want).abs().max() <= 2.0  # measured 0.09 and 1.0
    old = prepare(torch.from_numpy(img).permute(2, 0, 1).contiguous(), dict(rm, resize=None))[1]
    assert (old - want).abs().mean() > 3.0  # the whole square resized to 32: 6.2 levels off on average
